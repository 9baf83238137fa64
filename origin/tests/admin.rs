//! Admin routes: off without ADMIN_TOKEN, bearer-protected with it, and an invalidation really
//! empties the cache for the next request.

mod common;

use common::{cache_status, start};
use origin::config::{ApplicationConfig, Config};
use serde_json::{json, Value};

fn with_token() -> Config {
    Config {
        application: ApplicationConfig {
            admin_token: Some("s3cret-token".to_owned()),
            ..ApplicationConfig::default()
        },
        ..Config::default()
    }
}

#[tokio::test]
async fn disabled_without_a_token() {
    let origin = start(Config::default()).await;
    let base = origin.base.clone();
    let client = reqwest::Client::new();
    let stats = client
        .get(format!("{base}/api/cache/stats"))
        .bearer_auth("anything")
        .send()
        .await
        .expect("reachable");
    assert_eq!(stats.status(), 403);
    let body: Value = stats.json().await.expect("json");
    assert_eq!(body["code"], "ADMIN_DISABLED");
    let invalidate = client
        .post(format!("{base}/api/admin/cache/invalidate"))
        .json(&json!({"tags": ["html"]}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(invalidate.status(), 403);
}

#[tokio::test]
async fn the_token_is_required_and_checked() {
    let origin = start(with_token()).await;
    let base = origin.base.clone();
    let client = reqwest::Client::new();
    let missing = client
        .get(format!("{base}/api/cache/stats"))
        .send()
        .await
        .expect("reachable");
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let wrong = client
        .get(format!("{base}/api/cache/stats"))
        .bearer_auth("s3cret-tokem")
        .send()
        .await
        .expect("reachable");
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.expect("json");
    assert_eq!(body["code"], "UNAUTHORIZED");
    let right = client
        .get(format!("{base}/api/cache/stats"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .expect("reachable");
    assert_eq!(right.status(), 200);
    assert_eq!(right.headers()["cache-control"], "private, no-store");
    let body: Value = right.json().await.expect("json");
    assert!(body["levels"]["memory"]["entries"].is_u64());
}

#[tokio::test]
async fn invalidation_empties_the_cache() {
    let origin = start(with_token()).await;
    let base = origin.base.clone();
    let client = reqwest::Client::new();
    client
        .get(format!("{base}/"))
        .send()
        .await
        .expect("reachable");
    let hit = client
        .get(format!("{base}/"))
        .send()
        .await
        .expect("reachable");
    assert!(cache_status(&hit).contains("hit"));

    let response = client
        .post(format!("{base}/api/admin/cache/invalidate"))
        .bearer_auth("s3cret-token")
        .json(&json!({"tags": ["html"]}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["invalidated"], 1);
    let after = client
        .get(format!("{base}/"))
        .send()
        .await
        .expect("reachable");
    assert_eq!(cache_status(&after), "rampart-origin; fwd=miss; stored");

    let stats: Value = client
        .get(format!("{base}/api/cache/stats"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (
            stats["hits"].as_u64(),
            stats["misses"].as_u64(),
            stats["invalidated"].as_u64()
        ),
        (Some(1), Some(2), Some(1))
    );
}

#[tokio::test]
async fn bad_invalidation_requests_are_refused() {
    let origin = start(with_token()).await;
    let base = origin.base.clone();
    let client = reqwest::Client::new();
    let post = |body: String| {
        client
            .post(format!("{base}/api/admin/cache/invalidate"))
            .bearer_auth("s3cret-token")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let empty = post("{}".into()).await.expect("reachable");
    assert_eq!(empty.status(), 422);
    let body: Value = empty.json().await.expect("json");
    assert_eq!(body["code"], "VALIDATION_ERROR");
    assert_eq!(body["metadata"]["fields"][0]["field"], "tags");
    assert_eq!(
        post("{\"tags\": [\"\"]}".into())
            .await
            .expect("reachable")
            .status(),
        422
    );
    assert_eq!(
        post("{not json".into()).await.expect("reachable").status(),
        400
    );
    assert_eq!(
        post("{\"tagz\": [\"a\"]}".into())
            .await
            .expect("reachable")
            .status(),
        400
    );
}
