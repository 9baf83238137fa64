//! `cache-refresh` jobs: a cache key loaded again (after it went stale, or after an
//! invalidation dropped it while it was hot), and warm-ups of a list of paths. Each request
//! runs through the whole stack, marked [`ForceRefresh`], so the response cache loads and
//! stores it whatever it holds.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tower::ServiceExt;

use crate::core::cache::background::{REFRESH, WARM};
use crate::core::cache::ForceRefresh;
use crate::core::jobs::{Job, JobError, Jobs, NewJob, Queue};
use crate::core::service::Inner;

#[derive(Deserialize)]
struct RefreshPayload {
    key: String,
}

#[derive(Deserialize)]
struct WarmPayload {
    host: String,
    paths: Vec<String>,
}

/// The job that warms `paths` (each with `Host: host`).
pub fn warm_job(host: &str, paths: &[String]) -> NewJob {
    NewJob::new(
        Queue::CacheRefresh,
        WARM,
        json!({ "host": host, "paths": paths }),
    )
}

/// Registers the refresh and warm-up handlers, which run their requests through `stack`.
pub fn register(jobs: &Jobs, stack: impl Inner) {
    let refresh_stack = stack.clone();
    jobs.register(REFRESH, move |job: Job| {
        let stack = refresh_stack.clone();
        async move {
            let payload: RefreshPayload = job.payload_as()?;
            let (host, target) = split_key(&payload.key)
                .ok_or_else(|| JobError::permanent(format!("not a cache key: {}", payload.key)))?;
            load(stack, host, target).await
        }
    });
    jobs.register(WARM, move |job: Job| {
        let stack = stack.clone();
        async move {
            let payload: WarmPayload = job.payload_as()?;
            let mut failed = Vec::new();
            for path in &payload.paths {
                if let Err(error) = load(stack.clone(), &payload.host, path).await {
                    failed.push(format!("{path}: {error}"));
                }
            }
            tracing::info!(
                warmed = payload.paths.len() - failed.len(),
                of = payload.paths.len(),
                "cache warmed"
            );
            match failed.is_empty() {
                true => Ok(()),
                false => Err(JobError::retry(failed.join("; "))),
            }
        }
    });
}

/// `(host, target)` of a cache key such as `GET https://host/path?query`.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    let url = key.strip_prefix("GET ")?;
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let slash = rest.find('/')?;
    Some((&rest[..slash], &rest[slash..]))
}

/// Loads `target` on `host` through `stack`, storing it; a `5xx` is a failure worth retrying.
async fn load(stack: impl Inner, host: &str, target: &str) -> Result<(), JobError> {
    let mut request = Request::get(target)
        .header(header::HOST, host)
        .body(Body::empty())
        .map_err(|error| JobError::permanent(format!("{target}: {error}")))?;
    request.extensions_mut().insert(ForceRefresh);
    let response = match stack.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    // Drain the body so a streamed response completes its load.
    let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(JobError::retry(format!("{target} answered {status}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_into_host_and_target() {
        assert_eq!(
            split_key("GET https://app.example/api/tasks?page=2"),
            Some(("app.example", "/api/tasks?page=2"))
        );
        assert_eq!(
            split_key("GET http://127.0.0.1:8080/"),
            Some(("127.0.0.1:8080", "/"))
        );
        assert_eq!(split_key("POST https://a/b"), None);
        assert_eq!(split_key("GET https://no-path"), None);
    }
}
