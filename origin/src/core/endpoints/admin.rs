//! Admin routes for operators: cache invalidation, cache statistics and breaker resets (and,
//! from [`super::jobs`] and [`super::cache_ops`], the job system and emergency cache operations),
//! behind
//! `Authorization: Bearer $ADMIN_TOKEN`. With no token configured they answer 403
//! `ADMIN_DISABLED`, so an unconfigured deployment never exposes them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use crate::core::cache::TieredCache;
use crate::core::dependencies::breaker::CircuitBreaker;
use crate::core::http::client::constant_time_eq;
use crate::core::http::errors::{ApiError, ErrorCode};
use crate::core::jobs::Jobs;

/// Most tags or keys one invalidation request may name.
pub const MAX_INVALIDATION_ITEMS: usize = 1000;

/// What admin handlers share.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The cache they act on.
    pub cache: TieredCache,
    /// The bearer token; `None` disables the routes.
    pub token: Option<Arc<str>>,
    /// The dependencies' circuit breakers.
    pub breakers: Vec<CircuitBreaker>,
    /// The job system.
    pub jobs: Jobs,
    /// The paths a warm-up loads when none are named (`CACHE_WARM_PATHS`).
    pub warm_paths: Arc<[String]>,
    /// Where admin actions are recorded, beside the log.
    pub audit: Option<Auditor>,
}

/// An admin action, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// What was done, such as `cache.clear`.
    pub action: &'static str,
    /// What it was done to.
    pub target: String,
    /// The details.
    pub data: serde_json::Value,
}

/// Writes admin actions to the application's audit log.
#[derive(Clone)]
pub struct Auditor(Arc<dyn Fn(AuditRecord) -> BoxFuture<'static, ()> + Send + Sync>);

impl Auditor {
    /// An auditor writing each record with `write`.
    pub fn new(
        write: impl Fn(AuditRecord) -> BoxFuture<'static, ()> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(write))
    }
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auditor")
    }
}

/// Records an admin action in the log and, where there is one, the audit log.
pub async fn audit(
    state: &AdminState,
    action: &'static str,
    target: &str,
    data: serde_json::Value,
) {
    tracing::warn!(action, target, %data, "admin action");
    if let Some(auditor) = &state.audit {
        (auditor.0)(AuditRecord {
            action,
            target: target.to_owned(),
            data,
        })
        .await;
    }
}

/// `POST /api/admin/cache/invalidate`, `GET /api/cache/stats` and
/// `POST /api/admin/circuit-breakers/reset`.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/api/admin/cache/invalidate", post(invalidate))
        .route("/api/cache/stats", get(stats))
        .route("/api/admin/circuit-breakers/reset", post(reset_breakers))
        .merge(super::jobs::routes())
        .merge(super::cache_ops::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let Some(expected) = &state.token else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::AdminDisabled,
            "admin routes are disabled: set ADMIN_TOKEN",
        )
        .into_response();
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes())) {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "a valid admin bearer token is required",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    next.run(request).await
}

/// The invalidation request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Invalidate {
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    keys: Vec<String>,
}

async fn invalidate(
    State(state): State<AdminState>,
    body: Result<Json<Invalidate>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::ValidationError,
                rejection.body_text(),
            )
            .into_response()
        }
    };
    let mut problems = Vec::new();
    if request.tags.is_empty() && request.keys.is_empty() {
        problems.push(json!({"field": "tags", "message": "name at least one tag or key"}));
    }
    for (field, items) in [("tags", &request.tags), ("keys", &request.keys)] {
        if items.len() > MAX_INVALIDATION_ITEMS {
            problems.push(json!({"field": field, "message": format!("at most {MAX_INVALIDATION_ITEMS} items")}));
        }
        if items.iter().any(|item| item.trim().is_empty()) {
            problems.push(json!({"field": field, "message": "items cannot be empty"}));
        }
    }
    if !problems.is_empty() {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationError,
            "invalid invalidation request",
        )
        .with_metadata(json!({ "fields": problems }))
        .into_response();
    }
    let mut invalidated = state.cache.invalidate_tags(&request.tags).await;
    invalidated += state.cache.invalidate_keys(&request.keys).await;
    let data = json!({ "tags": request.tags, "keys": request.keys });
    audit(&state, "cache.invalidate", "cache", data).await;
    Json(json!({ "invalidated": invalidated, "tags": request.tags, "keys": request.keys }))
        .into_response()
}

async fn stats(State(state): State<AdminState>) -> Response {
    let stats = state.cache.stats().await;
    let served = stats.hits + stats.stale_hits;
    let lookups = served + stats.misses + stats.collapsed;
    let ratio = if lookups == 0 {
        0.0
    } else {
        served as f64 / lookups as f64
    };
    Json(json!({
        "hit_ratio": ratio,
        "hits": stats.hits,
        "stale_hits": stats.stale_hits,
        "misses": stats.misses,
        "collapsed": stats.collapsed,
        "refreshes": stats.refreshes,
        "load_errors": stats.load_errors,
        "invalidated": stats.invalidated,
        "levels": {
            "memory": { "entries": stats.entries, "bytes": stats.bytes },
            "redis": { "hits": stats.redis_hits, "errors": stats.redis_errors },
        },
    }))
    .into_response()
}

/// Closes every circuit breaker, for an operator who knows the dependency is back.
async fn reset_breakers(State(state): State<AdminState>) -> Response {
    for breaker in &state.breakers {
        breaker.reset();
    }
    let reports: Vec<_> = state.breakers.iter().map(CircuitBreaker::report).collect();
    Json(json!({ "reset": reports })).into_response()
}
