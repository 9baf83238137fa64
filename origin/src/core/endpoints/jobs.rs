//! Admin routes for the job system, behind the admin token: every queue's counts, dead
//! letters listed, retried and deleted, queues paused and resumed, one job looked up.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /api/admin/jobs` | `{durable, buffered, queues: {name: counts}}` |
//! | `GET /api/admin/jobs/{queue}/dead?limit=` | `{data: [job]}`, most recent first |
//! | `POST /api/admin/jobs/{queue}/dead/{id}/retry` | `202 {id, queue}` (`404` unless dead) |
//! | `DELETE /api/admin/jobs/{queue}/dead/{id}` | `204` (`404` unless dead) |
//! | `POST /api/admin/jobs/{queue}/pause`, `…/resume` | `{queue, paused}` |
//! | `GET /api/admin/jobs/{queue}/{id}` | the job (`404` once no longer kept) |

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::admin::{audit, AdminState};
use crate::core::http::errors::{ApiError, ErrorCode};
use crate::core::jobs::{Queue, StoreError};

/// Most dead jobs one listing returns.
pub const MAX_LISTED: usize = 500;

/// The job routes (the caller adds the admin token check).
pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/admin/jobs", get(overview))
        .route("/api/admin/jobs/{queue}/dead", get(dead))
        .route("/api/admin/jobs/{queue}/dead/{id}/retry", post(retry))
        .route("/api/admin/jobs/{queue}/dead/{id}", delete(remove))
        .route("/api/admin/jobs/{queue}/pause", post(pause))
        .route("/api/admin/jobs/{queue}/resume", post(resume))
        .route("/api/admin/jobs/{queue}/{id}", get(job))
}

fn unavailable(error: StoreError) -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServiceUnavailable,
        format!("the job store cannot be reached: {error}"),
    )
    .into_response()
}

fn no_queue(name: &str) -> Response {
    let names: Vec<&str> = Queue::ALL.iter().map(|q| q.as_str()).collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!(
            "no queue named {name:?}; the queues are {}",
            names.join(", ")
        ),
    )
    .into_response()
}

fn no_dead_job(queue: Queue, id: &str) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!("no dead job {id} in {queue}"),
    )
    .into_response()
}

async fn overview(State(state): State<AdminState>) -> Response {
    match state.jobs.overview().await {
        Ok(queues) => {
            let queues: Map<String, Value> = queues
                .into_iter()
                .map(|(queue, counts)| (queue.as_str().to_owned(), json!(counts)))
                .collect();
            Json(json!({
                "durable": state.jobs.is_durable(),
                "buffered": state.jobs.store().buffered(),
                "queues": queues,
            }))
            .into_response()
        }
        Err(error) => unavailable(error),
    }
}

#[derive(Debug, Deserialize)]
struct Listing {
    limit: Option<usize>,
}

async fn dead(
    State(state): State<AdminState>,
    Path(queue): Path<String>,
    Query(listing): Query<Listing>,
) -> Response {
    let Some(queue) = Queue::from_name(&queue) else {
        return no_queue(&queue);
    };
    let limit = listing.limit.unwrap_or(50).clamp(1, MAX_LISTED);
    match state.jobs.store().dead(queue, limit).await {
        Ok(jobs) => Json(json!({ "data": jobs })).into_response(),
        Err(error) => unavailable(error),
    }
}

async fn retry(
    State(state): State<AdminState>,
    Path((queue, id)): Path<(String, String)>,
) -> Response {
    let Some(queue) = Queue::from_name(&queue) else {
        return no_queue(&queue);
    };
    match state.jobs.store().retry_dead(queue, &id).await {
        Ok(true) => {
            audit(&state, "jobs.retry", &format!("{queue}/{id}"), json!({})).await;
            (
                StatusCode::ACCEPTED,
                Json(json!({ "id": id, "queue": queue })),
            )
                .into_response()
        }
        Ok(false) => no_dead_job(queue, &id),
        Err(error) => unavailable(error),
    }
}

async fn remove(
    State(state): State<AdminState>,
    Path((queue, id)): Path<(String, String)>,
) -> Response {
    let Some(queue) = Queue::from_name(&queue) else {
        return no_queue(&queue);
    };
    match state.jobs.store().delete_dead(queue, &id).await {
        Ok(true) => {
            audit(&state, "jobs.delete", &format!("{queue}/{id}"), json!({})).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => no_dead_job(queue, &id),
        Err(error) => unavailable(error),
    }
}

async fn pause(State(state): State<AdminState>, Path(queue): Path<String>) -> Response {
    set_paused(state, &queue, true).await
}

async fn resume(State(state): State<AdminState>, Path(queue): Path<String>) -> Response {
    set_paused(state, &queue, false).await
}

async fn set_paused(state: AdminState, queue: &str, paused: bool) -> Response {
    let Some(queue) = Queue::from_name(queue) else {
        return no_queue(queue);
    };
    match state.jobs.store().set_paused(queue, paused).await {
        Ok(()) => {
            let action = if paused { "jobs.pause" } else { "jobs.resume" };
            audit(&state, action, queue.as_str(), json!({})).await;
            Json(json!({ "queue": queue, "paused": paused })).into_response()
        }
        Err(error) => unavailable(error),
    }
}

async fn job(
    State(state): State<AdminState>,
    Path((queue, id)): Path<(String, String)>,
) -> Response {
    let Some(queue) = Queue::from_name(&queue) else {
        return no_queue(&queue);
    };
    match state.jobs.store().get(queue, &id).await {
        Ok(Some(job)) => Json(json!({ "data": job })).into_response(),
        Ok(None) => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no job {id} in {queue} (finished jobs are kept for JOBS_KEEP_SECONDS)"),
        )
        .into_response(),
        Err(error) => unavailable(error),
    }
}
