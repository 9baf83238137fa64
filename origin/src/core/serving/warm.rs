//! Cache warming: at start, the configured hot paths are requested once through the whole
//! stack, so the first real visitors find them cached.

use axum::body::Body;
use axum::http::{header, Request};
use tower::ServiceExt;

use crate::core::service::Inner;

/// Requests each of `paths` with `Host: host` through `app`; returns how many answered `200`.
pub async fn warm(app: impl Inner, host: &str, paths: &[String]) -> usize {
    let mut warmed = 0;
    for path in paths {
        let request = Request::get(path.as_str())
            .header(header::HOST, host)
            .body(Body::empty());
        let Ok(request) = request else {
            tracing::warn!(%path, "cache warming: not a valid path");
            continue;
        };
        match app.clone().oneshot(request).await {
            Ok(response) if response.status().is_success() => {
                // Drain the body so a streamed response completes its load.
                let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
                warmed += 1;
            }
            Ok(response) => {
                tracing::warn!(%path, status = %response.status(), "cache warming: not cached")
            }
            Err(never) => match never {},
        }
    }
    tracing::info!(warmed, of = paths.len(), "cache warmed");
    warmed
}
