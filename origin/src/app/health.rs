//! `GET /health`: a fast liveness answer for load balancers and operators.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::AppState;

/// The health document.
#[derive(Debug, Serialize)]
pub struct Health {
    status: &'static str,
    timestamp: String,
    uptime_seconds: u64,
    version: &'static str,
}

/// Answers without touching any dependency.
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Json(Health {
        status: "ok",
        timestamp: shared::freshness::format_http_date(now),
        uptime_seconds: state.started.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION"),
    })
}
