//! Assembles the origin and serves it.

use std::future::Future;
use std::sync::Arc;

use axum::routing::get;
use axum::{middleware, Router};
use shared::policy::Policy;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::app::{self, AppState};
use crate::core::{errors, metrics, policy_headers};

/// The whole origin as one router, outermost layer last (axum applies `.layer` bottom-up, so
/// requests pass through them from the bottom of this function to the top).
pub fn router(state: AppState, policy: Arc<Policy>, metrics: metrics::Metrics) -> Router {
    app::router(state)
        .route(
            "/metrics",
            get(metrics::endpoint).with_state(metrics.clone()),
        )
        .fallback(errors::route_not_found)
        // Cache-Control, Cache-Tag and security headers from the shared policy.
        .layer(middleware::from_fn_with_state(
            policy,
            policy_headers::apply,
        ))
        // Request count and latency per route template.
        .layer(middleware::from_fn_with_state(metrics, metrics::record))
        // One span per request, with method, path and status.
        .layer(TraceLayer::new_for_http())
}

/// Serves on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router(
        AppState::new(),
        Arc::new(Policy::default()),
        metrics::Metrics::default(),
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
