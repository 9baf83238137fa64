//! The origin's response cache over real HTTP: hits skip the handler, revalidation gets 304,
//! personal requests and errors are never cached, and instances share entries through Redis.

mod common;

use common::{cache_status, metrics, start};
use origin::config::{Config, RedisConfig};

#[tokio::test]
async fn reads_are_cached_and_revalidated() {
    let origin = start(Config::default()).await;
    let base = origin.base.clone();
    let client = reqwest::Client::new();
    let first = client
        .get(format!("{base}/"))
        .send()
        .await
        .expect("reachable");
    assert_eq!(cache_status(&first), "rampart-origin; fwd=miss; stored");
    let etag = first.headers()["etag"].to_str().expect("ascii").to_owned();
    let body = first.text().await.expect("body");

    let second = client
        .get(format!("{base}/?utm_source=x"))
        .send()
        .await
        .expect("reachable");
    assert!(
        cache_status(&second).starts_with("rampart-origin; hit; ttl="),
        "{}",
        cache_status(&second)
    );
    assert!(second.headers().contains_key("age"));
    assert_eq!(second.headers()["etag"], etag.as_str());
    assert_eq!(
        second.headers()["cache-control"],
        "public, max-age=60, s-maxage=300, stale-while-revalidate=600, stale-if-error=86400"
    );
    assert_eq!(second.text().await.expect("body"), body);

    let not_modified = client
        .get(format!("{base}/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("reachable");
    assert_eq!(not_modified.status(), 304);
    assert!(not_modified.text().await.expect("body").is_empty());

    let metrics = metrics(&base).await;
    assert!(
        metrics.contains("cache_hits_total{cache=\"memory\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cache_misses_total{cache=\"memory\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("cache=\"redis\""),
        "no Redis level configured"
    );
}

#[tokio::test]
async fn personal_requests_and_errors_are_not_cached() {
    let origin = start(Config::default()).await;
    let base = origin.base.clone();
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let personal = client
            .get(format!("{base}/"))
            .header("cookie", "session=1")
            .send()
            .await
            .expect("reachable");
        assert_eq!(
            cache_status(&personal),
            "",
            "personal requests never touch the cache"
        );
        let missing = client
            .get(format!("{base}/nope"))
            .send()
            .await
            .expect("reachable");
        assert_eq!(missing.status(), 404);
        assert_eq!(
            cache_status(&missing),
            "rampart-origin; fwd=miss",
            "a 404 with no-store is never stored"
        );
    }
}

#[tokio::test]
async fn instances_share_responses_through_redis() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let config = Config {
        redis: RedisConfig {
            url: Some(
                std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
            ),
            key_prefix: format!("rampart-test:origin:{}:{nanos}:", std::process::id()),
            ..RedisConfig::default()
        },
        ..Config::default()
    };
    let (origin_a, origin_b) = (start(config.clone()).await, start(config).await);
    let (a, b) = (origin_a.base.clone(), origin_b.base.clone());
    // Behind a load balancer both instances see the same public host, hence the same keys.
    let client = reqwest::Client::new();
    let get = |base: String| {
        client
            .get(format!("{base}/"))
            .header("host", "app.example")
            .send()
    };
    let first = get(a).await.expect("reachable");
    assert_eq!(cache_status(&first), "rampart-origin; fwd=miss; stored");
    let from_b = get(b).await.expect("reachable");
    assert!(
        cache_status(&from_b).starts_with("rampart-origin; hit"),
        "B serves A's entry: {}",
        cache_status(&from_b)
    );
}
