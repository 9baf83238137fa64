//! `POST /__rampart/purge` in workerd, in front of the real origin: by URL, by the origin's
//! `Cache-Tag`, and refused without the right token.

use rampart_tests::{cache_status, Edge, Origin};
use serde_json::{json, Value};

const TOKEN: &str = "purge-secret-for-tests";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_by_url_and_by_tag_with_the_token_only() {
    let origin = Origin::start().await;
    let edge = Edge::start_with_vars(&origin.url, &[("EDGE_PURGE_TOKEN", TOKEN)]).await;
    let client = reqwest::Client::new();
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
