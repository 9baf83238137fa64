//! Health endpoints for load balancers, orchestrators and operators. None is ever cached or
//! rate limited (the shared policy's `health` rule).
//!
//! - `/health`: the service's status (each dependency probed, breakers read), timestamp,
//!   uptime, version: `200` when `healthy`, `503` when `degraded`, `unhealthy` or draining.
//! - `/health/live`: `200` while the process serves requests, whatever its dependencies say.
//! - `/health/ready`: `503` while the database is unreachable, the origin is draining, or a
//!   job queue's oldest job has waited longer than `JOBS_MAX_WAIT_SECONDS` (`backlogged`); a
//!   Redis outage leaves it ready (`degraded`), since the origin fails open without Redis.
//! - `/health/detailed`: each dependency's status and response time, breaker states, cache
//!   statistics and each job queue's counts; `healthy` / `degraded` (200) or `unhealthy` (503).
//! - `/health/cache` and `/health/circuit-breakers`: those parts alone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use crate::core::cache::TieredCache;
use crate::core::dependencies::breaker::{BreakerReport, BreakerState, CircuitBreaker};
use crate::core::dependencies::database::Database;
use crate::core::jobs::Jobs;

/// How long a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the health endpoints look at.
#[derive(Debug, Clone)]
pub struct HealthState {
    /// When the server started.
    pub started: Instant,
    /// The database, when the application has one.
    pub database: Option<Database>,
    /// The response cache (and its Redis level).
    pub cache: TieredCache,
    /// The dependencies' breakers.
    pub breakers: Vec<CircuitBreaker>,
    /// Set once a shutdown signal arrived.
    pub draining: Arc<AtomicBool>,
    /// The job system, whose backlog decides readiness too.
    pub jobs: Jobs,
}

/// The job queues as health reports them.
#[derive(Debug, Clone, Serialize)]
struct QueueHealth {
    /// Each queue's counts, when the store answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    queues: Option<serde_json::Map<String, serde_json::Value>>,
    /// Why the store did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Queues whose oldest job has waited longer than allowed.
    backlogged: Vec<&'static str>,
    /// Jobs held in process until Redis answers.
    buffered: usize,
}

/// The health routes.
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/health", get(summary))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health/detailed", get(detailed))
        .route("/health/cache", get(cache))
        .route("/health/circuit-breakers", get(breakers))
        .with_state(state)
}

/// One dependency's health.
#[derive(Debug, Clone, Serialize)]
struct Dependency {
    name: &'static str,
    status: &'static str,
    #[serde(rename = "responseTimeMs", skip_serializing_if = "Option::is_none")]
    response_time_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Whether the origin cannot serve without it.
    critical: bool,
}

impl Dependency {
    fn from_probe(name: &'static str, critical: bool, probe: Result<Duration, String>) -> Self {
        match probe {
            Ok(took) => Self {
                name,
                status: "up",
                response_time_ms: Some(took.as_secs_f64() * 1000.0),
                error: None,
                critical,
            },
            Err(error) => Self {
                name,
                status: "down",
                response_time_ms: None,
                error: Some(error),
                critical,
            },
        }
    }
}

impl HealthState {
    fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    async fn dependencies(&self) -> Vec<Dependency> {
        let mut found = Vec::new();
        if let Some(database) = &self.database {
            let probe = database
                .ping(PROBE_TIMEOUT)
                .await
                .map_err(|error| error.to_string());
            found.push(Dependency::from_probe("database", true, probe));
        }
        if let Some(probe) = self.cache.ping_redis().await {
            found.push(Dependency::from_probe("redis", false, probe));
        }
        found
    }

    async fn queues(&self) -> QueueHealth {
        let max_wait = self.jobs.settings().max_wait.as_millis();
        let buffered = self.jobs.store().buffered();
        match tokio::time::timeout(PROBE_TIMEOUT, self.jobs.overview()).await {
            Ok(Ok(overview)) => QueueHealth {
                backlogged: overview
                    .iter()
                    .filter(|(_, counts)| u128::from(counts.oldest_waiting_ms) > max_wait)
                    .map(|(queue, _)| queue.as_str())
                    .collect(),
                queues: Some(
                    overview
                        .into_iter()
                        .map(|(queue, counts)| (queue.as_str().to_owned(), json!(counts)))
                        .collect(),
                ),
                error: None,
                buffered,
            },
            Ok(Err(error)) => QueueHealth {
                queues: None,
                error: Some(error.to_string()),
                backlogged: Vec::new(),
                buffered,
            },
            Err(_) => QueueHealth {
                queues: None,
                error: Some("the job store did not answer in time".to_owned()),
                backlogged: Vec::new(),
                buffered,
            },
        }
    }

    fn reports(&self) -> Vec<BreakerReport> {
        self.breakers.iter().map(CircuitBreaker::report).collect()
    }
}

fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    shared::freshness::format_http_date(now)
}

async fn summary(State(state): State<HealthState>) -> Response {
    let dependencies = state.dependencies().await;
    let status = if state.draining.load(Ordering::Relaxed) {
        "draining"
    } else {
        overall(&dependencies, &state.reports())
    };
    let code = if status == "healthy" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": status,
        "timestamp": timestamp(),
        "uptime_seconds": state.uptime_seconds(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    (code, Json(body)).into_response()
}

async fn live() -> Response {
    Json(json!({ "status": "alive" })).into_response()
}

/// `healthy` when everything is up, `degraded` when only optional dependencies are down or a
/// breaker is not closed, `unhealthy` when a critical dependency is down.
fn overall(dependencies: &[Dependency], breakers: &[BreakerReport]) -> &'static str {
    let down = |critical: bool| {
        dependencies
            .iter()
            .any(|d| d.status == "down" && d.critical == critical)
    };
    if down(true) {
        "unhealthy"
    } else if down(false) || breakers.iter().any(|b| b.state != BreakerState::Closed) {
        "degraded"
    } else {
        "healthy"
    }
}

async fn ready(State(state): State<HealthState>) -> Response {
    let dependencies = state.dependencies().await;
    let draining = state.draining.load(Ordering::Relaxed);
    let queues = state.queues().await;
    let status = if draining {
        "draining"
    } else if !queues.backlogged.is_empty() {
        "backlogged"
    } else {
        overall(&dependencies, &state.reports())
    };
    let code = if matches!(status, "draining" | "unhealthy" | "backlogged") {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = json!({
        "status": status,
        "ready": code == StatusCode::OK,
        "dependencies": dependencies,
        "backlogged": queues.backlogged,
    });
    (code, Json(body)).into_response()
}

async fn detailed(State(state): State<HealthState>) -> Response {
    let dependencies = state.dependencies().await;
    let breakers = state.reports();
    let status = overall(&dependencies, &breakers);
    let code = if status == "unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = json!({
        "status": status,
        "timestamp": timestamp(),
        "uptime_seconds": state.uptime_seconds(),
        "version": env!("CARGO_PKG_VERSION"),
        "draining": state.draining.load(Ordering::Relaxed),
        "dependencies": dependencies,
        "circuitBreakers": breakers,
        "cache": state.cache.stats().await,
        "jobs": state.queues().await,
    });
    (code, Json(body)).into_response()
}

async fn cache(State(state): State<HealthState>) -> Response {
    let redis = state
        .cache
        .ping_redis()
        .await
        .map(|probe| Dependency::from_probe("redis", false, probe));
    Json(json!({
        "status": if redis.as_ref().is_some_and(|r| r.status == "down") { "degraded" } else { "healthy" },
        "stats": state.cache.stats().await,
        "redis": redis,
    }))
    .into_response()
}

async fn breakers(State(state): State<HealthState>) -> Response {
    let reports = state.reports();
    let all_closed = reports.iter().all(|b| b.state == BreakerState::Closed);
    Json(json!({
        "status": if all_closed { "healthy" } else { "degraded" },
        "circuitBreakers": reports,
    }))
    .into_response()
}
