//! The JSON API: tasks, comments, attachments and images, the audit log, and aggregates.
//! Writes invalidate the cache tags the shared policy gives the routes they change.

mod attachments;
mod comments;
mod events;
mod links;
mod tasks;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

use super::store::StoreError;
use super::AppState;
use crate::core::http::errors::{ApiError, FieldError};

pub use tasks::task_tags;

/// Largest bulk-insert body.
const BULK_BODY_MAX: usize = 16 << 20;
/// Longest `X-Actor` accepted.
const ACTOR_MAX: usize = 128;

/// The API's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tasks", get(tasks::list).post(tasks::create))
        .route("/api/tasks/popular", get(tasks::popular))
        .route(
            "/api/tasks/{id}",
            get(tasks::show).patch(tasks::update).delete(tasks::remove),
        )
        .route(
            "/api/tasks/{id}/comments",
            get(comments::list).post(comments::create),
        )
        .route(
            "/api/tasks/{id}/links",
            get(links::list).post(links::create),
        )
        .route("/api/tasks/{id}/links/{link_id}", get(links::show))
        .route(
            "/api/tasks/{id}/attachments",
            // The handler reads the body under the upload limit itself.
            post(attachments::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/images/{key}", get(attachments::image))
        .route("/api/stats", get(tasks::stats))
        .route("/api/events", get(events::list))
        .route("/api/events/export", get(events::export))
        .route(
            "/api/events/bulk",
            post(events::bulk).layer(DefaultBodyLimit::max(BULK_BODY_MAX)),
        )
}

/// Who is making a write, from `X-Actor` (defaults to `api`); recorded in the audit log.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("x-actor") else {
            return Ok(Self("api".to_owned()));
        };
        match value.to_str() {
            Ok(actor) if !actor.trim().is_empty() && actor.len() <= ACTOR_MAX => {
                Ok(Self(actor.trim().to_owned()))
            }
            _ => Err(ApiError::invalid_fields(vec![FieldError::new(
                "X-Actor",
                format!("1 to {ACTOR_MAX} visible ASCII characters"),
            )])),
        }
    }
}

/// A positive resource id from a path segment; anything else is a 404 for `what`.
fn parse_id(text: &str, what: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found(what))
}

/// An optional whole number in `min..=max` from a query parameter, collecting errors.
fn parse_bounded(
    text: Option<&str>,
    field: &str,
    (min, max, default): (u32, u32, u32),
    errors: &mut Vec<FieldError>,
) -> u32 {
    match text.map(str::parse::<u32>) {
        None => default,
        Some(Ok(value)) if (min..=max).contains(&value) => value,
        Some(_) => {
            errors.push(FieldError::new(
                field,
                format!("a whole number from {min} to {max}"),
            ));
            default
        }
    }
}

/// `Err` with every collected field error, if any.
fn check(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_fields(errors))
    }
}

/// The client-facing form of a store error about `what`.
fn store_error(what: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |error| match error {
        StoreError::NotFound => ApiError::not_found(what),
        StoreError::Invalid(field, message) => {
            ApiError::invalid_fields(vec![FieldError::new(field, message)])
        }
        StoreError::Database(error) => ApiError::from(error),
    }
}

/// `201 Created` with a `Location` and `body`.
fn created(location: String, body: impl serde::Serialize) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        StatusCode::CREATED,
        [(axum::http::header::LOCATION, location)],
        axum::Json(body),
    )
        .into_response()
}
