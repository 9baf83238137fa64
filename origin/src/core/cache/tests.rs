//! Cache behaviour under controlled time: freshness, stale-while-revalidate with exactly one
//! refresh, single flight, invalidation (including during a load), errors and the byte bound.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::{advance, Duration};

use super::*;

fn options(ttl: u64, swr: u64, tags: &[&str]) -> CacheOptions {
    CacheOptions {
        ttl: Duration::from_secs(ttl),
        stale_while_revalidate: Duration::from_secs(swr),
        stale_if_error: Duration::ZERO,
        keep: Duration::ZERO,
        stale_if_unreachable: false,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    }
}

/// A loader that counts its calls and answers `v<n>` after `delay`.
fn counting(
    calls: &Arc<AtomicU32>,
    delay: Duration,
) -> impl FnOnce() -> BoxedLoad + Send + 'static {
    let calls = Arc::clone(calls);
    move || {
        Box::pin(async move {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(delay).await;
            Ok::<_, String>(Bytes::from(format!("v{n}")))
        })
    }
}

/// Lets a background load of `key` finish (sleeping lets paused time auto-advance).
async fn settle(cache: &TieredCache, key: &str) {
    for _ in 0..1000 {
        if !cache.flights.is_running(key) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the load of {key} never finished");
}

type BoxedLoad = std::pin::Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send>>;

#[tokio::test(start_paused = true)]
async fn fresh_then_stale_with_one_refresh_then_expired() {
    let cache = TieredCache::new(1 << 20);
    let calls = Arc::new(AtomicU32::new(0));
    let first = cache
        .get_with_refresh("k", options(60, 30, &[]), counting(&calls, Duration::ZERO))
        .await
        .expect("loads");
    assert_eq!(
        (first.value.as_ref(), first.outcome),
        (
            &b"v1"[..],
            Outcome::Miss {
                collapsed: false,
                stored: true
            }
        )
    );

    advance(Duration::from_secs(10)).await;
    let hit = cache
        .get_with_refresh("k", options(60, 30, &[]), counting(&calls, Duration::ZERO))
        .await
        .expect("hit");
    assert_eq!(
        hit.outcome,
        Outcome::Hit {
            remaining: Duration::from_secs(50)
        }
    );
    assert_eq!(hit.age, Duration::from_secs(10));

    // Stale: served at once, many times, with exactly one background refresh.
    advance(Duration::from_secs(55)).await;
    for _ in 0..5 {
        let stale = cache
            .get_with_refresh(
                "k",
                options(60, 30, &[]),
                counting(&calls, Duration::from_secs(1)),
            )
            .await
            .expect("stale");
        assert_eq!(
            (stale.value.as_ref(), stale.outcome),
            (&b"v1"[..], Outcome::Stale)
        );
    }
    advance(Duration::from_secs(2)).await;
    settle(&cache, "k").await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "exactly one refresh");
    let refreshed = cache
        .get_with_refresh("k", options(60, 30, &[]), counting(&calls, Duration::ZERO))
        .await
        .expect("hit");
    assert_eq!(
        (refreshed.value.as_ref(), refreshed.outcome.as_str()),
        (&b"v2"[..], "hit")
    );

    // Past both windows: loaded again, in the foreground.
    advance(Duration::from_secs(200)).await;
    let reloaded = cache
        .get_with_refresh("k", options(60, 30, &[]), counting(&calls, Duration::ZERO))
        .await
        .expect("loads");
    assert_eq!(
        (reloaded.value.as_ref(), reloaded.outcome.as_str()),
        (&b"v3"[..], "miss")
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_share_one_load() {
    let cache = TieredCache::new(1 << 20);
    let calls = Arc::new(AtomicU32::new(0));
    let requests = (0..50).map(|_| {
        cache.get_with_refresh(
            "hot",
            options(60, 0, &[]),
            counting(&calls, Duration::from_millis(100)),
        )
    });
    let results = futures::future::join_all(requests).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_ok_and(|c| c.value == "v1")));
    let collapsed = results
        .iter()
        .filter(|r| {
            r.as_ref().is_ok_and(|c| {
                c.outcome
                    == Outcome::Miss {
                        collapsed: true,
                        stored: true,
                    }
            })
        })
        .count();
    assert_eq!(collapsed, 49);
    let stats = cache.stats().await;
    assert_eq!((stats.misses, stats.collapsed), (1, 49));
}

#[tokio::test(start_paused = true)]
async fn errors_are_shared_and_not_cached() {
    let cache = TieredCache::new(1 << 20);
    let calls = Arc::new(AtomicU32::new(0));
    let failing = |calls: &Arc<AtomicU32>| {
        let calls = Arc::clone(calls);
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            Err::<Bytes, _>("database unavailable")
        }
    };
    let (a, b) = tokio::join!(
        cache.get_with_refresh("e", options(60, 0, &[]), failing(&calls)),
        cache.get_with_refresh("e", options(60, 0, &[]), failing(&calls)),
    );
    assert_eq!(a.expect_err("fails").to_string(), "database unavailable");
    assert!(b.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let retry = cache
        .get_with_refresh("e", options(60, 0, &[]), counting(&calls, Duration::ZERO))
        .await
        .expect("loads");
    assert_eq!(retry.outcome.as_str(), "miss");
    assert_eq!(cache.stats().await.load_errors, 1);
}

#[tokio::test(start_paused = true)]
async fn tags_and_keys_invalidate() {
    let cache = TieredCache::new(1 << 20);
    let calls = Arc::new(AtomicU32::new(0));
    for (key, tags) in [
        ("task/1", &["task:1", "tasks"][..]),
        ("task/2", &["task:2", "tasks"][..]),
        ("stats", &["stats"][..]),
    ] {
        cache
            .get_with_refresh(key, options(300, 0, tags), counting(&calls, Duration::ZERO))
            .await
            .expect("loads");
    }
    assert_eq!(cache.invalidate_tags(&["task:1".to_owned()]).await, 1);
    let again = cache
        .get_with_refresh(
            "task/1",
            options(300, 0, &["task:1", "tasks"]),
            counting(&calls, Duration::ZERO),
        )
        .await
        .expect("loads");
    assert_eq!(again.outcome.as_str(), "miss");
    // The reloaded entry is indexed again (replacement must not drop it from its tags).
    assert_eq!(cache.invalidate_tags(&["tasks".to_owned()]).await, 2);
    assert_eq!(
        cache
            .invalidate_keys(&["stats".to_owned(), "absent".to_owned()])
            .await,
        1
    );
    assert_eq!(cache.stats().await.entries, 0);
}

#[tokio::test(start_paused = true)]
async fn an_invalidation_during_a_load_is_not_undone() {
    let cache = TieredCache::new(1 << 20);
    let calls = Arc::new(AtomicU32::new(0));
    let slow = cache.get_with_refresh(
        "k",
        options(300, 0, &["t"]),
        counting(&calls, Duration::from_secs(1)),
    );
    let invalidate = async {
        advance(Duration::from_millis(500)).await;
        cache.invalidate_tags(&["t".to_owned()]).await
    };
    let (loaded, _) = tokio::join!(slow, invalidate);
    assert_eq!(loaded.expect("the caller still gets its value").value, "v1");
    let next = cache
        .get_with_refresh(
            "k",
            options(300, 0, &["t"]),
            counting(&calls, Duration::ZERO),
        )
        .await
        .expect("loads");
    assert_eq!(
        next.outcome.as_str(),
        "miss",
        "the value read before the invalidation was not stored"
    );
}

#[tokio::test]
async fn the_byte_bound_holds() {
    let cache = TieredCache::new(64 * 1024);
    for i in 0..200 {
        let loader = move || async move { Ok::<_, String>(Bytes::from(vec![b'x'; 4096 + i])) };
        cache
            .get_with_refresh(&format!("k{i}"), options(300, 0, &[]), loader)
            .await
            .expect("loads");
    }
    let stats = cache.stats().await;
    assert!(stats.bytes <= 64 * 1024, "{} bytes held", stats.bytes);
    assert!(stats.entries < 200);
}

#[tokio::test(start_paused = true)]
async fn a_failed_load_inside_stale_if_error_serves_the_stale_value() {
    let cache = TieredCache::new(1 << 20);
    let calls = Arc::new(AtomicU32::new(0));
    let sie = CacheOptions {
        stale_if_error: Duration::from_secs(100),
        ..options(10, 0, &[])
    };
    cache
        .get_with_refresh("k", sie.clone(), counting(&calls, Duration::ZERO))
        .await
        .expect("loads");
    advance(Duration::from_secs(20)).await;
    let failure = || async {
        Ok::<_, String>(Loaded {
            options: None,
            age: Duration::ZERO,
            value: Bytes::from_static(b"503"),
            store: false,
            failed: true,
            unreachable: false,
        })
    };
    let stood_in = cache
        .get_with_refresh("k", sie.clone(), failure)
        .await
        .expect("served");
    assert_eq!(
        (stood_in.value.as_ref(), stood_in.outcome),
        (&b"v1"[..], Outcome::StaleOnError)
    );
    let errored = cache
        .get_with_refresh("k", sie.clone(), || async { Err::<Bytes, _>("down") })
        .await
        .expect("served");
    assert_eq!(errored.outcome, Outcome::StaleOnError);
    assert_eq!(cache.stats().await.stale_on_error, 2);

    advance(Duration::from_secs(100)).await;
    let late = cache
        .get_with_refresh("k", sie.clone(), failure)
        .await
        .expect("the failure itself");
    assert_eq!(
        late.value.as_ref(),
        b"503",
        "past the window the failure is served"
    );
    let recovered = cache
        .get_with_refresh("k", sie, counting(&calls, Duration::ZERO))
        .await
        .expect("loads");
    assert_eq!(recovered.value.as_ref(), b"v2");
}

/// A loader whose source could not be reached (`unreachable`) or answered with an error.
fn failing(unreachable: bool) -> impl FnOnce() -> std::future::Ready<Result<Loaded, String>> {
    move || {
        std::future::ready(Ok(Loaded {
            unreachable,
            failed: true,
            store: false,
            ..Loaded::from(Bytes::from_static(b"502"))
        }))
    }
}

#[tokio::test(start_paused = true)]
async fn a_kept_copy_stands_in_only_for_a_source_that_could_not_be_reached() {
    let cache = TieredCache::new(1 << 20);
    let calls = Arc::new(AtomicU32::new(0));
    let kept = CacheOptions {
        keep: Duration::from_secs(100),
        stale_if_unreachable: true,
        ..options(10, 0, &[])
    };
    let forbidden = CacheOptions {
        stale_if_unreachable: false,
        ..kept.clone()
    };
    for (key, options) in [("may", &kept), ("may-not", &forbidden)] {
        cache
            .get_with_refresh(key, options.clone(), counting(&calls, Duration::ZERO))
            .await
            .expect("loads");
    }
    advance(Duration::from_secs(20)).await;
    let answered = cache
        .get_with_refresh("may", kept.clone(), failing(false))
        .await
        .expect("answered");
    assert_eq!(
        answered.value.as_ref(),
        b"502",
        "an answer, even a 5xx, is one"
    );
    let stood_in = cache
        .get_with_refresh("may", kept.clone(), failing(true))
        .await
        .expect("served");
    assert_eq!(
        (stood_in.value.as_ref(), stood_in.outcome.as_str()),
        (&b"v1"[..], "stale-unreachable")
    );
    let refused = cache
        .get_with_refresh("may-not", forbidden, failing(true))
        .await
        .expect("answered");
    assert_eq!(refused.value.as_ref(), b"502", "its response forbade it");

    advance(Duration::from_secs(100)).await;
    let gone = cache
        .get_with_refresh("may", kept, failing(true))
        .await
        .expect("answered");
    assert_eq!(gone.value.as_ref(), b"502", "no longer kept");
}

#[tokio::test(start_paused = true)]
async fn an_invalidated_entry_stands_in_only_for_a_failed_reload() {
    let cache = TieredCache::new(1 << 20);
    let calls = Arc::new(AtomicU32::new(0));
    let with_sie = CacheOptions {
        stale_if_error: Duration::from_secs(3600),
        ..options(300, 60, &["task:1"])
    };
    let loaded = cache
        .get_with_refresh("task/1", with_sie.clone(), counting(&calls, Duration::ZERO))
        .await
        .expect("loads");
    assert_eq!(loaded.value, Bytes::from("v1"));
    assert_eq!(cache.invalidate_tags(&["task:1".to_owned()]).await, 1);

    // The next read loads again: a write is read back at once.
    let reread = cache
        .get_with_refresh("task/1", with_sie.clone(), counting(&calls, Duration::ZERO))
        .await
        .expect("loads");
    assert_eq!(
        (reread.outcome.as_str(), reread.value),
        ("miss", Bytes::from("v2"))
    );

    // Invalidated again, and the database is down: the old copy stands in.
    assert_eq!(cache.invalidate_tags(&["task:1".to_owned()]).await, 1);
    let failure = || async {
        Ok::<_, String>(Loaded {
            value: Bytes::from_static(b"503"),
            store: false,
            failed: true,
            unreachable: false,
            options: None,
            age: Duration::ZERO,
        })
    };
    let stood_in = cache
        .get_with_refresh("task/1", with_sie.clone(), failure)
        .await
        .expect("served");
    assert_eq!(
        (stood_in.outcome.as_str(), stood_in.value),
        ("stale-if-error", Bytes::from("v2"))
    );

    // Past its stale-if-error window, nothing stands in.
    advance(Duration::from_secs(3601)).await;
    let failed = cache
        .get_with_refresh("task/1", with_sie, failure)
        .await
        .expect("answered");
    assert_eq!(failed.value, Bytes::from_static(b"503"));

    // Without a stale-if-error window, an invalidated entry is gone at once.
    let without = options(300, 60, &["stats"]);
    cache
        .get_with_refresh("stats", without.clone(), counting(&calls, Duration::ZERO))
        .await
        .expect("loads");
    cache.invalidate_keys(&["stats".to_owned()]).await;
    let failed = cache
        .get_with_refresh("stats", without, failure)
        .await
        .expect("answered");
    assert_eq!(failed.value, Bytes::from_static(b"503"));
}

#[tokio::test]
async fn purges_a_caller_stores_itself_are_not_enqueued_again_by_the_invalidation() {
    use crate::core::cache::background::{Background, PurgeTargets};
    use crate::core::jobs::{JobSettings, Jobs, Queue};

    let jobs = Jobs::in_memory(JobSettings::default());
    let edge = PurgeTargets {
        edge: true,
        cloudflare: false,
    };
    let cache = TieredCache::new(1 << 20).with_background(Background::new(jobs.clone(), edge));
    let loaded = || async { Ok::<_, String>(Bytes::from_static(b"v")) };
    let tags = ["task:1".to_owned()];
    let purges_waiting = || async {
        let counts = jobs.store().counts(Queue::EdgePurge).await.expect("counts");
        counts.waiting
    };

    let made = cache.purge_jobs(&tags);
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(
        (made[0].queue, made[0].payload.value()["tags"][0].as_str()),
        (Queue::EdgePurge, Some("task:1"))
    );
    assert_eq!(purges_waiting().await, 0, "making purges enqueues nothing");

    cache
        .get_with_refresh("k", options(60, 0, &["task:1"]), loaded)
        .await
        .expect("loads");
    assert_eq!(cache.invalidate_tags_purged_by_caller(&tags).await, 1);
    assert!(cache.resident("k").await.is_none());
    assert_eq!(purges_waiting().await, 0, "the caller queues its own");

    cache
        .get_with_refresh("k", options(60, 0, &["task:1"]), loaded)
        .await
        .expect("loads");
    assert_eq!(cache.invalidate_tags(&tags).await, 1);
    assert_eq!(
        purges_waiting().await,
        1,
        "a plain invalidation enqueues its purge"
    );
}
