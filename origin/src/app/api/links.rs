//! `/api/tasks/{id}/links`: links attached to tasks, titled by fetching the linked page (a link
//! preview) through the core's guarded outbound client.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::tasks::task_tags;
use super::{check, created, parse_id, store_error, Actor};
use crate::app::AppState;
use crate::core::http::errors::{ApiError, FieldError};
use crate::core::http::extract::Json;

/// Longest URL accepted.
const URL_MAX: usize = 2048;
/// Longest title kept, in characters.
const TITLE_MAX: usize = 300;

/// The body of `POST /api/tasks/{id}/links`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkInput {
    url: Option<String>,
}

/// `POST /api/tasks/{id}/links`: fetches the page, keeps its title, attaches the link.
pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    actor: Actor,
    Json(input): Json<LinkInput>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "task")?;
    let url = input.url.map(|u| u.trim().to_owned()).unwrap_or_default();
    let mut errors = Vec::new();
    if url.is_empty() || url.len() > URL_MAX {
        errors.push(FieldError::new(
            "url",
            format!("required: an http or https URL of at most {URL_MAX} bytes"),
        ));
    }
    check(errors)?;
    // Refuse unknown tasks before fetching anything on their behalf.
    if !state
        .store
        .has_task(id)
        .await
        .map_err(store_error("task"))?
    {
        return Err(ApiError::not_found("task"));
    }
    let page = state.http.get(&url).await?;
    let title = page_title(&String::from_utf8_lossy(&page.body));
    let link = state
        .store
        .add_link(id, &url, title.as_deref(), &actor.0)
        .await
        .map_err(store_error("task"))?;
    state.invalidate(&task_tags(id)).await;
    Ok(created(format!("/api/tasks/{id}/links"), link))
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

/// The text of the page's first `<title>`, entities decoded and whitespace collapsed.
pub fn page_title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    let text = decode_entities(&html[start..end]);
    let title: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(TITLE_MAX)
        .collect();
    (!title.is_empty()).then_some(title)
}

/// Decodes the named entities titles use most, and numeric ones.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|n| n.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_found_decoded_and_collapsed() {
        let html =
            "<html><head><TITLE lang=en>\n  Fish &amp; Chips &#8211; &#x41;\n</TITLE></head>";
        assert_eq!(page_title(html).as_deref(), Some("Fish & Chips – A"));
        assert_eq!(page_title("<title>  </title>"), None);
        assert_eq!(page_title("<p>no title</p>"), None);
        assert_eq!(
            page_title("<title>AT&T &bogus; x</title>").as_deref(),
            Some("AT&T &bogus; x")
        );
    }
}
