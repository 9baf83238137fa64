//! `POST /__rampart/purge` in workerd, in front of the real origin: by URL, by the origin's
//! `Cache-Tag`, and refused without the right token.

use rampart_tests::{cache_status, Edge, Origin};
use serde_json::{json, Value};

const TOKEN: &str = "purge-secret-for-tests";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_by_url_and_by_tag_with_the_token_only() {
    let origin = Origin::start().await;
    let edge = Edge::start_with_vars(&origin.url, &[("EDGE_PURGE_TOKEN", TOKEN)]).await;
    let client = rampart_tests::client();
    let status_of = |path: &'static str| {
        let (client, url) = (client.clone(), format!("{}{path}", edge.url));
        async move { cache_status(&client.get(url).send().await.expect("edge reachable")) }
    };
    for path in ["/api/tasks/1", "/api/tasks/2", "/api/tasks/3"] {
        let status = status_of(path).await;
        assert!(status.contains("stored"), "{path}: {status}");
        assert!(
            status_of(path).await.contains("rampart-edge; hit"),
            "{path} is cached"
        );
    }
    let purge = |body: Value, token: Option<&'static str>| {
        let mut request = client
            .post(format!("{}/__rampart/purge", edge.url))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.expect("edge reachable") }
    };

    let refused = purge(json!({"tags": ["task:1"]}), None).await;
    assert_eq!(refused.status(), 401);
    let refused = purge(json!({"tags": ["task:1"]}), Some("wrong")).await;
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.expect("JSON error");
    assert_eq!(body["code"], "UNAUTHORIZED");
    assert!(
        status_of("/api/tasks/1").await.contains("hit"),
        "a refused purge removes nothing"
    );
    let bad = purge(json!({"urls": ["not a url"]}), Some(TOKEN)).await;
    assert_eq!(bad.status(), 422);

    // By tag: the origin tags /api/tasks/1 with task:1.
    let by_tag = purge(json!({"tags": ["task:1"]}), Some(TOKEN)).await;
    assert_eq!(by_tag.status(), 200);
    let report: Value = by_tag.json().await.expect("report");
    assert_eq!(report["purged_tags"][0]["tag"], "task:1");
    assert_eq!(report["purged_tags"][0]["entries"], 1, "{report}");
    assert!(status_of("/api/tasks/1").await.contains("fwd=uri-miss"));
    assert!(
        status_of("/api/tasks/2").await.contains("hit"),
        "other tags stay"
    );

    // By URL, with a tracking parameter the key ignores.
    let url = format!("{}/api/tasks/2?utm_source=mail", edge.url);
    let by_url = purge(
        json!({"urls": [url, format!("{}/api/tasks/999", edge.url)]}),
        Some(TOKEN),
    )
    .await;
    let report: Value = by_url.json().await.expect("report");
    assert_eq!(
        report["purged_urls"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    assert_eq!(
        report["not_cached"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    assert!(status_of("/api/tasks/2").await.contains("fwd=uri-miss"));
    assert!(status_of("/api/tasks/3").await.contains("hit"));
}

/// Forwards `POST /__rampart/purge` to an address set once it is known (the origin starts
/// before the edge it purges).
#[derive(Clone, Default)]
struct Relay(std::sync::Arc<std::sync::Mutex<Option<String>>>);

async fn relay(
    axum::extract::State(relay): axum::extract::State<Relay>,
    headers: axum::http::HeaderMap,
    body: String,
) -> (axum::http::StatusCode, String) {
    let target = relay.0.lock().expect("lock").clone();
    let Some(target) = target else {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new());
    };
    let mut request = rampart_tests::client()
        .post(target)
        .header("content-type", "application/json")
        .body(body);
    if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        request = request.header("authorization", auth);
    }
    match request.send().await {
        Ok(response) => {
            let status = axum::http::StatusCode::from_u16(response.status().as_u16())
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
            (status, response.text().await.unwrap_or_default())
        }
        Err(error) => (axum::http::StatusCode::BAD_GATEWAY, error.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_at_the_origin_purges_the_worker_through_a_job() {
    let forward = Relay::default();
    let app = axum::Router::new()
        .route("/__rampart/purge", axum::routing::post(relay))
        .with_state(forward.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let relay_url = format!(
        "http://{}/__rampart/purge",
        listener.local_addr().expect("address")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let origin = Origin::start_with(|config| {
        config.application.edge_purge = Some(origin::config::EdgePurgeTarget {
            url: relay_url,
            token: Some(TOKEN.to_owned()),
        });
        config.application.admin_token = Some("admin".to_owned());
    })
    .await;
    let edge = Edge::start_with_vars(&origin.url, &[("EDGE_PURGE_TOKEN", TOKEN)]).await;
    *forward.0.lock().expect("lock") = Some(format!("{}/__rampart/purge", edge.url));
    let client = rampart_tests::client();
    let read = || {
        let (client, url) = (client.clone(), format!("{}/api/tasks/1", edge.url));
        async move {
            let response = client.get(url).send().await.expect("edge reachable");
            let status = cache_status(&response);
            let body: Value = response.json().await.expect("JSON task");
            (status, body)
        }
    };
    assert!(read().await.0.contains("stored"));
    assert!(read().await.0.contains("rampart-edge; hit"));

    let renamed = client
        .patch(format!("{}/api/tasks/1", origin.url))
        .json(&json!({"title": "Renamed at the origin"}))
        .send()
        .await
        .expect("origin reachable");
    assert_eq!(renamed.status(), 200);
    let started = std::time::Instant::now();
    loop {
        let (status, body) = read().await;
        if !status.contains("hit") {
            assert_eq!(body["title"], "Renamed at the origin", "{body}");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "the edge copy is purged: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let jobs: Value = client
        .get(format!("{}/api/admin/jobs", origin.url))
        .bearer_auth("admin")
        .send()
        .await
        .expect("origin reachable")
        .json()
        .await
        .expect("JSON");
    assert!(
        jobs["queues"]["edge-purge"]["completed"].as_u64() >= Some(1),
        "{jobs}"
    );
    assert_eq!(jobs["queues"]["edge-purge"]["dead"], 0, "{jobs}");
}
