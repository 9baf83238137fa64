//! Health endpoints for load balancers, orchestrators and operators. None is ever cached or
//! rate limited (the shared policy's `health` rule).
//!
//! - `/health`: the service's status (each dependency probed, breakers read), timestamp,
//!   uptime, version: `200` when `healthy`, `503` when `degraded`, `unhealthy` or draining.
//! - `/health/live`: `200` while the process serves requests, whatever its dependencies say.
//! - `/health/ready`: `503` while the database is unreachable or the origin is draining; a
//!   Redis outage leaves it ready (`degraded`), since the origin fails open without Redis.
//! - `/health/detailed`: each dependency's status and response time, breaker states and cache
//!   statistics; `healthy` / `degraded` (200) or `unhealthy` (503).
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
    let status = if draining {
        "draining"
    } else {
        overall(&dependencies, &state.reports())
    };
    let code = if matches!(status, "draining" | "unhealthy") {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body =
        json!({ "status": status, "ready": code == StatusCode::OK, "dependencies": dependencies });
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
