//! `/api/tasks`, `/api/tasks/{id}`, `/api/tasks/popular` and `/api/stats`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;

use super::{check, created, parse_bounded, parse_id, store_error, Actor};
use crate::app::model::{parse_rfc3339, Priority, Status, TaskDetail};
use crate::app::notifications::EventType;
use crate::app::store::{NewTask, Sort, TaskChanges, TaskFilter, TaskPage};
use crate::app::AppState;
use crate::core::http::errors::{ApiError, FieldError};
use crate::core::http::extract::{Json, Query};
use crate::core::http::pagination;

/// Largest page.
pub const MAX_PAGE: u32 = 100;
const TITLE_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 10_000;
const TAGS_MAX: usize = 10;
const TAG_MAX: usize = 32;

/// The query string of `GET /api/tasks`, read as text so that every bad field is reported.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    status: Option<String>,
    assignee: Option<String>,
    tag: Option<String>,
    updated_since: Option<String>,
    sort: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

/// A cursor's position: the sort order it belongs to, the sort value and the id.
#[derive(Debug, Serialize, Deserialize)]
struct Position {
    s: String,
    v: i64,
    i: i64,
}

fn filter_of(params: &ListParams) -> Result<TaskFilter, ApiError> {
    let mut errors = Vec::new();
    let status = params.status.as_deref().and_then(|text| {
        let status = Status::parse(text);
        if status.is_none() {
            errors.push(FieldError::new("status", "one of todo, in_progress, done"));
        }
        status
    });
    let assignee = params.assignee.as_deref().and_then(|text| {
        let id = text.parse::<i64>().ok().filter(|id| *id > 0);
        if id.is_none() {
            errors.push(FieldError::new("assignee", "a user id"));
        }
        id
    });
    let updated_since = params.updated_since.as_deref().and_then(|text| {
        let at = parse_rfc3339(text);
        if at.is_none() {
            errors.push(FieldError::new("updated_since", "an RFC 3339 timestamp"));
        }
        at
    });
    let sort = match params.sort.as_deref() {
        None => Sort::default(),
        Some(text) => Sort::parse(text).unwrap_or_else(|| {
            errors.push(FieldError::new(
                "sort",
                "id, created_at or updated_at, optionally after -",
            ));
            Sort::default()
        }),
    };
    let page = page_of(params, sort, &mut errors);
    check(errors)?;
    Ok(TaskFilter {
        status,
        assignee,
        tag: params.tag.clone(),
        updated_since,
        sort,
        page: page?,
    })
}

fn page_of(
    params: &ListParams,
    sort: Sort,
    errors: &mut Vec<FieldError>,
) -> Result<TaskPage, ApiError> {
    if params.page.is_some() || params.per_page.is_some() {
        if params.cursor.is_some() {
            errors.push(FieldError::new("cursor", "cannot be combined with page"));
        }
        let page = parse_bounded(params.page.as_deref(), "page", (1, 1_000_000, 1), errors);
        let per_page = parse_bounded(
            params.per_page.as_deref(),
            "per_page",
            (1, MAX_PAGE, 20),
            errors,
        );
        return Ok(TaskPage::Offset { page, per_page });
    }
    let limit = parse_bounded(params.limit.as_deref(), "limit", (1, MAX_PAGE, 20), errors);
    let after = match params.cursor.as_deref() {
        None => None,
        Some(cursor) => {
            let position: Position = pagination::decode(cursor)?;
            if position.s != sort.name() {
                errors.push(FieldError::new("cursor", "belongs to another sort order"));
            }
            Some((position.v, position.i))
        }
    };
    Ok(TaskPage::Cursor { limit, after })
}

/// `GET /api/tasks`.
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let filter = filter_of(&params)?;
    let list = state
        .store
        .list_tasks(&filter)
        .await
        .map_err(store_error("task"))?;
    let pagination = match filter.page {
        TaskPage::Cursor { limit, .. } => json!({
            "limit": limit,
            "has_more": list.next.is_some(),
            "next_cursor": list.next.map(|(v, i)| pagination::encode(&Position {
                s: filter.sort.name(), v, i,
            })),
        }),
        TaskPage::Offset { page, per_page } => {
            let total = list.total.unwrap_or_default();
            json!({
                "page": page,
                "per_page": per_page,
                "total": total,
                "total_pages": (total + i64::from(per_page) - 1) / i64::from(per_page),
            })
        }
    };
    Ok(axum::Json(json!({ "data": list.tasks, "pagination": pagination })).into_response())
}

/// `GET /api/tasks/{id}`.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "task")?;
    let task = state.store.task(id).await.map_err(store_error("task"))?;
    let task = task.ok_or_else(|| ApiError::not_found("task"))?;
    Ok(axum::Json(task).into_response())
}

/// A field that may be absent, `null`, or a value: `Some(None)` is an explicit `null`.
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The body of `POST /api/tasks` and `PATCH /api/tasks/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    title: Option<String>,
    description: Option<String>,
    status: Option<String>,
    priority: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    assignee_id: Option<Option<i64>>,
    tags: Option<Vec<String>>,
}

fn valid_tag(tag: &str) -> bool {
    (1..=TAG_MAX).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Validates every field present, collecting all errors.
fn changes_of(input: TaskInput) -> Result<TaskChanges, ApiError> {
    let mut errors = Vec::new();
    let title = input.title.map(|t| t.trim().to_owned());
    if title
        .as_ref()
        .is_some_and(|t| t.is_empty() || t.chars().count() > TITLE_MAX)
    {
        errors.push(FieldError::new(
            "title",
            format!("1 to {TITLE_MAX} characters"),
        ));
    }
    if input
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > DESCRIPTION_MAX)
    {
        errors.push(FieldError::new(
            "description",
            format!("at most {DESCRIPTION_MAX} characters"),
        ));
    }
    let status = input.status.as_deref().and_then(|text| {
        let status = Status::parse(text);
        if status.is_none() {
            errors.push(FieldError::new("status", "one of todo, in_progress, done"));
        }
        status
    });
    let priority = input.priority.as_deref().and_then(|text| {
        let priority = Priority::parse(text);
        if priority.is_none() {
            errors.push(FieldError::new(
                "priority",
                "one of low, medium, high, urgent",
            ));
        }
        priority
    });
    if let Some(Some(id)) = input.assignee_id {
        if id <= 0 {
            errors.push(FieldError::new("assignee_id", "a user id or null"));
        }
    }
    let tags = input.tags.map(|tags| {
        let mut tags: Vec<String> = tags.into_iter().map(|t| t.trim().to_owned()).collect();
        tags.sort();
        tags.dedup();
        if tags.len() > TAGS_MAX || !tags.iter().all(|t| valid_tag(t)) {
            errors.push(FieldError::new(
                "tags",
                format!("at most {TAGS_MAX} tags of 1 to {TAG_MAX} characters a-z, 0-9 or -"),
            ));
        }
        tags
    });
    check(errors)?;
    Ok(TaskChanges {
        title,
        description: input.description,
        status,
        priority,
        assignee_id: input.assignee_id,
        tags,
    })
}

/// `POST /api/tasks`.
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    Json(input): Json<TaskInput>,
) -> Result<Response, ApiError> {
    let changes = changes_of(input)?;
    let Some(title) = changes.title else {
        return Err(ApiError::invalid_fields(vec![FieldError::new(
            "title", "required",
        )]));
    };
    let new = NewTask {
        title,
        description: changes.description.unwrap_or_default(),
        status: changes.status.unwrap_or(Status::Todo),
        priority: changes.priority.unwrap_or(Priority::Medium),
        assignee_id: changes.assignee_id.flatten(),
        tags: changes.tags.unwrap_or_default(),
    };
    let tags = ["tasks".to_owned(), "stats".to_owned()];
    let followups = state.followups::<TaskDetail>(&tags, EventType::TaskCreated);
    let written = state
        .store
        .create_task(&new, &actor.0, &followups)
        .await
        .map_err(store_error("task"))?;
    state.after_write(&tags, written.outbox).await;
    let location = format!("/api/tasks/{}", written.value.task.id);
    Ok(created(location, written.value))
}

/// `PATCH /api/tasks/{id}`.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    actor: Actor,
    Json(input): Json<TaskInput>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "task")?;
    let changes = changes_of(input)?;
    let tags = task_tags(id);
    let followups = state.followups::<TaskDetail>(&tags, EventType::TaskUpdated);
    let written = state
        .store
        .update_task(id, &changes, &actor.0, &followups)
        .await
        .map_err(store_error("task"))?;
    state.after_write(&tags, written.outbox).await;
    Ok(axum::Json(written.value).into_response())
}

/// `DELETE /api/tasks/{id}`.
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    actor: Actor,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, "task")?;
    let mut tags = task_tags(id);
    tags.push(format!("comments:{id}"));
    let notify = state.followups(&tags, EventType::TaskDeleted);
    let followups = |id: &i64| notify(&json!({ "id": id }));
    let written = state
        .store
        .delete_task(id, &actor.0, &followups)
        .await
        .map_err(store_error("task"))?;
    state.after_write(&tags, written.outbox).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The cache tags a change to task `id` makes stale.
pub fn task_tags(id: i64) -> Vec<String> {
    vec![format!("task:{id}"), "tasks".to_owned(), "stats".to_owned()]
}

/// The query string of `GET /api/tasks/popular`.
#[derive(Debug, Deserialize)]
pub struct PopularParams {
    limit: Option<String>,
}

/// `GET /api/tasks/popular`: the tasks with the most comments.
pub async fn popular(
    State(state): State<AppState>,
    Query(params): Query<PopularParams>,
) -> Result<Response, ApiError> {
    let mut errors = Vec::new();
    let limit = parse_bounded(params.limit.as_deref(), "limit", (1, 50, 10), &mut errors);
    check(errors)?;
    let tasks = state
        .store
        .popular_tasks(limit)
        .await
        .map_err(store_error("task"))?;
    Ok(axum::Json(json!({ "data": tasks })).into_response())
}

/// `GET /api/stats`.
pub async fn stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    let stats = state.store.stats().await.map_err(store_error("stats"))?;
    Ok(axum::Json(stats).into_response())
}
