//! `/api/tasks/{id}/links` and `/api/tasks/{id}/links/{link_id}`: links attached to tasks.
//! Adding one stores it `pending` and hands the fetch of its page (a link preview, through the
//! core's guarded outbound client) to the crawler queue ([`crate::app::crawler`]); clients
//! follow `Location` until the link is `fetched` or `failed`.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::tasks::task_tags;
use super::{check, created, parse_id, store_error, Actor};
use crate::app::crawler::fetch_job;
use crate::app::model::TaskLink;
use crate::app::store::LinkOutcome;
use crate::app::AppState;
use crate::core::http::errors::{ApiError, FieldError};
use crate::core::http::extract::Json;
use crate::core::jobs::Queue;

/// Longest URL accepted.
const URL_MAX: usize = 2048;
/// What a link records when its fetch could not even be queued.
const NOT_QUEUED: &str = "the fetch could not be queued: add the link again later";

/// The body of `POST /api/tasks/{id}/links`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkInput {
    url: Option<String>,
}

/// The URL of `input`: an absolute `http(s)` URL with a host, of at most [`URL_MAX`] bytes.
/// Whether its target may be fetched (public, answering) is for the crawler to find out.
fn url_of(input: LinkInput) -> Result<String, ApiError> {
    let url = input.url.map(|u| u.trim().to_owned()).unwrap_or_default();
    let valid = url.len() <= URL_MAX
        && url::Url::parse(&url)
            .is_ok_and(|parsed| matches!(parsed.scheme(), "http" | "https") && parsed.has_host());
    let mut errors = Vec::new();
    if !valid {
        errors.push(FieldError::new(
            "url",
            format!("required: an http or https URL of at most {URL_MAX} bytes"),
        ));
    }
    check(errors)?;
    Ok(url)
}

/// `POST /api/tasks/{id}/links`: stores the link `pending`, queues the fetch of its page and
/// answers `202 Accepted` with the link, the job and the link's `Location`. Should the job store
/// refuse the job, the link is stored `failed` and the answer is `201 Created`.
pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    actor: Actor,
    Json(input): Json<LinkInput>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "task")?;
    let url = url_of(input)?;
    let link = state
        .store
        .add_link(id, &url, &actor.0)
        .await
        .map_err(store_error("task"))?;
    let location = format!("/api/tasks/{id}/links/{}", link.id);
    let queued = state.jobs.enqueue(fetch_job(&link)).await;
    let response = match queued {
        Ok(job) => accepted(
            location,
            json!({ "data": link, "job": { "id": job.id, "queue": Queue::Crawler } }),
        ),
        Err(error) => {
            tracing::error!(link = link.id, %error, "link fetch not queued");
            let link = not_queued(&state, link).await?;
            created(location, json!({ "data": link }))
        }
    };
    state.invalidate(&task_tags(id)).await;
    Ok(response)
}

/// `link`, recorded as failed because its fetch could not be queued.
async fn not_queued(state: &AppState, link: TaskLink) -> Result<TaskLink, ApiError> {
    let outcome = LinkOutcome::Failed(NOT_QUEUED.to_owned());
    state
        .store
        .finish_link(link.id, &outcome)
        .await
        .map_err(store_error("link"))?;
    let found = state
        .store
        .link(link.task_id, link.id)
        .await
        .map_err(store_error("link"))?;
    Ok(found.unwrap_or(link))
}

/// `202 Accepted` with a `Location` and `body`.
fn accepted(location: String, body: serde_json::Value) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        axum::Json(body),
    )
        .into_response()
}

/// `GET /api/tasks/{id}/links`.
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "task")?;
    let links = state
        .store
        .links(id)
        .await
        .map_err(store_error("task"))?
        .ok_or_else(|| ApiError::not_found("task"))?;
    Ok(axum::Json(json!({ "data": links })).into_response())
}

/// `GET /api/tasks/{id}/links/{link_id}`: one link, with where its fetch stands.
pub async fn show(
    State(state): State<AppState>,
    Path((id, link_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "task")?;
    let link_id = parse_id(&link_id, "link")?;
    let link = state
        .store
        .link(id, link_id)
        .await
        .map_err(store_error("link"))?
        .ok_or_else(|| ApiError::not_found("link"))?;
    Ok(axum::Json(json!({ "data": link })).into_response())
}
