//! Two origin processes (the real binary) on one PostgreSQL database and one Redis: a write on
//! one reaches the other's in-process cache through the invalidation broadcast.

mod common;

use std::time::Duration;

use common::{cache_status, spawn_with, PostgresDb};
use serde_json::{json, Value};
use tokio::process::Child;

async fn spawn(database_url: &str, prefix: &str) -> (Child, String) {
    spawn_with(database_url, prefix, &[("RATE_LIMIT_ENABLED", "false")]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_redis_for_invalidation() {
    let db = PostgresDb::create().await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("rampart-test:processes:{}:{nanos}:", std::process::id());
    let (_a, a) = spawn(&db.url, &prefix).await;
    let (_b, b) = spawn(&db.url, &prefix).await;
    let client = reqwest::Client::new();
    // Behind one load balancer both see the same public host, hence the same keys.
    let get = |base: &str| {
        client
            .get(format!("{base}/api/tasks/4"))
            .header("host", "tasks.example")
            .send()
    };
    get(&a).await.expect("reachable");
    let shared = get(&b).await.expect("reachable");
    assert!(
        cache_status(&shared).starts_with("rampart-origin; hit"),
        "B is served A's entry from Redis: {}",
        cache_status(&shared)
    );
    let renamed = client
        .patch(format!("{a}/api/tasks/4"))
        .json(&json!({"title": "Renamed in process A"}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(renamed.status(), 200);
    let mut title = Value::Null;
    for _ in 0..50 {
        title = get(&b)
            .await
            .expect("reachable")
            .json::<Value>()
            .await
            .expect("task")["title"]
            .clone();
        if title == "Renamed in process A" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(title, "Renamed in process A");
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_draw_from_one_rate_limit_budget() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("rampart-test:limits:{}:{nanos}:", std::process::id());
    let limits = [
        ("RATE_LIMIT_MAX_REQUESTS", "6"),
        ("RATE_LIMIT_WINDOW_MS", "60000"),
    ];
    let db = |name: &str| format!("sqlite:{}/{name}.db", folder.path().display());
    let (_a, a) = spawn_with(&db("a"), &prefix, &limits).await;
    let (_b, b) = spawn_with(&db("b"), &prefix, &limits).await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut remaining = Vec::new();
    for round in 0..10 {
        let base = if round % 2 == 0 { &a } else { &b };
        let response = client
            .get(format!("{base}/api/tasks/1"))
            .send()
            .await
            .expect("reachable");
        statuses.push(response.status().as_u16());
        remaining.push(
            response.headers()["x-ratelimit-remaining"]
                .to_str()
                .expect("ascii")
                .to_owned(),
        );
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 200, 429, 429, 429, 429],
        "six requests in all, whichever process answers"
    );
    assert_eq!(remaining[..6], ["5", "4", "3", "2", "1", "0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_long_export_finish_and_exits_cleanly() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let database = format!("sqlite:{}/drain.db", folder.path().display());
    let (mut child, base) = spawn_with(
        &database,
        "rampart-test:drain:",
        &[("RATE_LIMIT_ENABLED", "false"), ("REDIS_URL", "")],
    )
    .await;
    let client = reqwest::Client::new();
    let padding = "x".repeat(200);
    for batch in 0..4 {
        let events: Vec<Value> = (0..10_000)
            .map(|i| {
                json!({"actor": "importer", "action": "sync", "entity_type": "ticket",
                       "entity_id": format!("{batch}-{i}"), "data": {"pad": padding}})
            })
            .collect();
        let response = client
            .post(format!("{base}/api/events/bulk"))
            .json(&json!({ "events": events }))
            .send()
            .await
            .expect("reachable");
        assert_eq!(response.status(), 200);
    }
    let mut export = client
        .get(format!("{base}/api/events/export?format=ndjson"))
        .send()
        .await
        .expect("reachable");
    assert_eq!(export.status(), 200);
    let mut body = export
        .chunk()
        .await
        .expect("a first chunk")
        .expect("data")
        .to_vec();

    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = reqwest::Client::new()
        .get(format!("{base}/health"))
        .send()
        .await;
    assert!(refused.is_err(), "the listener stopped accepting");
    // The client reads slowly; the export still runs to its end.
    while let Some(chunk) = export.chunk().await.expect("the export is not cut") {
        body.extend_from_slice(&chunk);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert!(lines >= 40_000, "every event exported: {lines} lines");
    assert!(
        body.len() > 8 << 20,
        "larger than any socket buffer: {} bytes",
        body.len()
    );
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after draining")
        .expect("status");
    assert!(exit.success(), "exit status 0, got {exit}");
}

/// A stand-in OpenTelemetry collector: keeps the body of every `POST /v1/traces`.
async fn collector() -> (String, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    use axum::routing::post;
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            sink.lock().expect("not poisoned").extend_from_slice(&body);
            async { "" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, received)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_continue_the_callers_trace_over_otlp() {
    let (endpoint, received) = collector().await;
    let folder = tempfile::tempdir().expect("temporary folder");
    let database = format!("sqlite:{}/traces.db", folder.path().display());
    let (mut child, base) = spawn_with(
        &database,
        "rampart-test:traces:",
        &[
            ("RATE_LIMIT_ENABLED", "false"),
            ("REDIS_URL", ""),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let response = reqwest::Client::new()
        .get(format!("{base}/api/tasks/1"))
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), 200);
    let pid = child.id().expect("running").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(exit.success());
    let body = received.lock().expect("not poisoned").clone();
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(&hex_bytes(trace)),
        "a span in the caller's trace ({} bytes received)",
        body.len()
    );
    assert!(
        contains(&hex_bytes(parent)),
        "whose parent is the caller's span"
    );
    assert!(contains(b"GET /api/tasks/{id}"), "named after the route");
    assert!(contains(b"rampart-origin"), "from the origin's service");
}
