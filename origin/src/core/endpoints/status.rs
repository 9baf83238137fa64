//! `GET /status`: the operator's page, server-rendered HTML without script: request rate,
//! latency percentiles and cache hit ratio over the last 90 samples, the circuit breakers, the
//! job queues, the cache's size and the recent slow requests. `GET /status/style.css` is its
//! stylesheet (the site's Content Security Policy allows no inline style).
//!
//! The page opens with the admin token (`Authorization: Bearer $ADMIN_TOKEN`) or, without it,
//! for TCP peers inside `STATUS_ALLOW_NETWORKS` (never judged by forwarding headers). Every
//! answer is `Cache-Control: no-store`, and the route policy keeps every cache away from it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ipnet::IpNet;

use super::status_page::{self, JobsSnapshot, Snapshot};
use crate::core::cache::TieredCache;
use crate::core::dependencies::breaker::CircuitBreaker;
use crate::core::http::client::constant_time_eq;
use crate::core::http::errors::{ApiError, ErrorCode};
use crate::core::jobs::Jobs;
use crate::core::observability::history::History;
use crate::core::serving::listener::OpenConnections;

/// The stylesheet, embedded.
const STYLESHEET: &str = include_str!("../../../assets/status.css");
/// How long the page waits for the job store's counts.
const JOBS_WAIT: Duration = Duration::from_secs(2);

/// What the status page reads.
#[derive(Debug, Clone)]
pub struct StatusState {
    /// The admin bearer token; `None` leaves the allowed networks alone.
    pub token: Option<Arc<str>>,
    /// Peers that need no token (`STATUS_ALLOW_NETWORKS`).
    pub networks: Arc<[IpNet]>,
    /// Samples and slow requests.
    pub history: History,
    /// The response cache.
    pub cache: TieredCache,
    /// The dependencies' breakers.
    pub breakers: Vec<CircuitBreaker>,
    /// The job system.
    pub jobs: Jobs,
    /// When the core was built.
    pub started: Instant,
    /// Open client connections.
    pub connections: OpenConnections,
}

/// `GET /status` (guarded) and `GET /status/style.css`.
pub fn router(state: StatusState) -> Router {
    Router::new()
        .route("/status", get(page))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .route("/status/style.css", get(stylesheet))
        .with_state(state)
}

/// Whether a request may see the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// From an allowed network, or with the token.
    Allowed,
    /// Neither, and there is no token to give.
    Disabled,
    /// Neither, and the token would open it.
    Unauthorized,
}

fn access(state: &StatusState, request: &Request) -> Access {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_canonical());
    if peer.is_some_and(|peer| state.networks.iter().any(|net| net.contains(&peer))) {
        return Access::Allowed;
    }
    match &state.token {
        None => Access::Disabled,
        Some(expected) if bearer_matches(request.headers(), expected) => Access::Allowed,
        Some(_) => Access::Unauthorized,
    }
}

fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()))
}

async fn guard(State(state): State<StatusState>, request: Request, next: Next) -> Response {
    match access(&state, &request) {
        Access::Allowed => next.run(request).await,
        Access::Disabled => ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::AdminDisabled,
            "the status page is open to STATUS_ALLOW_NETWORKS and to ADMIN_TOKEN, \
             and this request has neither",
        )
        .into_response(),
        Access::Unauthorized => {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "a valid admin bearer token is required",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

async fn page(State(state): State<StatusState>) -> Response {
    let snapshot = gather(&state).await;
    match status_page::render(snapshot) {
        Ok(html) => answer("text/html; charset=utf-8", html),
        Err(error) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            "the status page could not be rendered",
        )
        .with_cause(format_args!("status template failed: {error}"))
        .into_response(),
    }
}

async fn stylesheet() -> Response {
    answer("text/css; charset=utf-8", STYLESHEET)
}

fn answer(content_type: &'static str, body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Everything the page shows, read now.
async fn gather(state: &StatusState) -> Snapshot {
    Snapshot {
        now: SystemTime::now(),
        version: env!("CARGO_PKG_VERSION"),
        uptime: state.started.elapsed(),
        connections: state.connections.get(),
        samples: state.history.samples(),
        interval: state.history.interval(),
        slow_threshold: state.history.slow_threshold(),
        slow: state.history.slow_requests(),
        breakers: state
            .breakers
            .iter()
            .map(|breaker| (breaker.report(), breaker.timing()))
            .collect(),
        jobs: jobs(&state.jobs).await,
        cache: state.cache.stats().await,
    }
}

/// The queues' counts, or why there are none.
async fn jobs(jobs: &Jobs) -> JobsSnapshot {
    let queues = match tokio::time::timeout(JOBS_WAIT, jobs.overview()).await {
        Ok(Ok(queues)) => Ok(queues),
        Ok(Err(error)) => Err(format!("the job store cannot be reached: {error}")),
        Err(_) => Err(format!(
            "the job store did not answer within {} s",
            JOBS_WAIT.as_secs()
        )),
    };
    JobsSnapshot {
        durable: jobs.is_durable(),
        buffered: jobs.store().buffered(),
        queues,
    }
}
