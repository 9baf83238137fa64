//! `/api/tasks/{id}/comments`: the hottest cached read, and comment writes.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::tasks::{task_tags, MAX_PAGE};
use super::{check, created, parse_bounded, parse_id, store_error, Actor};
use crate::app::model::Comment;
use crate::app::notifications::EventType;
use crate::app::store::NewComment;
use crate::app::AppState;
use crate::core::http::errors::{ApiError, FieldError};
use crate::core::http::extract::{Json, Query};
use crate::core::http::pagination;

const BODY_MAX: usize = 5_000;

/// The query string of `GET /api/tasks/{id}/comments`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/tasks/{id}/comments`: oldest first, keyset-paginated.
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "task")?;
    let mut errors = Vec::new();
    let limit = parse_bounded(
        params.limit.as_deref(),
        "limit",
        (1, MAX_PAGE, 50),
        &mut errors,
    );
    check(errors)?;
    let after = match params.cursor.as_deref() {
        Some(cursor) => Some(pagination::decode::<i64>(cursor)?),
        None => None,
    };
    let page = state
        .store
        .comments(id, after, limit)
        .await
        .map_err(store_error("task"))?
        .ok_or_else(|| ApiError::not_found("task"))?;
    Ok(axum::Json(json!({
        "data": page.comments,
        "pagination": {
            "limit": limit,
            "has_more": page.next.is_some(),
            "next_cursor": page.next.map(|id| pagination::encode(&id)),
        },
    }))
    .into_response())
}

/// The body of `POST /api/tasks/{id}/comments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentInput {
    author_id: Option<i64>,
    body: Option<String>,
}

/// `POST /api/tasks/{id}/comments`.
pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    actor: Actor,
    Json(input): Json<CommentInput>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "task")?;
    let mut errors = Vec::new();
    let author_id = input.author_id.filter(|id| *id > 0);
    if author_id.is_none() {
        errors.push(FieldError::new("author_id", "required: a user id"));
    }
    let body = input.body.map(|b| b.trim().to_owned()).unwrap_or_default();
    if body.is_empty() || body.chars().count() > BODY_MAX {
        errors.push(FieldError::new(
            "body",
            format!("required: 1 to {BODY_MAX} characters"),
        ));
    }
    check(errors)?;
    let new = NewComment {
        author_id: author_id.unwrap_or_default(),
        body,
    };
    let mut tags = task_tags(id);
    tags.push(format!("comments:{id}"));
    let followups = state.followups::<Comment>(&tags, EventType::CommentCreated);
    let written = state
        .store
        .add_comment(id, &new, &actor.0, &followups)
        .await
        .map_err(store_error("task"))?;
    state.after_write(&tags, written.outbox).await;
    let location = format!("/api/tasks/{id}/comments");
    Ok(created(location, written.value))
}
