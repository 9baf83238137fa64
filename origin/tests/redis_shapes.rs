//! The origin on every shape of Redis its users deploy, each started by the test: a real
//! three-primary Redis Cluster (`redis-server --cluster-enabled yes`, joined with
//! `redis-cli --cluster create`), a Redis that speaks only TLS, with a CA made in the test, and
//! a cluster that speaks only TLS (to clients, between its nodes and to replicas).
//! The shared cache level (values, tags, invalidations through pub/sub, listing and clearing),
//! the rate limiter's script and the job queues all work on each, in the library and in real
//! origin processes.

mod common;
#[path = "support/redis_servers.rs"]
mod redis_servers;
#[path = "support/test_ca.rs"]
mod test_ca;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use origin::config::RedisConfig;
use origin::core::cache::{CacheOptions, RedisTier, TieredCache};
use origin::core::dependencies::breaker::{BreakerSettings, CircuitBreaker};
use origin::core::dependencies::redis::{RedisSetupError, RedisTarget};
use origin::core::jobs::{Job, JobSettings, Jobs, NewJob, Queue};
use origin::core::layers::rate_limit::{Budgets, RateLimiter};
use origin::core::observability::dependency_metrics::RedisMetrics;
use redis_servers::{RedisCluster, TlsFiles, TlsRedis};
use serde_json::json;
use shared::rate_limit::{RateLimit, RateLimitTier};
use test_ca::TestCa;

const TIMEOUT: Duration = Duration::from_secs(2);

fn target(config: RedisConfig) -> RedisTarget {
    RedisTarget::from_config(&config)
        .expect("usable settings")
        .expect("Redis configured")
}

/// The cluster reached through a `redis+cluster://` URL.
fn by_url(cluster: &RedisCluster) -> RedisTarget {
    target(RedisConfig {
        url: Some(cluster.url()),
        ..RedisConfig::default()
    })
}

/// The cluster reached through `REDIS_CLUSTER_NODES`, seeds in reverse order (so that this
/// instance subscribes on another node than [`by_url`]'s).
fn by_nodes(cluster: &RedisCluster) -> RedisTarget {
    let mut nodes = cluster.addresses();
    nodes.reverse();
    target(RedisConfig {
        cluster_nodes: nodes,
        ..RedisConfig::default()
    })
}

fn options(tags: &[String]) -> CacheOptions {
    CacheOptions {
        ttl: Duration::from_secs(60),
        stale_while_revalidate: Duration::from_secs(30),
        stale_if_error: Duration::ZERO,
        keep: Duration::ZERO,
        stale_if_unreachable: false,
        tags: tags.into(),
    }
}

fn cache_on(target: &RedisTarget, prefix: &str) -> TieredCache {
    let tier = RedisTier::new(target, prefix, TIMEOUT).expect("a tier");
    TieredCache::new(1 << 20).with_redis(tier)
}

async fn load(cache: &TieredCache, key: &str, tags: &[String], value: &str) -> (String, Bytes) {
    let value = Bytes::from(value.to_owned());
    let found = cache
        .get_with_refresh(key, options(tags), move || {
            std::future::ready(Ok::<_, String>(value))
        })
        .await
        .expect("served");
    (found.outcome.as_str().to_owned(), found.value)
}

async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the origin at `base` reports Redis up in its readiness: a probe is one call
/// within the Redis timeout, which a loaded machine can miss while the connections are made.
async fn redis_up(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let redis = common::readiness_of(base, "redis").await;
        if redis["status"] == "up" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{base}: Redis not up within 10 s: {redis}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_shared_cache_runs_on_a_three_primary_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let prefix = common::unique_prefix("cluster-cache");
    let (a, b) = (
        cache_on(&by_url(&cluster), &prefix),
        cache_on(&by_nodes(&cluster), &prefix),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tags = |i: usize| vec![format!("task:{i}"), "board".to_owned()];
    for i in 0..40 {
        let (outcome, _) = load(
            &a,
            &format!("GET /api/tasks/{i}"),
            &tags(i),
            &format!("v1-{i}"),
        )
        .await;
        assert_eq!(outcome, "miss");
    }
    let spread = cluster.keys_per_node();
    assert!(
        spread.iter().filter(|&&keys| keys > 0).count() >= 2,
        "entries and tag sets live on several primaries: {spread:?}"
    );
    for i in 0..40 {
        let (outcome, value) = load(&b, &format!("GET /api/tasks/{i}"), &tags(i), "unused").await;
        assert_eq!(
            (outcome.as_str(), value),
            ("hit", Bytes::from(format!("v1-{i}")))
        );
    }
    let stats = b.stats().await;
    assert_eq!((stats.redis_hits, stats.redis_errors), (40, 0));

    let pattern = glob::Pattern::new("GET /api/tasks/*").expect("a pattern");
    assert_eq!(
        a.keys_matching(&pattern, 1000).await.len(),
        40,
        "listed on every primary"
    );

    // One tag names entries on every primary; B hears of it on another node than A's.
    a.invalidate_tags(&["board".to_owned()]).await;
    eventually("B drops its copies", async || b.stats().await.entries == 0).await;
    let (outcome, value) = load(&b, "GET /api/tasks/7", &tags(7), "v2-7").await;
    assert_eq!((outcome.as_str(), value), ("miss", Bytes::from("v2-7")));
    assert_eq!(a.stats().await.redis_errors, 0);

    let (_, removed) = a.clear().await;
    assert_eq!(removed, 1, "the one entry stored since the invalidation");
    assert!(a.keys_matching(&pattern, 1000).await.is_empty());
    assert_eq!(
        cluster.keys_per_node().iter().sum::<u64>(),
        0,
        "tag sets gone too"
    );
}

#[tokio::test]
async fn rate_limits_and_jobs_run_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let prefix = common::unique_prefix("cluster-work");
    let five_per_minute = RateLimit {
        max_requests: 5,
        window_seconds: 60,
    };
    let limiter = |target: RedisTarget| {
        let breaker = CircuitBreaker::new("redis", BreakerSettings::default());
        RateLimiter::local(Budgets {
            default: five_per_minute,
            ..Budgets::default()
        })
        .with_redis(&target, &prefix, TIMEOUT, breaker, RedisMetrics::default())
        .expect("a limiter")
    };
    let (a, b) = (limiter(by_url(&cluster)), limiter(by_nodes(&cluster)));
    let client = IpAddr::from([192, 0, 2, 7]);
    let mut allowed = 0;
    for limiter in [&a, &b, &a, &b, &a, &b, &a] {
        let verdict = limiter.check(RateLimitTier::Default, client).await;
        allowed += usize::from(verdict.expect("limited").allowed);
    }
    assert_eq!(
        allowed, 5,
        "both instances draw from one budget in the cluster"
    );

    // Jobs of two queues enqueued in one call: each queue's keys live in their own slot.
    let jobs =
        Jobs::on_redis(&by_url(&cluster), &prefix, TIMEOUT, JobSettings::default()).expect("jobs");
    let runs = Arc::new(AtomicUsize::new(0));
    for kind in ["refresh", "sweep"] {
        let runs = Arc::clone(&runs);
        jobs.register(kind, move |_job: Job| {
            let runs = Arc::clone(&runs);
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        });
    }
    let refresh = NewJob::new(Queue::CacheRefresh, "refresh", json!({})).with_key("task:1");
    let sweep = NewJob::new(Queue::Cleanup, "sweep", json!({}));
    let enqueued = jobs
        .enqueue_all(&[refresh.clone(), sweep, refresh])
        .await
        .expect("enqueued across slots");
    assert!(enqueued[0].created && enqueued[1].created && !enqueued[2].created);
    assert_eq!(enqueued[0].id, enqueued[2].id, "one refresh for one key");
    let workers = jobs.start(Vec::new());
    eventually("both jobs ran", async || runs.load(Ordering::SeqCst) == 2).await;
    for queue in [Queue::CacheRefresh, Queue::Cleanup] {
        let counts = jobs.store().counts(queue).await.expect("counts");
        assert_eq!((counts.waiting, counts.active), (0, 0), "{queue:?}");
    }
    workers.stop(Duration::from_secs(2)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "each job ran once");
}

#[tokio::test]
async fn a_tls_redis_is_reached_with_the_configured_ca_only() {
    let ca = TestCa::new();
    let server = TlsRedis::start(&ca.cert, &ca.key, ca.folder());
    let prefix = common::unique_prefix("tls");
    let trusted = target(RedisConfig {
        url: Some(server.url()),
        tls_ca_file: Some(ca.ca.clone()),
        ..RedisConfig::default()
    });
    let cache = cache_on(&trusted, &prefix);
    assert!(matches!(cache.ping_redis().await, Some(Ok(_))));
    let tags = ["t".to_owned()];
    assert_eq!(load(&cache, "k", &tags, "v").await.0, "miss");
    let other = cache_on(&trusted, &prefix);
    assert_eq!(
        load(&other, "k", &tags, "unused").await.0,
        "hit",
        "stored over TLS"
    );

    // Without the CA the server's certificate is not trusted: no connection, no data.
    let untrusted = target(RedisConfig {
        url: Some(server.url()),
        ..RedisConfig::default()
    });
    let refused = cache_on(&untrusted, &prefix).ping_redis().await;
    assert!(matches!(refused, Some(Err(_))), "{refused:?}");

    let plain = RedisConfig {
        url: Some(format!("redis://localhost:{}", server.port)),
        tls_ca_file: Some(ca.ca.clone()),
        ..RedisConfig::default()
    };
    assert!(matches!(
        RedisTarget::from_config(&plain),
        Err(RedisSetupError::CaWithoutTls)
    ));
    let missing = RedisConfig {
        tls_ca_file: Some(ca.folder().join("absent.pem")),
        ..plain
    };
    assert!(matches!(
        RedisTarget::from_config(&missing),
        Err(RedisSetupError::CaFile { .. })
    ));
}

#[tokio::test]
async fn a_cluster_speaking_tls_alone_is_reached_with_the_configured_ca() {
    let ca = TestCa::new();
    let files = TlsFiles {
        cert: &ca.cert,
        key: &ca.key,
        ca: &ca.ca,
    };
    let cluster = RedisCluster::start_tls(3, 0, &files);
    assert!(cluster.url().starts_with("rediss+cluster://"));
    let trusted = || {
        target(RedisConfig {
            url: Some(cluster.url()),
            tls_ca_file: Some(ca.ca.clone()),
            ..RedisConfig::default()
        })
    };
    let prefix = common::unique_prefix("tls-cluster");
    let (a, b) = (cache_on(&trusted(), &prefix), cache_on(&trusted(), &prefix));
    assert!(matches!(a.ping_redis().await, Some(Ok(_))), "every primary");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tags = |i: usize| vec![format!("task:{i}"), "board".to_owned()];
    for i in 0..20 {
        let key = format!("GET /api/tasks/{i}");
        assert_eq!(load(&a, &key, &tags(i), &format!("v{i}")).await.0, "miss");
    }
    let spread = cluster.keys_per_node();
    assert!(
        spread.iter().filter(|&&keys| keys > 0).count() >= 2,
        "over TLS on several primaries: {spread:?}"
    );
    for i in 0..20 {
        let key = format!("GET /api/tasks/{i}");
        let found = load(&b, &key, &tags(i), "unused").await;
        assert_eq!(found, ("hit".to_owned(), Bytes::from(format!("v{i}"))));
    }
    a.invalidate_tags(&["board".to_owned()]).await;
    eventually("B hears the invalidation over TLS", async || {
        b.stats().await.entries == 0
    })
    .await;
    let pattern = glob::Pattern::new("GET /api/tasks/*").expect("a pattern");
    assert!(
        a.keys_matching(&pattern, 1000).await.is_empty(),
        "gone from every primary"
    );

    // Without the CA, no node's certificate is trusted.
    let untrusted = target(RedisConfig {
        url: Some(cluster.url()),
        ..RedisConfig::default()
    });
    let refused = cache_on(&untrusted, &prefix).ping_redis().await;
    assert!(matches!(refused, Some(Err(_))), "{refused:?}");

    // An origin process on it, as its operators would configure it.
    let database = common::PostgresDb::create().await;
    let url = cluster.url();
    let ca_file = ca.ca.display().to_string();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("REDIS_TLS_CA_FILE", ca_file.as_str()),
    ];
    let (_origin, base) = common::spawn_with(&database.url, &prefix, &env).await;
    redis_up(&base).await;
    let title = common::task_title(&base, 2).await;
    assert!(!title.is_empty());
    eventually("the page is cached in the cluster", async || {
        cluster.keys_per_node().iter().sum::<u64>() > 0
    })
    .await;
    database.drop_now().await;
}

#[tokio::test]
async fn origin_processes_share_a_cluster_and_a_tls_redis() {
    let cluster = RedisCluster::start(3, 0);
    let database = common::PostgresDb::create().await;
    let prefix = common::unique_prefix("cluster-processes");
    let nodes = cluster.addresses().join(",");
    let env = [("REDIS_URL", ""), ("REDIS_CLUSTER_NODES", nodes.as_str())];
    let (_a, a) = common::spawn_with(&database.url, &prefix, &env).await;
    let (_b, b) = common::spawn_with(&database.url, &prefix, &env).await;
    for base in [&a, &b] {
        redis_up(base).await;
    }
    let before = common::task_title(&a, 3).await;
    assert_eq!(common::task_title(&b, 3).await, before);
    let renamed = format!("{before} (renamed)");
    let patched = reqwest::Client::new()
        .patch(format!("{a}/api/tasks/3"))
        .json(&json!({ "title": renamed }))
        .send()
        .await
        .expect("reachable");
    assert!(patched.status().is_success(), "{}", patched.status());
    eventually("B serves the new title", async || {
        common::task_title(&b, 3).await == renamed
    })
    .await;
    assert!(
        cluster.keys_per_node().iter().sum::<u64>() > 0,
        "cached in the cluster"
    );

    let ca = TestCa::new();
    let server = TlsRedis::start(&ca.cert, &ca.key, ca.folder());
    let url = server.url();
    let ca_file = ca.ca.display().to_string();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("REDIS_TLS_CA_FILE", ca_file.as_str()),
    ];
    let (_c, c) = common::spawn_with(&database.url, &prefix, &env).await;
    redis_up(&c).await;
    assert_eq!(common::task_title(&c, 3).await, renamed);
    database.drop_now().await;
}

#[test]
fn slots_computed_here_match_the_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let port = cluster.addresses()[0]
        .rsplit_once(':')
        .expect("port")
        .1
        .to_owned();
    for key in [
        "foo",
        "rampart:GET /api/tasks/1",
        "rampart:jobs:{cache-refresh}:stream",
        "{}x",
    ] {
        let output = std::process::Command::new("redis-cli")
            .args(["-p", &port, "cluster", "keyslot", key])
            .output()
            .expect("redis-cli");
        let slot: u16 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("a slot");
        assert_eq!(
            origin::core::dependencies::redis::slot_of(key.as_bytes()),
            slot,
            "{key}"
        );
    }
}
