//! Emergency cache operations, behind the admin token, each audited:
//!
//! | route | what it does |
//! | --- | --- |
//! | `POST /api/admin/cache/clear` | drops every entry in both levels on every instance, and purges the whole zone through Cloudflare's API where configured |
//! | `POST /api/admin/cache/delete` `{"pattern": "GET https://app.example/api/tasks*"}` | drops the keys matching a glob (`*`, `?`, `[…]`) in both levels, and purges their URLs at the edge |
//! | `POST /api/admin/cache/warm` `{"paths": ["/", "/api/tasks"]}` | enqueues a warm-up of the paths (`CACHE_WARM_PATHS` when none are named); `202` with the job |

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::admin::{audit, AdminState};
use crate::core::http::errors::{ApiError, ErrorCode};
use crate::core::jobs::work::refresh::warm_job;

/// Most keys one pattern deletion drops.
pub const MAX_DELETED: usize = 100_000;
/// Most paths one warm-up names.
pub const MAX_WARM_PATHS: usize = 1000;

/// The emergency routes (the caller adds the admin token check).
pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/admin/cache/clear", post(clear))
        .route("/api/admin/cache/delete", post(delete_matching))
        .route("/api/admin/cache/warm", post(warm))
        .route("/api/admin/jobs/warm-up", post(warm))
}

fn invalid(message: impl Into<String>) -> Response {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::ValidationError,
        message,
    )
    .into_response()
}

fn bad_json(rejection: axum::extract::rejection::JsonRejection) -> Response {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::ValidationError,
        rejection.body_text(),
    )
    .into_response()
}

async fn clear(State(state): State<AdminState>) -> Response {
    let (here, shared) = state.cache.clear().await;
    let edge = match state.cache.background() {
        Some(_) => "an edge-wide purge is enqueued where Cloudflare's API is configured; the Worker's own purge endpoint takes tags and URLs only",
        None => "no edge purge configured",
    };
    let data = json!({ "memory_entries": here, "redis_entries": shared });
    audit(&state, "cache.clear", "*", data.clone()).await;
    Json(json!({ "cleared": data, "edge": edge })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteRequest {
    pattern: String,
}

async fn delete_matching(
    State(state): State<AdminState>,
    body: Result<Json<DeleteRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return bad_json(rejection),
    };
    if request.pattern.trim().is_empty() || request.pattern.len() > 2048 {
        return invalid("pattern: 1 to 2048 characters, a glob over cache keys such as GET https://app.example/api/tasks*");
    }
    let pattern = match glob::Pattern::new(&request.pattern) {
        Ok(pattern) => pattern,
        Err(error) => return invalid(format!("pattern: {error}")),
    };
    let keys = state.cache.keys_matching(&pattern, MAX_DELETED).await;
    let dropped = state.cache.invalidate_keys(&keys).await;
    let data = json!({ "pattern": request.pattern, "keys": keys.len() });
    audit(&state, "cache.delete", &request.pattern, data).await;
    Json(json!({ "pattern": request.pattern, "keys": keys, "dropped_here": dropped }))
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WarmRequest {
    #[serde(default)]
    paths: Vec<String>,
}

async fn warm(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Option<Json<WarmRequest>>,
) -> Response {
    let request = body.map(|Json(request)| request).unwrap_or_default();
    let paths: Vec<String> = match request.paths.is_empty() {
        true => state.warm_paths.to_vec(),
        false => request.paths,
    };
    if paths.is_empty() || paths.len() > MAX_WARM_PATHS {
        return invalid(format!(
            "paths: 1 to {MAX_WARM_PATHS} paths (none configured in CACHE_WARM_PATHS)"
        ));
    }
    if let Some(bad) = paths.iter().find(|path| !path.starts_with('/')) {
        return invalid(format!("paths: {bad:?} does not start with /"));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("localhost");
    match state.jobs.enqueue(warm_job(host, &paths)).await {
        Ok(enqueued) => {
            audit(&state, "cache.warm", host, json!({ "paths": paths })).await;
            let job = json!({ "id": enqueued.id, "queue": "cache-refresh" });
            (
                StatusCode::ACCEPTED,
                Json(json!({ "job": job, "paths": paths })),
            )
                .into_response()
        }
        Err(error) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServiceUnavailable,
            format!("the warm-up was not enqueued: {error}"),
        )
        .into_response(),
    }
}
