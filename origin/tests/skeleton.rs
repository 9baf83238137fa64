//! The origin over real HTTP on port 0: health, policy headers, assets, errors, metrics and
//! graceful shutdown.

mod common;

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

struct Running {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), origin::server::ServeError>>,
    _folder: tempfile::TempDir,
}

async fn start() -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let base = format!("http://{}", listener.local_addr().expect("bound"));
    let (stop, stopped) = oneshot::channel::<()>();
    let folder = tempfile::tempdir().expect("temporary folder");
    let config = common::test_config(origin::config::Config::default(), &folder);
    let task = tokio::spawn(origin::server::run(listener, config, async move {
        let _ = stopped.await;
    }));
    Running {
        base,
        stop: Some(stop),
        task,
        _folder: folder,
    }
}

#[tokio::test]
async fn health_is_json_and_never_cached() {
    let origin = start().await;
    let response = reqwest::get(format!("{}/health", origin.base))
        .await
        .expect("reachable");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "healthy");
    assert!(body["uptime_seconds"].is_u64());
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn pages_and_assets_carry_the_shared_policy() {
    let origin = start().await;
    let home = reqwest::get(format!("{}/", origin.base))
        .await
        .expect("reachable");
    assert_eq!(home.status(), 200);
    let headers = home.headers().clone();
    assert_eq!(
        headers["cache-control"],
        "public, max-age=60, s-maxage=300, stale-while-revalidate=600, stale-if-error=86400"
    );
    assert_eq!(headers["cache-tag"], "html,tasks");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"]
        .to_str()
        .expect("ascii")
        .contains("frame-ancestors 'none'"));
    let html = home.text().await.expect("body");
    let css = html
        .split("href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("stylesheet link");
    assert!(
        css.starts_with("/assets/rampart.") && css.ends_with(".css"),
        "{css}"
    );

    let asset = reqwest::get(format!("{}{css}", origin.base))
        .await
        .expect("reachable");
    assert_eq!(asset.status(), 200);
    assert_eq!(
        asset.headers()["cache-control"],
        "public, max-age=31536000, s-maxage=31536000, immutable"
    );
    assert_eq!(
        asset.headers()["cross-origin-resource-policy"],
        "cross-origin"
    );
    assert!(asset.headers().contains_key("etag"));
}

#[tokio::test]
async fn personal_requests_are_private() {
    let origin = start().await;
    let client = reqwest::Client::new();
    // An anonymous request first: its decision is remembered, and must not leak to personal
    // requests for the same page.
    let anonymous = client
        .get(format!("{}/", origin.base))
        .send()
        .await
        .expect("reachable");
    assert!(anonymous.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .starts_with("public"));
    let response = client
        .get(format!("{}/", origin.base))
        .header("cookie", "session=abc")
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.headers()["cache-control"], "private, no-store");
    assert!(!response.headers().contains_key("cache-tag"));
}

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    let origin = start().await;
    let response = reqwest::get(format!("{}/nope/x", origin.base))
        .await
        .expect("reachable");
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "NOT_FOUND");
    assert_eq!(body["statusCode"], 404);
    let missing_asset = reqwest::get(format!("{}/assets/nope.css", origin.base))
        .await
        .expect("reachable");
    assert_eq!(missing_asset.status(), 404);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let origin = start().await;
    for _ in 0..3 {
        reqwest::get(format!("{}/health", origin.base))
            .await
            .expect("reachable");
    }
    reqwest::get(format!("{}/assets/a-b-c.css", origin.base))
        .await
        .expect("reachable");
    let text = common::metrics(&origin.base).await;
    assert!(
        text.contains("http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("route=\"/assets/{file}\",status=\"404\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn shutdown_drains_and_stops() {
    let mut origin = start().await;
    reqwest::get(format!("{}/health", origin.base))
        .await
        .expect("reachable");
    if let Some(stop) = origin.stop.take() {
        stop.send(()).expect("server still running");
    }
    let result = tokio::time::timeout(Duration::from_secs(10), &mut origin.task).await;
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "server did not stop cleanly: {result:?}"
    );
    assert!(reqwest::get(format!("{}/health", origin.base))
        .await
        .is_err());
}

#[tokio::test]
async fn cache_hits_leave_with_the_same_headers_as_the_miss() {
    let origin = start().await;
    let url = format!("{}/api/tasks/7", origin.base);
    let miss = reqwest::get(&url).await.expect("reachable");
    let hit = reqwest::get(&url).await.expect("reachable");
    assert!(hit.headers()["cache-status"]
        .to_str()
        .expect("ascii")
        .contains("hit"));
    let varying = ["cache-status", "age", "date", "x-request-id"];
    let heads = [&miss, &hit].map(|response| {
        let mut head: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(name, _)| !varying.contains(&name.as_str()))
            .map(|(name, value)| (name.to_string(), value.to_str().expect("ascii").to_owned()))
            .collect();
        head.sort();
        head
    });
    assert_eq!(heads[0], heads[1]);
    for name in [
        "content-security-policy",
        "strict-transport-security",
        "cache-tag",
        "etag",
    ] {
        assert!(hit.headers().contains_key(name), "{name} on a hit");
    }
    assert!(!hit.headers().contains_key("server"));
}

#[tokio::test]
async fn oversized_request_heads_get_431() {
    let origin = start().await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/health", origin.base))
        .header("x-padding", "a".repeat(20 * 1024))
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), 431);
    let fine = client
        .get(format!("{}/health", origin.base))
        .header("x-padding", "a".repeat(4 * 1024))
        .send()
        .await
        .expect("reachable");
    assert_eq!(fine.status(), 200);
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let origin = start().await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/tasks/1", origin.base);
    let given = client
        .get(&url)
        .header("x-request-id", "edge-4f2a:1")
        .send()
        .await
        .expect("reachable");
    assert_eq!(given.headers()["x-request-id"], "edge-4f2a:1");
    let mut made = Vec::new();
    for bad in ["", "no spaces allowed"] {
        let response = client
            .get(&url)
            .header("x-request-id", bad)
            .send()
            .await
            .expect("reachable");
        let id = response.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_eq!(id.len(), 16, "a new id replaces {bad:?}: {id}");
        made.push(id);
    }
    assert_ne!(made[0], made[1]);
}
