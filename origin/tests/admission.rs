//! Load shedding and request timeouts, around an application whose handler takes its time.

mod common;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::serve_wrapped_with;
use origin::core::layers::admission::AdmissionLimits;
use serde_json::Value;

async fn statuses(base: &str, path: &str, count: usize) -> Vec<(u16, String, String)> {
    let client = reqwest::Client::new();
    let requests = (0..count).map(|n| {
        let client = client.clone();
        let url = format!("{base}{path}?n={n}");
        async move {
            // Staggered, so that the order of arrival is known.
            tokio::time::sleep(Duration::from_millis(30 * n as u64)).await;
            let response = client.get(url).send().await.expect("reachable");
            let status = response.status().as_u16();
            let retry = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().expect("ascii").to_owned())
                .unwrap_or_default();
            let code = response
                .json::<Value>()
                .await
                .map(|body| body["code"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_default();
            (status, retry, code)
        }
    });
    futures::future::join_all(requests).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_beyond_the_queue_is_shed_at_once() {
    let base = serve_wrapped_with(
        common::slow_app(Duration::from_millis(400)),
        &common::admission_config(AdmissionLimits {
            max_concurrent: 1,
            max_queued: 1,
            queue_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
        }),
    )
    .await;
    let results = statuses(&base, "/api/slow", 3).await;
    assert_eq!(results[0].0, 200, "first runs");
    assert_eq!(results[1].0, 200, "second waits in the queue, then runs");
    assert_eq!(
        results[2],
        (503, "1".to_owned(), "SERVICE_UNAVAILABLE".to_owned()),
        "third finds the queue full"
    );
    let health = reqwest::get(format!("{base}/health/live"))
        .await
        .expect("reachable");
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_and_handling_are_bounded_in_time() {
    let base = serve_wrapped_with(
        common::slow_app(Duration::from_millis(400)),
        &common::admission_config(AdmissionLimits {
            max_concurrent: 1,
            max_queued: 10,
            queue_timeout: Duration::from_millis(100),
            request_timeout: Duration::from_secs(5),
        }),
    )
    .await;
    let results = statuses(&base, "/api/slow", 2).await;
    assert_eq!(results[0].0, 200);
    assert_eq!(results[1].0, 503, "waited 100 ms for a slot, then shed");

    let timed = serve_wrapped_with(
        common::slow_app(Duration::from_millis(400)),
        &common::admission_config(AdmissionLimits {
            request_timeout: Duration::from_millis(100),
            ..AdmissionLimits::default()
        }),
    )
    .await;
    let results = statuses(&timed, "/api/slow", 1).await;
    assert_eq!(results[0], (504, String::new(), "TIMEOUT".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_rule_can_have_its_own_request_timeout() {
    let app = common::slow_app(Duration::from_millis(300)).route(
        "/api/stats",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "aggregates"
        }),
    );
    let mut config = common::admission_config(AdmissionLimits {
        request_timeout: Duration::from_millis(100),
        ..AdmissionLimits::default()
    });
    config.resilience.request_timeout_rules = vec![("stats".to_owned(), Duration::from_secs(2))];
    let base = serve_wrapped_with(app, &config).await;
    assert_eq!(
        statuses(&base, "/api/stats", 1).await[0].0,
        200,
        "stats may take 2 s"
    );
    assert_eq!(
        statuses(&base, "/api/slow", 1).await[0].0,
        504,
        "the rest 100 ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_routes_the_policy_exempts_skip_admission() {
    let slow = || async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        "done"
    };
    let app = Router::new()
        .route("/api/auth/login", get(slow))
        .route("/api/cache/report", get(slow));
    let base = serve_wrapped_with(
        app,
        &common::admission_config(AdmissionLimits {
            max_concurrent: 4,
            max_queued: 4,
            queue_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_millis(150),
        }),
    )
    .await;
    let get = |path: &str| reqwest::get(format!("{base}{path}"));
    let auth = get("/api/auth/login").await.expect("reachable");
    assert_eq!(
        auth.status(),
        504,
        "auth routes are rate limited hard but not exempt from the request timeout"
    );
    let admin = get("/api/cache/report").await.expect("reachable");
    assert_eq!(
        admin.status(),
        200,
        "cache-admin is exempt (exempt_from_admission)"
    );
}
