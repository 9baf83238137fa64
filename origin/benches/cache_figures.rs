//! Figures of the origin's cache under load, each against a peer measured in the same run:
//!
//! - Stampede: 500 concurrent requests for one cold key, and how many database queries they
//!   caused (the target is 1).
//! - Stale-while-revalidate: with a 1 s lifetime on an expensive route (`/api/stats`), the p99
//!   of answers served stale while the refresh runs, against the p99 of fresh hits served at
//!   the same moments, and of all fresh hits (the target is ≤ 1.2×: nobody waits on the loader);
//!   once with clients sending as fast as they are answered, once with paced clients.
//!
//! Run: `cargo bench -p origin --bench cache_figures` (part of `scripts/bench-origin.sh`).

use std::time::{Duration, Instant};

use origin::config::{CacheConfig, Config, DatabaseConfig, DemoData};
use tokio::net::TcpListener;

const STAMPEDE: usize = 500;
const CLIENTS: usize = 16;
/// About 30 refreshes and 2,000 stale answers: enough that their p99 is not one unlucky answer.
const SWR_RUN: Duration = Duration::from_secs(30);
/// How long each client rests after each pair of requests in the paced run.
const PAUSE: Duration = Duration::from_millis(2);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn db_selects(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("db_queries_total{") && l.contains("operation=\"select\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Starts an origin on a server runtime of its own; returns its base URL.
fn start(config: Config) -> String {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime");
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let base = format!("http://{}", listener.local_addr().expect("bound"));
            sender.send(base).expect("report the address");
            origin::server::run(listener, config, std::future::pending())
                .await
                .expect("origin runs");
        });
    });
    receiver.recv().expect("origin address")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..600 {
        if let Ok(response) = client.get(format!("{base}/api/tasks/1")).send().await {
            if response.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("origin did not become ready");
}

async fn metrics(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

async fn stampede(client: &reqwest::Client, base: &str) {
    let before = db_selects(&metrics(client, base).await);
    let url = format!("{base}/api/tasks/42");
    let requests = (0..STAMPEDE).map(|_| client.get(&url).send());
    let responses = futures::future::join_all(requests).await;
    let ok = responses
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.status().is_success()))
        .count();
    let after = db_selects(&metrics(client, base).await);
    println!(
        "stampede: {STAMPEDE} concurrent requests for one cold key, {ok} answered 200, {} database queries (target 1)",
        after - before
    );
}

/// One answer a client timed.
struct Sample {
    /// Whether it was the control request (always fresh) rather than `/api/stats`.
    control: bool,
    status: String,
    started: Instant,
    latency: Duration,
}

impl Sample {
    fn overlaps(&self, (from, to): (Instant, Instant)) -> bool {
        self.started <= to && self.started + self.latency >= from
    }
}

/// The periods during which answers were served stale (a refresh was running), merged.
fn refresh_windows(stale: &[&Sample]) -> Vec<(Instant, Instant)> {
    let mut windows: Vec<(Instant, Instant)> = Vec::new();
    let mut spans: Vec<_> = stale
        .iter()
        .map(|s| (s.started, s.started + s.latency))
        .collect();
    spans.sort();
    for (from, to) in spans {
        match windows.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => windows.push((from, to)),
        }
    }
    windows
}

fn sorted(samples: impl Iterator<Item = Duration>) -> Vec<Duration> {
    let mut list: Vec<_> = samples.collect();
    list.sort();
    list
}

async fn timed(client: &reqwest::Client, url: &str, control: bool) -> Sample {
    let started = Instant::now();
    let response = client.get(url).send().await.expect("reachable");
    let status = response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let _ = response.bytes().await;
    Sample {
        control,
        status,
        started,
        latency: started.elapsed(),
    }
}

/// Each client alternates `/api/stats` (1 s lifetime: stale every second while its refresh
/// runs) with a control that stays fresh all run (a comments page, 600 s lifetime). Stale
/// answers are compared with all fresh hits of `/api/stats`, and with the control's fresh hits
/// served during the refreshes: the refresh's query shares the machine's cores with everything
/// else, and the control shows what that costs a request that has no loader at all.
///
/// Without `pause` the clients send as fast as they are answered, which saturates the cores;
/// with it each client rests that long after each pair, which leaves the cores idle capacity,
/// as a server that is not overloaded has.
async fn stale_while_revalidate(client: &reqwest::Client, base: &str, pause: Option<Duration>) {
    let url = format!("{base}/api/stats");
    let control = format!("{base}/api/tasks/1/comments?limit=1");
    let deadline = Instant::now() + SWR_RUN;
    let workers = (0..CLIENTS).map(|_| {
        let (client, url, control) = (client.clone(), url.clone(), control.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                samples.push(timed(&client, &url, false).await);
                samples.push(timed(&client, &control, true).await);
                if let Some(pause) = pause {
                    tokio::time::sleep(pause).await;
                }
            }
            samples
        })
    });
    let mut samples = Vec::new();
    for worker in futures::future::join_all(workers).await {
        samples.extend(worker.expect("worker"));
    }
    let is_hit = |s: &Sample| s.status.contains("; hit");
    let stats: Vec<&Sample> = samples.iter().filter(|s| !s.control).collect();
    let stale: Vec<&Sample> = stats
        .iter()
        .copied()
        .filter(|s| s.status.contains("fwd=stale"))
        .collect();
    let windows = refresh_windows(&stale);
    let hits = sorted(stats.iter().filter(|s| is_hit(s)).map(|s| s.latency));
    let misses = sorted(
        stats
            .iter()
            .filter(|s| !is_hit(s) && !s.status.contains("fwd=stale"))
            .map(|s| s.latency),
    );
    let stale = sorted(stale.iter().map(|s| s.latency));
    let beside = sorted(
        samples
            .iter()
            .filter(|s| s.control && is_hit(s))
            .filter(|s| windows.iter().any(|&window| s.overlaps(window)))
            .map(|s| s.latency),
    );
    let line = |name: &str, list: &[Duration]| {
        println!(
            "  {name:<40} {:>7} answers, p50 {:?}, p99 {:?}",
            list.len(),
            percentile(list, 0.5),
            percentile(list, 0.99)
        );
    };
    println!(
        "stale-while-revalidate on /api/stats (1 s lifetime, {CLIENTS} clients {}, {SWR_RUN:?}, {} stretches of stale answers):",
        pause.map_or_else(
            || "sending as fast as answered".to_owned(),
            |pause| format!("resting {pause:?} after each pair")
        ),
        windows.len()
    );
    line("fresh hits", &hits);
    line("served stale", &stale);
    line("fresh hits of the control, during refreshes", &beside);
    line("loaded (what a visitor waits without cache)", &misses);
    let ratio = |a: &[Duration], b: &[Duration]| {
        percentile(a, 0.99).as_secs_f64() / percentile(b, 0.99).as_secs_f64().max(1e-9)
    };
    println!(
        "  p99 stale / p99 fresh hits at the same moments = {:.2} (target <= 1.20); / p99 of all fresh hits = {:.2}",
        ratio(&stale, &beside),
        ratio(&stale, &hits)
    );
}

fn unlimited_budget() -> shared::rate_limit::RateLimit {
    shared::rate_limit::RateLimit {
        max_requests: u32::MAX,
        window_seconds: 1,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs benches without it.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!(
            "cache_figures: a benchmark; run it with `cargo bench -p origin --bench cache_figures`"
        );
        return;
    }
    let folder = tempfile::tempdir().expect("temporary folder");
    let mut config = Config {
        database: DatabaseConfig {
            url: format!("sqlite:{}/bench.db", folder.path().display()),
            demo_data: DemoData::Full,
            ..DatabaseConfig::default()
        },
        cache: CacheConfig {
            warm_paths: Vec::new(),
            ttl: Some(Duration::from_secs(1)),
            stale_while_revalidate: Duration::from_secs(600),
            ..CacheConfig::default()
        },
        ..Config::default()
    };
    // The control of the stale-while-revalidate figure stays fresh all run.
    config.application.comments_cache_ttl = Duration::from_secs(600);
    // One client sends everything: budgets no run can spend, so the limiter still runs.
    config.resilience.rate_limits = Some(origin::core::layers::rate_limit::Budgets {
        default: unlimited_budget(),
        crawler: unlimited_budget(),
        aggressive: unlimited_budget(),
    });
    let base = start(config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(STAMPEDE)
            .build()
            .expect("client");
        wait_ready(&client, &base).await;
        stampede(&client, &base).await;
        stale_while_revalidate(&client, &base, None).await;
        stale_while_revalidate(&client, &base, Some(PAUSE)).await;
    });
}
