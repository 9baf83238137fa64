//! Three origin processes on one Redis and one PostgreSQL, behind a plain load balancer: nginx
//! with an `upstream` of the three, passive health checks (`max_fails`, `fail_timeout`) and
//! `proxy_next_upstream`. A write through one origin is read back through the others at once
//! (the invalidation reaches them through Redis); under steady traffic through nginx, one origin
//! killed (`SIGKILL`) and another stopped (`SIGTERM`, drained) fail no read and lose no
//! acknowledged write.

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, spawn_with, unique_prefix, PostgresDb};
use serde_json::json;

/// nginx in front of `origins`, on a free port; stopped when dropped.
struct Nginx {
    child: Child,
    url: String,
    _folder: tempfile::TempDir,
}

impl Nginx {
    fn start(origins: &[String]) -> Self {
        let folder = tempfile::tempdir().expect("a folder");
        let dir = folder.path().display().to_string();
        let port = free_port();
        let servers: String = origins
            .iter()
            .map(|base| {
                let address = base.trim_start_matches("http://");
                format!("    server {address} max_fails=1 fail_timeout=5s;\n")
            })
            .collect();
        let config = format!(
            "pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  upstream origins {{
{servers}  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://origins;
      proxy_set_header Host $host;
      proxy_connect_timeout 1s;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries 3;
    }}
  }}
}}
"
        );
        let path = folder.path().join("nginx.conf");
        std::fs::write(&path, config).expect("nginx.conf");
        let child = Command::new("nginx")
            .args(["-c", &path.display().to_string(), "-p", &dir])
            // One process: killing it leaves no orphaned worker behind.
            .args(["-g", "daemon off; master_process off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed (scripts/test.sh installs nginx-light)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _folder: folder,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("running").to_string();
    let status = Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// What the steady traffic saw.
#[derive(Debug, Default)]
struct Tally {
    reads: u32,
    failed_reads: Vec<String>,
    writes: u32,
    failed_writes: Vec<String>,
    /// Bodies of the comments the origins acknowledged (201).
    acknowledged: HashSet<String>,
}

/// Reads and writes through `url` for `length`: a read every 10 ms, a comment every 50 ms.
async fn steady_traffic(url: String, length: Duration, tally: Arc<Mutex<Tally>>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a client");
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut requests = Vec::new();
    let mut n = 0u32;
    while started.elapsed() < length {
        tick.tick().await;
        n += 1;
        let (client, url, tally) = (client.clone(), url.clone(), Arc::clone(&tally));
        requests.push(tokio::spawn(async move {
            if n.is_multiple_of(5) {
                let body = format!("comment {n}");
                let answer = client
                    .post(format!("{url}/api/tasks/{}/comments", 1 + n % 4))
                    .json(&json!({ "author_id": 1, "body": body }))
                    .send()
                    .await;
                let mut tally = tally.lock().expect("tally");
                tally.writes += 1;
                match answer {
                    Ok(response) if response.status() == 201 => {
                        tally.acknowledged.insert(body);
                    }
                    Ok(response) => tally.failed_writes.push(response.status().to_string()),
                    Err(error) => tally.failed_writes.push(error.to_string()),
                }
            } else {
                let answer = client
                    .get(format!("{url}/api/tasks/{}", 1 + n % 6))
                    .send()
                    .await;
                let mut tally = tally.lock().expect("tally");
                tally.reads += 1;
                match answer {
                    Ok(response) if response.status().is_success() => {}
                    Ok(response) => tally.failed_reads.push(response.status().to_string()),
                    Err(error) => tally.failed_reads.push(error.to_string()),
                }
            }
        }));
    }
    for request in requests {
        let _ = request.await;
    }
}

#[tokio::test]
async fn three_origins_behind_nginx_share_writes_and_ride_out_a_kill_and_a_drain() {
    let database = PostgresDb::create().await;
    let prefix = unique_prefix("several-origins");
    let mut origins = Vec::new();
    for _ in 0..3 {
        // Every request arrives from nginx's address: one client as far as budgets go.
        let env = [
            ("SHUTDOWN_TIMEOUT", "10000"),
            ("RATE_LIMIT_ENABLED", "false"),
        ];
        origins.push(spawn_with(&database.url, &prefix, &env).await);
    }
    let bases: Vec<String> = origins.iter().map(|(_, base)| base.clone()).collect();

    // One database, one Redis: a write through one origin is what the others serve next.
    let client = reqwest::Client::new();
    for base in &bases {
        common::task_title(base, 4).await; // each caches the task
    }
    let patched = client
        .patch(format!("{}/api/tasks/4", bases[0]))
        .json(&json!({ "title": "Renamed through the first origin" }))
        .send()
        .await
        .expect("reachable");
    assert!(patched.status().is_success(), "{}", patched.status());
    for base in &bases[1..] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while common::task_title(base, 4).await != "Renamed through the first origin" {
            assert!(
                Instant::now() < deadline,
                "{base} still serves the old title"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let nginx = Nginx::start(&bases);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let traffic = tokio::spawn(steady_traffic(
        nginx.url.clone(),
        Duration::from_secs(6),
        Arc::clone(&tally),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal(&origins[0].0, "-KILL");
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal(&origins[1].0, "-TERM");
    traffic.await.expect("traffic ran");

    let tally = std::mem::take(&mut *tally.lock().expect("tally"));
    assert!(
        tally.reads > 300 && tally.writes > 80,
        "{} reads, {} writes",
        tally.reads,
        tally.writes
    );
    let first = |failures: &[String]| failures.iter().take(5).cloned().collect::<Vec<_>>();
    assert!(
        tally.failed_reads.is_empty(),
        "{} failed reads, first {:?}",
        tally.failed_reads.len(),
        first(&tally.failed_reads)
    );
    // A write the killed origin was handling when it died may fail; nothing else may.
    assert!(
        tally.failed_writes.len() <= 1,
        "{} failed writes, first {:?}",
        tally.failed_writes.len(),
        first(&tally.failed_writes)
    );
    let stored: Vec<String> = sqlx::query_scalar("SELECT body FROM comments")
        .fetch_all(&mut sqlx_connection(&database.url).await)
        .await
        .expect("comments");
    let stored: HashSet<String> = stored.into_iter().collect();
    let lost: Vec<&String> = tally.acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert_eq!(
        common::task_title(&nginx.url, 4).await,
        "Renamed through the first origin"
    );
    drop(nginx);
    drop(origins);
    database.drop_now().await;
}

async fn sqlx_connection(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url).await.expect("PostgreSQL")
}
