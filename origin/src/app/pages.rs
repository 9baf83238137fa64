//! Server-rendered HTML pages: the task board and one page per task. Templates live in
//! `origin/templates/` and are compiled in (askama), escaping every value.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

use super::model::{Comment, Status, Task, TaskDetail};
use super::store::{Sort, StoreError, TaskFilter, TaskPage};
use super::{AppState, ImageUrls};
use crate::core::http::errors::ApiError;

/// Cards per board column.
const COLUMN_CARDS: u32 = 30;
/// Comments shown on a task page.
const PAGE_COMMENTS: u32 = 50;

/// One board column.
#[derive(Debug)]
struct Column {
    status: &'static str,
    label: &'static str,
    tasks: Vec<Task>,
}

#[derive(Debug, Template)]
#[template(path = "board.html")]
struct Board<'a> {
    stylesheet: &'a str,
    version: &'static str,
    columns: Vec<Column>,
}

#[derive(Debug, Template)]
#[template(path = "task.html")]
struct TaskPageView<'a> {
    stylesheet: &'a str,
    version: &'static str,
    detail: TaskDetail,
    comments: Vec<Comment>,
    images: &'a ImageUrls,
}

fn label(status: Status) -> &'static str {
    match status {
        Status::Todo => "To do",
        Status::InProgress => "In progress",
        Status::Done => "Done",
    }
}

fn page_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Database(error) => error.into(),
        _ => ApiError::not_found("page"),
    }
}

fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            crate::core::http::errors::ErrorCode::InternalError,
            "the page could not be rendered",
        )
        .with_cause(format_args!("template failed: {error}"))
        .into_response(),
    }
}

/// `GET /`: the task board, most recently updated first in each column.
pub async fn home(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut columns = Vec::new();
    for status in Status::ALL {
        let filter = TaskFilter {
            status: Some(status),
            assignee: None,
            tag: None,
            updated_since: None,
            sort: Sort::default(),
            page: TaskPage::Cursor {
                limit: COLUMN_CARDS,
                after: None,
            },
        };
        let list = state.store.list_tasks(&filter).await.map_err(page_error)?;
        columns.push(Column {
            status: status.as_str(),
            label: label(status),
            tasks: list.tasks,
        });
    }
    Ok(render(&Board {
        stylesheet: &state.assets.stylesheet_path(),
        version: env!("CARGO_PKG_VERSION"),
        columns,
    }))
}

/// `GET /tasks/{id}`: one task with its images and first comments.
pub async fn task(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found("task"))?;
    let detail = state
        .store
        .task(id)
        .await
        .map_err(page_error)?
        .ok_or_else(|| ApiError::not_found("task"))?;
    let comments = state
        .store
        .comments(id, None, PAGE_COMMENTS)
        .await
        .map_err(page_error)?
        .map(|page| page.comments)
        .unwrap_or_default();
    let mut response = render(&TaskPageView {
        stylesheet: &state.assets.stylesheet_path(),
        version: env!("CARGO_PKG_VERSION"),
        detail,
        comments,
        images: &state.images,
    });
    // Pages link their stylesheet early so that browsers (and Early Hints) fetch it at once.
    if let Ok(link) = format!(
        "<{}>; rel=preload; as=style",
        state.assets.stylesheet_path()
    )
    .parse()
    {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}
