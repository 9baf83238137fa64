//! Health endpoints, and the Redis breaker against a Redis server this test starts, stops
//! (`kill -STOP`) and resumes (`kill -CONT`).

mod common;

use std::time::Duration;

use common::{metrics, start, OwnRedis};
use origin::config::{Config, ListenerConfig, RedisConfig, ResilienceConfig};
use origin::core::dependencies::breaker::BreakerSettings;
use serde_json::Value;

async fn json(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("reachable");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn health_endpoints_report_each_dependency() {
    let origin = start(Config::default()).await;
    let base = &origin.base;
    let (status, live) = json(format!("{base}/health/live")).await;
    assert_eq!((status, live["status"].as_str()), (200, Some("alive")));
    let (status, ready) = json(format!("{base}/health/ready")).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "healthy");
    let (status, detailed) = json(format!("{base}/health/detailed")).await;
    assert_eq!(status, 200);
    assert_eq!(detailed["status"], "healthy");
    assert_eq!(detailed["dependencies"][0]["name"], "database");
    assert_eq!(detailed["dependencies"][0]["status"], "up");
    assert!(detailed["dependencies"][0]["responseTimeMs"]
        .as_f64()
        .is_some());
    assert_eq!(detailed["circuitBreakers"][0]["name"], "redis");
    assert_eq!(detailed["circuitBreakers"][0]["state"], "CLOSED");
    assert!(detailed["cache"]["entries"].is_u64());
    let (status, cache) = json(format!("{base}/health/cache")).await;
    assert_eq!(
        (status, cache["redis"].is_null()),
        (200, true),
        "no Redis level"
    );
    let response = reqwest::get(format!("{base}/health/ready"))
        .await
        .expect("reachable");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let names: Vec<_> = detailed["circuitBreakers"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|b| b["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["redis", "database", "http"]);
}

#[tokio::test]
async fn metrics_cover_the_process_and_serve_on_their_own_port_too() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port");
    let origin = start(Config {
        listener: ListenerConfig {
            metrics_addr: Some(([127, 0, 0, 1], port).into()),
            ..ListenerConfig::default()
        },
        ..Config::default()
    })
    .await;
    reqwest::get(format!("{}/api/tasks/1", origin.base))
        .await
        .expect("up");
    let text = metrics(&origin.base).await;
    for name in [
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
        "db_queries_total{",
    ] {
        assert!(text.contains(name), "{name} in\n{text}");
    }
    let rss: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("process_resident_memory_bytes "))
        .and_then(|value| value.trim().parse().ok())
        .expect("a value");
    assert!(rss > 1e6, "a real resident size: {rss}");
    let side = metrics(&format!("http://127.0.0.1:{port}")).await;
    assert!(
        side.contains(
            "http_requests_total{method=\"GET\",route=\"/api/tasks/{id}\",status=\"200\"} 1"
        ),
        "{side}"
    );
}

async fn redis_breaker(base: &str) -> String {
    let (_, report) = json(format!("{base}/health/circuit-breakers")).await;
    report["circuitBreakers"][0]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_on_while_redis_is_stopped_and_the_breaker_recovers() {
    let redis = OwnRedis::start().await;
    let origin = start(Config {
        redis: RedisConfig {
            url: Some(redis.url.clone()),
            timeout: Duration::from_millis(100),
            ..RedisConfig::default()
        },
        resilience: ResilienceConfig {
            breakers: BreakerSettings {
                failure_threshold: 3,
                reset_timeout: Duration::from_millis(300),
                ..BreakerSettings::default()
            },
            ..ResilienceConfig::default()
        },
        ..Config::default()
    })
    .await;
    let base = origin.base.clone();
    let read = |id: u32| reqwest::get(format!("{base}/api/tasks/{id}"));
    assert_eq!(read(1).await.expect("reachable").status(), 200);
    assert_eq!(redis_breaker(&base).await, "CLOSED");

    redis.signal("-STOP");
    for id in 2..8 {
        let response = read(id).await.expect("reachable");
        assert_eq!(response.status(), 200, "task {id} served without Redis");
    }
    assert_eq!(redis_breaker(&base).await, "OPEN");
    let (status, ready) = json(format!("{base}/health/ready")).await;
    assert_eq!(status, 200, "Redis down leaves the origin ready: {ready}");
    assert_eq!(ready["status"], "degraded");
    let (status, health) = json(format!("{base}/health")).await;
    assert_eq!(status, 503, "a degraded service says so: {health}");
    assert_eq!(health["status"], "degraded");
    let (status, _) = json(format!("{base}/health/live")).await;
    assert_eq!(status, 200, "the process still serves");
    let text = metrics(&base).await;
    assert!(text.contains("circuit_breaker_state{name=\"redis\"} 1"));
    // The client's own response timeout reports an error; the call's bound, a timeout.
    let failed = |outcome: &str| {
        text.contains(&format!(
            "redis_operations_total{{operation=\"get\",outcome=\"{outcome}\"}}"
        ))
    };
    assert!(failed("error") || failed("timeout"), "{text}");
    assert!(text.contains("redis_operations_total{operation=\"get\",outcome=\"circuit_open\"}"));
    assert!(text.contains("redis_operation_duration_seconds_count{operation=\"get\"}"));

    redis.signal("-CONT");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut state = String::new();
    for id in 8..40 {
        assert_eq!(read(id).await.expect("reachable").status(), 200);
        state = redis_breaker(&base).await;
        if state == "CLOSED" {
            break;
        }
    }
    assert_eq!(state, "CLOSED", "two successful calls close it again");
}
