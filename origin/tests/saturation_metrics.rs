//! The saturation metrics at `/metrics`, driven into the states they report: admission full and
//! timing out, a breaker opened by failures, a cache too small for what it is given, stale
//! copies served, the database pool busy, and whether Redis answers.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use common::{cache_status, free_port, metrics, serve_wrapped_with, start, OwnRedis};
use origin::config::{CacheConfig, Config, DatabaseConfig, RedisConfig, ResilienceConfig};
use origin::core::dependencies::breaker::BreakerSettings;
use origin::core::dependencies::database::{Database, DbSettings};
use origin::core::layers::admission::AdmissionLimits;
use origin::core::observability::metrics::Metrics;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The value of the sample `series` (name and labels, exactly) in `text`, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// [`sample`], which must be present.
fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("{series} in\n{text}"))
}

/// The statuses of `count` requests for `url`, started `gap` apart.
async fn staggered(url: &str, count: usize, gap: Duration) -> Vec<u16> {
    let requests = (0..count).map(|n| async move {
        tokio::time::sleep(gap * n as u32).await;
        let response = reqwest::get(format!("{url}?n={n}")).await.expect("up");
        response.status().as_u16()
    });
    futures::future::join_all(requests).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_sheds_and_the_gauges_show_slots_and_queue() {
    let base = serve_wrapped_with(
        common::slow_app(Duration::from_millis(600)),
        &common::admission_config(AdmissionLimits {
            max_concurrent: 1,
            max_queued: 1,
            queue_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
        }),
    )
    .await;
    let url = format!("{base}/api/slow");
    let requests = tokio::spawn(async move { staggered(&url, 3, Duration::from_millis(50)).await });
    // The first runs, the second waits, the third was refused.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = metrics(&base).await;
    assert_eq!(value(&busy, "admission_in_flight"), 1.0, "{busy}");
    assert_eq!(value(&busy, "admission_queue_depth"), 1.0, "{busy}");
    assert_eq!(requests.await.expect("joined"), [200, 200, 503]);

    let after = metrics(&base).await;
    let shed = |reason: &str| {
        value(
            &after,
            &format!("admission_shed_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!((shed("queue_full"), shed("queue_timeout")), (1.0, 0.0));
    assert_eq!(value(&after, "admission_queue_wait_seconds_count"), 1.0);
    assert!(
        value(&after, "admission_queue_wait_seconds_sum") >= 0.4,
        "the second waited for the first: {after}"
    );
    assert_eq!(value(&after, "admission_in_flight"), 0.0);
    assert_eq!(value(&after, "admission_queue_depth"), 0.0);
    assert_eq!(value(&after, "admission_timeouts_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_timeouts_and_request_timeouts_are_counted_apart() {
    let base = serve_wrapped_with(
        common::slow_app(Duration::from_millis(800)),
        &common::admission_config(AdmissionLimits {
            max_concurrent: 1,
            max_queued: 4,
            queue_timeout: Duration::from_millis(100),
            request_timeout: Duration::from_millis(400),
        }),
    )
    .await;
    let statuses = staggered(&format!("{base}/api/slow"), 2, Duration::from_millis(50)).await;
    assert_eq!(
        statuses,
        [504, 503],
        "the first runs out of time, the second of patience"
    );
    let text = metrics(&base).await;
    let shed = |reason: &str| {
        value(
            &text,
            &format!("admission_shed_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!((shed("queue_full"), shed("queue_timeout")), (0.0, 1.0));
    assert_eq!(value(&text, "admission_timeouts_total"), 1.0);
    assert_eq!(value(&text, "admission_queue_wait_seconds_count"), 1.0);
    assert!(value(&text, "admission_queue_wait_seconds_sum") >= 0.1);
}

/// The report of breaker `name` at `/health/detailed`.
async fn breaker_report(base: &str, name: &str) -> Value {
    let detailed: Value = reqwest::get(format!("{base}/health/detailed"))
        .await
        .expect("up")
        .json()
        .await
        .expect("json");
    detailed["circuitBreakers"]
        .as_array()
        .and_then(|all| all.iter().find(|b| b["name"] == name).cloned())
        .unwrap_or_else(|| panic!("breaker {name} in {detailed}"))
}

fn parse_time(value: &Value) -> SystemTime {
    let text = value.as_str().unwrap_or_else(|| panic!("a time: {value}"));
    SystemTime::from(OffsetDateTime::parse(text, &Rfc3339).expect("RFC 3339"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opened_by_failures_counts_the_transition_and_says_when_it_tries_again() {
    // Nothing listens there: every Redis call fails at once.
    let origin = start(Config {
        redis: RedisConfig {
            url: Some(format!("redis://127.0.0.1:{}", free_port())),
            timeout: Duration::from_millis(200),
            ..RedisConfig::default()
        },
        resilience: ResilienceConfig {
            breakers: BreakerSettings {
                failure_threshold: 3,
                reset_timeout: Duration::from_secs(60),
                ..BreakerSettings::default()
            },
            ..ResilienceConfig::default()
        },
        ..Config::default()
    })
    .await;
    let base = origin.base.clone();
    let closed = breaker_report(&base, "redis").await;
    assert_eq!(closed["next_attempt_time"], Value::Null, "{closed}");
    for id in 1..6 {
        let response = reqwest::get(format!("{base}/api/tasks/{id}"))
            .await
            .expect("up");
        assert_eq!(response.status(), 200, "served without Redis");
    }
    let before = SystemTime::now();
    let open = breaker_report(&base, "redis").await;
    assert_eq!(open["state"], "OPEN", "{open}");
    assert!(parse_time(&open["last_failure_time"]) <= before + Duration::from_secs(1));
    let retry = parse_time(&open["next_attempt_time"]);
    let ahead = retry.duration_since(before).expect("in the future");
    assert!(
        ahead > Duration::from_secs(55) && ahead <= Duration::from_secs(61),
        "{open}"
    );
    let database = breaker_report(&base, "database").await;
    assert_eq!(
        (
            &database["last_failure_time"],
            &database["next_attempt_time"]
        ),
        (&Value::Null, &Value::Null),
        "{database}"
    );

    let text = metrics(&base).await;
    let transitions = |from: &str, to: &str| {
        value(
            &text,
            &format!("circuit_breaker_transitions_total{{breaker=\"redis\",from=\"{from}\",to=\"{to}\"}}"),
        )
    };
    assert_eq!(transitions("closed", "open"), 1.0);
    assert_eq!(transitions("open", "half_open"), 0.0);
    assert_eq!(
        value(
            &text,
            "circuit_breaker_transitions_total{breaker=\"database\",from=\"closed\",to=\"open\"}"
        ),
        0.0
    );
    assert_eq!(value(&text, "redis_up"), 0.0, "Redis never answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_up_follows_the_calls_and_is_absent_without_redis() {
    let redis = OwnRedis::start().await;
    let with = start(Config {
        redis: RedisConfig {
            url: Some(redis.url.clone()),
            timeout: Duration::from_millis(100),
            ..RedisConfig::default()
        },
        ..Config::default()
    })
    .await;
    let read = |id: u32| {
        let base = with.base.clone();
        async move {
            let response = reqwest::get(format!("{base}/api/tasks/{id}"))
                .await
                .expect("up");
            assert_eq!(response.status(), 200, "served with or without Redis");
        }
    };
    read(1).await;
    assert_eq!(value(&metrics(&with.base).await, "redis_up"), 1.0);
    // Stopped, Redis keeps its connections open but answers nothing: only the calls tell.
    redis.signal("-STOP");
    read(2).await;
    assert_eq!(value(&metrics(&with.base).await, "redis_up"), 0.0);
    redis.signal("-CONT");
    read(3).await;
    // The failure opened Redis's breaker: calls wait for its recovery probe (once a second),
    // whose answer tells `redis_up` too.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while value(&metrics(&with.base).await, "redis_up") != 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "redis_up never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let without = start(Config::default()).await;
    let text = metrics(&without.base).await;
    assert_eq!(sample(&text, "redis_up"), None, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_gauges_follow_the_configured_pool() {
    let origin = start(Config {
        database: DatabaseConfig {
            pool_size: 3,
            ..DatabaseConfig::default()
        },
        ..Config::default()
    })
    .await;
    let response = reqwest::get(format!("{}/api/tasks?per_page=5", origin.base))
        .await
        .expect("up");
    assert_eq!(response.status(), 200);
    let text = metrics(&origin.base).await;
    assert_eq!(value(&text, "db_pool_max_connections"), 3.0);
    let in_use = value(&text, "db_pool_connections{state=\"in_use\"}");
    let idle = value(&text, "db_pool_connections{state=\"idle\"}");
    assert!(idle >= 1.0 && in_use + idle <= 3.0, "{text}");
    assert_eq!(value(&text, "db_pool_waiting"), 0.0);
    assert!(value(&text, "db_pool_acquire_duration_seconds_count") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_waiting_for_a_connection_are_counted_and_timed() {
    let folder = tempfile::tempdir().expect("folder");
    let metrics = Metrics::default();
    let settings = DbSettings {
        url: format!("sqlite:{}/pool.db", folder.path().display()),
        pool_size: 1,
        query_timeout: Duration::from_secs(5),
    };
    let database = Database::connect(&settings, metrics.database())
        .await
        .expect("connects");
    let held = database.acquire().await.expect("the only connection");
    let second = database.clone();
    let waiter = tokio::spawn(async move { second.acquire().await.map(drop) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = metrics.render();
    assert_eq!(value(&busy, "db_pool_waiting"), 1.0, "{busy}");
    assert_eq!(value(&busy, "db_pool_connections{state=\"in_use\"}"), 1.0);
    assert_eq!(value(&busy, "db_pool_connections{state=\"idle\"}"), 0.0);
    assert_eq!(value(&busy, "db_pool_max_connections"), 1.0);

    drop(held);
    waiter
        .await
        .expect("joined")
        .expect("the connection, once given back");
    let after = metrics.render();
    assert_eq!(value(&after, "db_pool_waiting"), 0.0);
    assert_eq!(value(&after, "db_pool_acquire_duration_seconds_count"), 2.0);
    assert!(
        value(&after, "db_pool_acquire_duration_seconds_sum") >= 0.2,
        "the second waited for the first: {after}"
    );
}

/// `/api/tasks/{id}` answers 3,000 bytes, or `503` while `broken` is set.
fn task_app(broken: Arc<AtomicBool>) -> Router {
    Router::new().route(
        "/api/tasks/{id}",
        get(move |Path(id): Path<u32>| {
            let broken = Arc::clone(&broken);
            async move {
                if broken.load(Ordering::Relaxed) {
                    return Err(StatusCode::SERVICE_UNAVAILABLE);
                }
                Ok(format!("{id:>3000}"))
            }
        }),
    )
}

fn cache_config(cache: CacheConfig) -> Config {
    Config {
        cache,
        resilience: ResilienceConfig {
            rate_limits: None,
            ..ResilienceConfig::default()
        },
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_cache_counts_its_evictions_by_size_and_stays_within_its_bound() {
    let config = cache_config(CacheConfig {
        max_bytes: 16 * 1024,
        ..CacheConfig::default()
    });
    let base = serve_wrapped_with(task_app(Arc::default()), &config).await;
    for id in 0..40 {
        let response = reqwest::get(format!("{base}/api/tasks/{id}"))
            .await
            .expect("up");
        assert_eq!(response.status(), 200);
    }
    let text = metrics(&base).await;
    assert!(
        value(&text, "cache_evictions_total{cause=\"size\"}") >= 30.0,
        "40 entries of 3 KB cannot stay in 16 KB: {text}"
    );
    let bytes = value(&text, "cache_local_bytes");
    let entries = value(&text, "cache_local_entries");
    assert!(bytes <= 16.0 * 1024.0 && entries <= 5.0, "{text}");
    assert!(entries >= 1.0, "{text}");
    assert_eq!(
        value(&text, "cache_evictions_total{cause=\"explicit\"}"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_copies_served_are_counted_by_reason() {
    let broken = Arc::new(AtomicBool::new(false));
    let revalidating = cache_config(CacheConfig {
        ttl: Some(Duration::from_secs(1)),
        stale_while_revalidate: Duration::from_secs(30),
        ..CacheConfig::default()
    });
    let without_window = cache_config(CacheConfig {
        ttl: Some(Duration::from_secs(1)),
        stale_while_revalidate: Duration::ZERO,
        ..CacheConfig::default()
    });
    let swr = serve_wrapped_with(task_app(Arc::clone(&broken)), &revalidating).await;
    let sie = serve_wrapped_with(task_app(Arc::clone(&broken)), &without_window).await;
    for base in [&swr, &sie] {
        let response = reqwest::get(format!("{base}/api/tasks/1"))
            .await
            .expect("up");
        assert_eq!(response.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    broken.store(true, Ordering::Relaxed);
    for (base, expected) in [
        (&swr, "rampart-origin; fwd=stale"),
        (&sie, "rampart-origin; fwd=stale; detail=stale-if-error"),
    ] {
        let response = reqwest::get(format!("{base}/api/tasks/1"))
            .await
            .expect("up");
        assert_eq!(response.status(), 200);
        assert_eq!(cache_status(&response), expected);
    }
    let reasons = |text: &str| {
        (
            value(text, "cache_stale_served_total{reason=\"revalidate\"}"),
            value(text, "cache_stale_served_total{reason=\"error\"}"),
        )
    };
    assert_eq!(reasons(&metrics(&swr).await), (1.0, 0.0));
    assert_eq!(reasons(&metrics(&sie).await), (0.0, 1.0));
}

#[tokio::test]
async fn the_memory_limit_is_reported_only_when_the_cgroup_sets_one() {
    let origin = start(Config::default()).await;
    let text = metrics(&origin.base).await;
    let membership = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let expected = origin::core::observability::process::memory_limit(
        std::path::Path::new("/sys/fs/cgroup"),
        &membership,
    );
    assert_eq!(
        sample(&text, "process_memory_limit_bytes"),
        expected.map(|bytes| bytes as f64),
        "{text}"
    );
    assert!(value(&text, "process_resident_memory_bytes") > 0.0);
}
