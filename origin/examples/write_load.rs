//! The load of the write-path benchmark: `REQUESTS` writes, `PATCH /api/tasks/{id}` with a JSON
//! body changing the title, over `CONNECTIONS` kept-alive connections, each sending its next
//! request when the last is answered. Every run sends the same sequence (ids 1 to 50 in turn,
//! titles `TAG n`), so two origins get the same writes. Each latency (µs, from send to the
//! whole body read) is written to `OUT`, one a line; one line of figures goes to stdout:
//! `requests N errors E seconds S p50_ms X p99_ms Y`.
//!
//! `cargo run --release -p origin --example write_load -- BASE REQUESTS CONNECTIONS OUT TAG`
//! (part of `scripts/bench-jobs.sh`).

use std::io::Write;
use std::time::{Duration, Instant};

/// Tasks written in turn (the small demo data has 60).
const TASKS: usize = 50;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn drive(
    client: reqwest::Client,
    base: String,
    tag: String,
    numbers: impl Iterator<Item = usize>,
) -> (Vec<Duration>, usize) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    for n in numbers {
        let url = format!("{base}/api/tasks/{}", n % TASKS + 1);
        let body = format!(r#"{{"title":"{tag} {n}"}}"#);
        let started = Instant::now();
        let response = client
            .patch(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let ok = match response {
            Ok(response) => {
                let status = response.status();
                response.bytes().await.is_ok() && status.is_success()
            }
            Err(_) => false,
        };
        latencies.push(started.elapsed());
        if !ok {
            errors += 1;
        }
    }
    (latencies, errors)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, requests, connections, out, tag] = args.as_slice() else {
        return Err("usage: write_load BASE REQUESTS CONNECTIONS OUT TAG".into());
    };
    let requests: usize = requests.parse()?;
    let connections: usize = connections.parse::<usize>()?.max(1);
    // One thread: the client shares the machine with the origin it measures.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    let started = Instant::now();
    let results = runtime.block_on(futures::future::join_all((0..connections).map(|c| {
        let numbers = (c..requests).step_by(connections);
        drive(client.clone(), base.clone(), tag.clone(), numbers)
    })));
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies = Vec::with_capacity(requests);
    let mut errors = 0;
    for (list, failed) in results {
        latencies.extend(list);
        errors += failed;
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    for latency in &latencies {
        writeln!(file, "{}", latency.as_micros())?;
    }
    file.flush()?;
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "requests {} errors {errors} seconds {seconds:.3} p50_ms {:.3} p99_ms {:.3}",
        latencies.len(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    );
    Ok(())
}
