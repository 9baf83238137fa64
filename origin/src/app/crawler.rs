//! The crawler: the `fetch-link` jobs that title the links attached to tasks. A link is stored
//! `pending` and its job enqueued by `POST /api/tasks/{id}/links`; the job fetches the page
//! through the core's guarded outbound client (circuit breaker, refusal of private targets,
//! timeouts, size limit), keeps its `<title>`, and records the outcome on the link:
//!
//! | the fetch | the link | the job |
//! | --- | --- | --- |
//! | a page (`2xx`, `3xx`) | `fetched`, titled | completed |
//! | a URL that is not `http(s)`, a target that is not public, a `4xx` other than 408 and 429 | `failed`, with why | dead at once: another attempt cannot succeed |
//! | a timeout, an unreachable target, a `5xx`, `408`, `429`, an open breaker | still `pending` | retried with backoff |
//! | the same, on the last attempt | `failed`, with why | dead |
//!
//! The reason kept on a link is a fixed sentence per failure (what clients see); the job's own
//! error, for operators, has the details.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::api::task_tags;
use crate::app::model::TaskLink;
use crate::app::store::LinkOutcome;
use crate::app::AppState;
use crate::core::dependencies::outbound::{Fetched, OutboundError};
use crate::core::jobs::{Job, JobError, NewJob, Queue};

/// The kind of the crawler's jobs.
pub const FETCH_LINK_JOB: &str = "fetch-link";
/// Longest title kept, in characters.
const TITLE_MAX: usize = 300;

/// What a `fetch-link` job carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchLink {
    /// The link to title.
    pub link_id: i64,
    /// Its task, whose cached responses show it.
    pub task_id: i64,
    /// The page.
    pub url: String,
}

/// The job that fetches `link`'s page, deduplicated per link.
pub fn fetch_job(link: &TaskLink) -> NewJob {
    let payload = FetchLink {
        link_id: link.id,
        task_id: link.task_id,
        url: link.url.clone(),
    };
    NewJob::new(Queue::Crawler, FETCH_LINK_JOB, json!(payload))
        .with_key(format!("link:{}", link.id))
}

/// Why a fetch did not give a title.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FetchFailure {
    /// What the link shows.
    reason: String,
    /// What the job records.
    detail: String,
    /// Whether another attempt may succeed.
    transient: bool,
}

impl FetchFailure {
    fn new(reason: impl Into<String>, detail: impl ToString, transient: bool) -> Self {
        Self {
            reason: reason.into(),
            detail: detail.to_string(),
            transient,
        }
    }
}

/// The title of a fetch's page, or why there is none.
fn outcome(fetched: Result<Fetched, OutboundError>) -> Result<Option<String>, FetchFailure> {
    let page = match fetched {
        Ok(page) => page,
        Err(error) => {
            let reason = match &error {
                OutboundError::Unreachable(_) => "the page could not be reached".to_owned(),
                other => other.to_string(),
            };
            let transient = !matches!(error, OutboundError::InvalidUrl | OutboundError::Forbidden);
            return Err(FetchFailure::new(reason, error, transient));
        }
    };
    if (400..500).contains(&page.status) {
        let reason = format!("the page answered {}", page.status);
        let transient = matches!(page.status, 408 | 429);
        return Err(FetchFailure::new(reason.clone(), reason, transient));
    }
    Ok(page_title(&String::from_utf8_lossy(&page.body)))
}

/// Runs a `fetch-link` job: fetches the page and records the outcome on the link (see the
/// module documentation); `max_attempts` tells the last attempt.
pub async fn fetch_link(state: AppState, job: Job, max_attempts: u32) -> Result<(), JobError> {
    let task: FetchLink = serde_json::from_value(job.payload)
        .map_err(|error| JobError::permanent(format!("not a fetch-link payload: {error}")))?;
    let link = state
        .store
        .link(task.task_id, task.link_id)
        .await
        .map_err(|error| JobError::retry(error.to_string()))?;
    if link.is_none() {
        tracing::info!(link = task.link_id, "link gone before its page was fetched");
        return Ok(());
    }
    let failure = match outcome(state.http.get(&task.url).await) {
        Ok(title) => {
            tracing::info!(link = task.link_id, ?title, "link fetched");
            record(&state, &task, LinkOutcome::Fetched(title)).await?;
            return Ok(());
        }
        Err(failure) => failure,
    };
    let last = job.attempts >= max_attempts;
    if failure.transient && !last {
        return Err(JobError::retry(failure.detail));
    }
    tracing::info!(link = task.link_id, reason = %failure.reason, detail = %failure.detail, "link not fetched");
    record(&state, &task, LinkOutcome::Failed(failure.reason)).await?;
    if failure.transient {
        Err(JobError::retry(failure.detail))
    } else {
        Err(JobError::permanent(failure.detail))
    }
}

/// Records `outcome` on the link and drops the task's cached responses that show it.
async fn record(state: &AppState, task: &FetchLink, outcome: LinkOutcome) -> Result<(), JobError> {
    state
        .store
        .finish_link(task.link_id, &outcome)
        .await
        .map_err(|error| JobError::retry(error.to_string()))?;
    state.invalidate(&task_tags(task.task_id)).await;
    Ok(())
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

    fn page(status: u16, body: &'static str) -> Result<Fetched, OutboundError> {
        Ok(Fetched {
            url: reqwest::Url::parse("https://example.com/").expect("a URL"),
            status,
            content_type: Some("text/html".to_owned()),
            body: bytes::Bytes::from_static(body.as_bytes()),
        })
    }

    fn transient(fetched: Result<Fetched, OutboundError>) -> Option<bool> {
        outcome(fetched).err().map(|failure| failure.transient)
    }

    #[test]
    fn pages_give_titles_and_failures_are_told_apart() {
        let titled = outcome(page(200, "<title>Plans</title>"));
        assert_eq!(titled, Ok(Some("Plans".to_owned())));
        assert_eq!(outcome(page(200, "no title")), Ok(None));
        for permanent in [
            page(404, ""),
            page(410, ""),
            Err(OutboundError::Forbidden),
            Err(OutboundError::InvalidUrl),
        ] {
            assert_eq!(transient(permanent), Some(false));
        }
        for retried in [
            page(429, ""),
            page(408, ""),
            Err(OutboundError::Timeout),
            Err(OutboundError::CircuitOpen),
            Err(OutboundError::ServerError(503)),
            Err(OutboundError::Unreachable(
                "connection refused (10.0.0.7)".into(),
            )),
        ] {
            assert_eq!(transient(retried), Some(true));
        }
        let unreachable = outcome(Err(OutboundError::Unreachable("10.0.0.7".into())));
        let failure = unreachable.expect_err("a failure");
        assert_eq!(
            failure.reason, "the page could not be reached",
            "no details shown"
        );
        assert!(
            failure.detail.contains("10.0.0.7"),
            "details kept for operators"
        );
    }

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
