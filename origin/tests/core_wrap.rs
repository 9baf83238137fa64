//! The origin core wraps any axum application: here a handler that counts its runs. 500
//! concurrent requests for one cold key run it exactly once.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::serve_wrapped;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_misses_run_the_handler_once() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&runs);
    // `/api/stats` is cacheable in the shared policy (5 minutes, tag `stats`).
    let app = Router::new().route(
        "/api/stats",
        get(move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                "{\"tasks\": 1000}"
            }
        }),
    );
    let base = serve_wrapped(app).await;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(500)
        .build()
        .expect("client");
    let requests = (0..500).map(|_| {
        let client = client.clone();
        let url = format!("{base}/api/stats");
        tokio::spawn(async move {
            let response = client.get(url).send().await.expect("reachable");
            let status = response.headers()["cache-status"]
                .to_str()
                .expect("ascii")
                .to_owned();
            (status, response.text().await.expect("body"))
        })
    });
    let results = futures::future::join_all(requests).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the handler ran once for 500 requests"
    );
    let statuses: Vec<String> = results.into_iter().map(|r| r.expect("task").0).collect();
    let leaders = statuses
        .iter()
        .filter(|s| s.as_str() == "rampart-origin; fwd=miss; stored")
        .count();
    assert_eq!(leaders, 1, "exactly one request loaded");
    assert!(statuses
        .iter()
        .all(|s| s.contains("collapsed") || s.contains("hit") || s.ends_with("stored")));
}

#[tokio::test]
async fn a_no_store_response_is_not_reported_as_stored() {
    // `/api/stats` is cacheable by policy, but this handler forbids storing its answer.
    let app = Router::new().route(
        "/api/stats",
        get(|| async { ([("cache-control", "no-store")], "{\"personal\": true}") }),
    );
    let base = serve_wrapped(app).await;
    for _ in 0..2 {
        let response = reqwest::get(format!("{base}/api/stats"))
            .await
            .expect("reachable");
        assert_eq!(
            response.headers()["cache-status"],
            "rampart-origin; fwd=miss"
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
}
