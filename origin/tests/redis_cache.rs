//! The cache's Redis level against a real Redis (`REDIS_URL`, default 127.0.0.1:6379): values are
//! shared between instances, invalidations reach every instance, and an unreachable Redis never
//! fails a request.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use origin::core::cache::{CacheOptions, RedisTier, TieredCache};
use origin::core::dependencies::redis::RedisTarget;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn target(url: &str) -> RedisTarget {
    RedisTarget::node(url).expect("a valid Redis URL")
}

/// A prefix no other test run uses.
fn prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("rampart-test:{test}:{}:{nanos}:", std::process::id())
}

fn instance(prefix: &str) -> TieredCache {
    let tier = RedisTier::new(&target(&redis_url()), prefix, Duration::from_millis(500))
        .expect("connects");
    TieredCache::new(1 << 20).with_redis(tier)
}

fn options(tags: &[&str]) -> CacheOptions {
    CacheOptions {
        ttl: Duration::from_secs(60),
        stale_while_revalidate: Duration::from_secs(30),
        stale_if_error: Duration::ZERO,
        keep: Duration::ZERO,
        stale_if_unreachable: false,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    }
}

fn loader(
    calls: &Arc<AtomicU32>,
    value: &'static str,
) -> impl FnOnce() -> std::future::Ready<Result<Bytes, String>> {
    let calls = Arc::clone(calls);
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(Bytes::from_static(value.as_bytes())))
    }
}

#[tokio::test]
async fn instances_share_values_through_redis() {
    let prefix = prefix("share");
    let (a, b) = (instance(&prefix), instance(&prefix));
    let calls = Arc::new(AtomicU32::new(0));
    let big: &'static str = Box::leak("x".repeat(5000).into_boxed_str());
    let first = a
        .get_with_refresh("task/1", options(&["task:1"]), loader(&calls, big))
        .await
        .expect("loads");
    assert_eq!(first.outcome.as_str(), "miss");
    let second = b
        .get_with_refresh("task/1", options(&["task:1"]), loader(&calls, "other"))
        .await
        .expect("hit");
    assert_eq!(second.outcome.as_str(), "hit", "B found A's value in Redis");
    assert_eq!(second.value, big);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let stats = b.stats().await;
    assert_eq!((stats.redis_hits, stats.redis_errors), (1, 0));
}

#[tokio::test]
async fn invalidation_reaches_every_instance() {
    let prefix = prefix("invalidate");
    let (a, b) = (instance(&prefix), instance(&prefix));
    // Give both subscriptions a moment to be established.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = Arc::new(AtomicU32::new(0));
    a.get_with_refresh("task/2", options(&["task:2"]), loader(&calls, "v1"))
        .await
        .expect("loads");
    b.get_with_refresh("task/2", options(&["task:2"]), loader(&calls, "v1"))
        .await
        .expect("hit");
    assert_eq!(
        b.stats().await.entries,
        1,
        "B holds its own in-process copy"
    );

    a.invalidate_tags(&["task:2".to_owned()]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while b.stats().await.entries > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never dropped its copy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reloaded = b
        .get_with_refresh("task/2", options(&["task:2"]), loader(&calls, "v2"))
        .await
        .expect("loads");
    assert_eq!(
        (reloaded.outcome.as_str(), reloaded.value.as_ref()),
        ("miss", &b"v2"[..]),
        "Redis copy deleted too"
    );
}

#[tokio::test]
async fn an_unreachable_redis_fails_open() {
    // Port 1 on loopback: nothing listens there.
    let tier = RedisTier::new(
        &target("redis://127.0.0.1:1"),
        &prefix("down"),
        Duration::from_millis(200),
    )
    .expect("valid URL");
    let cache = TieredCache::new(1 << 20).with_redis(tier);
    let calls = Arc::new(AtomicU32::new(0));
    let first = cache
        .get_with_refresh("k", options(&["t"]), loader(&calls, "v"))
        .await
        .expect("served without Redis");
    assert_eq!(first.outcome.as_str(), "miss");
    let second = cache
        .get_with_refresh("k", options(&["t"]), loader(&calls, "v"))
        .await
        .expect("served from memory");
    assert_eq!(second.outcome.as_str(), "hit");
    cache.invalidate_tags(&["t".to_owned()]).await;
    assert!(
        cache.stats().await.redis_errors >= 2,
        "failures are counted"
    );
}
