//! The origin core's request pipeline: one tower service around the application that, for
//! every request, takes its id, decides the shared policy, applies the route's rate limit to
//! the client, answers cacheable reads from the response cache (before any routing), admits
//! the rest, stamps the policy's headers, records the request's metrics and logs it. Every log
//! line of the request names it; with OpenTelemetry on, all of it runs inside the request's
//! server span.
//!
//! The steps run in one future per request rather than as stacked middleware: a cache hit is
//! the origin's hottest path, and each middleware layer costs it a boxed future and a clone of
//! the service below.

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use tower::{Layer, Service};

use shared::rate_limit::RateLimitTier;

use crate::core::http::client::constant_time_eq;
use crate::core::http::client::EdgeTrust;
use crate::core::http::errors::{ApiError, ErrorCause, ErrorCode};
use crate::core::http::header_values::decimal;
use crate::core::layers::admission::{Admission, Admitted};
use crate::core::layers::policy_headers::{PolicyHeaders, Prepared, RouteCaching};
use crate::core::layers::rate_limit::{RateLimiter, Verdict};
use crate::core::layers::request_id::{self, REQUEST_ID};
use crate::core::layers::response_cache::{ResponseCache, Stamped};
use crate::core::observability::history::History;
use crate::core::observability::log_context::{self, Labels};
use crate::core::observability::metrics::Metrics;
use crate::core::observability::server_span::ServerSpan;
use crate::core::observability::timing;
use crate::core::service::{self, Inner};

/// What the pipeline shares between requests.
#[derive(Debug)]
pub struct Stages {
    /// The policy's decisions and headers.
    pub policy: PolicyHeaders,
    /// The response cache.
    pub cache: ResponseCache,
    /// Request counts and latencies.
    pub metrics: Metrics,
    /// Rate limits; `None` turns them off.
    pub limiter: Option<Arc<RateLimiter>>,
    /// What proves a request came through the edge (for the client's address).
    pub trust: EdgeTrust,
    /// Requests slower than this are logged as warnings.
    pub slow_request: std::time::Duration,
    /// Concurrency limit, wait queue and request timeout.
    pub admission: Arc<Admission>,
    /// The status page's latencies and slow requests.
    pub history: History,
    /// The admin token: requests bearing it are sent `Server-Timing`.
    pub admin_token: Option<Arc<str>>,
}

/// Wraps a service in the [`Pipeline`].
#[derive(Debug, Clone)]
pub struct PipelineLayer(Arc<Stages>);

impl PipelineLayer {
    /// A layer running `stages` around the service it wraps.
    pub fn new(stages: Stages) -> Self {
        Self(Arc::new(stages))
    }
}

impl<S> Layer<S> for PipelineLayer {
    type Service = Pipeline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Pipeline {
            inner,
            stages: Arc::clone(&self.0),
        }
    }
}

/// The pipeline around `S`.
#[derive(Debug, Clone)]
pub struct Pipeline<S> {
    inner: S,
    stages: Arc<Stages>,
}

impl<S: Inner> Service<Request> for Pipeline<S> {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The router is always ready; each request calls a clone of it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let stages = Arc::clone(&self.stages);
        let inner = self.inner.clone();
        // Boxed, so that requests without one do not move its room around with their futures.
        let span = ServerSpan::start(request.method(), request.headers()).map(Box::new);
        Box::pin(async move { Ok(handle(stages, request, inner, span).await) })
    }
}

/// One request, step by step, in the order [`crate::core::stack::Core::stack`] lists them;
/// `span` is its server span when traces are exported.
async fn handle<S: Inner>(
    stages: Arc<Stages>,
    mut request: Request,
    inner: S,
    span: Option<Box<ServerSpan>>,
) -> Response {
    let started = Instant::now();
    let id = request_id::take_or_make(&mut request);
    let labels = match &span {
        Some(span) => Labels::new(id.clone(), Some(span.span_context()), None),
        None => {
            let traceparent = request.headers().get(TRACEPARENT).cloned();
            Labels::new(id.clone(), None, traceparent)
        }
    };
    let seen = Seen {
        id,
        method: request.method().clone(),
        uri: request.uri().clone(),
        span,
    };
    log_context::scope(labels, answer(stages, request, inner, seen, started)).await
}

/// The request once named: policy, rate limit, the response, its headers, metrics and log.
async fn answer<S: Inner>(
    stages: Arc<Stages>,
    request: Request,
    inner: S,
    seen: Seen,
    started: Instant,
) -> Response {
    let mut prepared = stages.policy.prepare(&request);
    let client = stages
        .limiter
        .is_some()
        .then(|| stages.trust.client_ip(&request));
    let limited = rate_limit(&stages, &prepared, client).await;
    let timed = prepared.server_timing || stages.is_operator(&request);
    let cacheable = prepared.caching.is_some();
    // Each branch makes its own future, so that they share one slot in this one.
    let mut response = if timed {
        let serving = Instant::now();
        let respond = respond(&stages, limited.as_ref(), request, &mut prepared, inner);
        let (mut response, measured) = timing::measure(respond).await;
        let cache = cacheable.then(|| serving.elapsed());
        let value = timing::header(measured, cache, started.elapsed());
        response.headers_mut().insert(SERVER_TIMING, value);
        response
    } else {
        respond(&stages, limited.as_ref(), request, &mut prepared, inner).await
    };
    stamp(&stages, prepared, limited.as_ref(), &mut response);
    let elapsed = started.elapsed();
    stages.metrics.observe(&seen.method, &response, elapsed);
    stages
        .history
        .record(&seen.method, &response, elapsed, &seen.id);
    log(&stages, &seen, &response, elapsed);
    if let Some(span) = seen.span {
        span.end(&seen.method, &seen.uri, &seen.id, &response);
    }
    response.headers_mut().insert(REQUEST_ID.clone(), seen.id);
    response
}

/// W3C Trace Context's header.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `Server-Timing`.
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

impl Stages {
    /// Whether `request` bears the admin token.
    fn is_operator(&self, request: &Request) -> bool {
        let Some(token) = self.admin_token.as_deref() else {
            return false;
        };
        request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
    }
}

/// A rate-limit decision and the tier it was made in.
struct Limited {
    tier: RateLimitTier,
    verdict: Verdict,
}

/// The rate limiter's decision for this client on the route's tier; `None` when limits are
/// off or the tier is unlimited.
async fn rate_limit(
    stages: &Stages,
    prepared: &Prepared,
    client: Option<IpAddr>,
) -> Option<Limited> {
    let (limiter, client) = (stages.limiter.as_ref()?, client?);
    let tier = prepared.tier;
    let verdict = limiter.check(tier, client).await?;
    Some(Limited { tier, verdict })
}

/// The refusal when the rate limit says so, else the response.
async fn respond<S: Inner>(
    stages: &Arc<Stages>,
    limited: Option<&Limited>,
    request: Request,
    prepared: &mut Prepared,
    inner: S,
) -> Response {
    match limited {
        Some(limited) if !limited.verdict.allowed => refuse(stages, limited),
        _ => serve(stages, request, prepared, inner).await,
    }
}

/// `429 RATE_LIMITED`, counted.
fn refuse(stages: &Stages, limited: &Limited) -> Response {
    stages.metrics.rate_limited(limited.tier.as_str());
    too_many_requests(limited.tier, &limited.verdict)
}

/// The response from the cache or, on a miss, from the application behind admission control,
/// unless the policy exempts the route (health, metrics and admin calls must answer under any
/// load).
async fn serve<S: Inner>(
    stages: &Arc<Stages>,
    request: Request,
    prepared: &mut Prepared,
    inner: S,
) -> Response {
    let caching = prepared.caching.take();
    if prepared.exempt {
        return through(stages, request, caching, prepared, inner).await;
    }
    let rule = stages.policy.rule_name(prepared);
    let timeout = stages.admission.timeout_for(rule);
    let admitted = Admitted::new(inner, Arc::clone(&stages.admission), timeout);
    through(stages, request, caching, prepared, admitted).await
}

/// The policy's headers (unless a cached copy carries them already) and the rate limit's.
fn stamp(stages: &Stages, prepared: Prepared, limited: Option<&Limited>, response: &mut Response) {
    if response.extensions().get::<Stamped>().is_none() {
        let status = response.status();
        stages
            .policy
            .stamp(prepared, status, response.headers_mut());
    }
    if let Some(limited) = limited {
        rate_limit_headers(&limited.verdict, response.headers_mut());
    }
}

/// The response from the cache when the request may be cached, else from `inner`.
async fn through<S: Inner>(
    stages: &Arc<Stages>,
    request: Request,
    caching: Option<Arc<RouteCaching>>,
    prepared: &Prepared,
    inner: S,
) -> Response {
    match caching {
        Some(caching) => {
            let (finish, with) = (Arc::clone(stages), prepared.clone());
            let stamp = move |status, headers: &mut HeaderMap| {
                finish.policy.stamp(with.clone(), status, headers);
            };
            let inner = timing::Timed(inner);
            stages.cache.serve(request, &caching, inner, stamp).await
        }
        None => timing::app(service::call(inner, request)).await,
    }
}

/// One debug line per request; a warning for errors (with their cause, when one was recorded),
/// slow requests and server errors. Like every line logged while the request is served, it
/// names the request id and the trace ([`log_context`]), so that an operator can find the same
/// request at the edge.
fn log(stages: &Stages, seen: &Seen, response: &Response, elapsed: std::time::Duration) {
    let (method, uri) = (&seen.method, &seen.uri);
    let status = response.status().as_u16();
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    if let Some(ErrorCause(cause)) = response.extensions().get::<ErrorCause>() {
        tracing::warn!(%method, %uri, status, elapsed_ms, %cause, "request failed");
    } else if elapsed >= stages.slow_request {
        tracing::warn!(%method, %uri, status, elapsed_ms, "slow request");
    } else if response.status().is_server_error() {
        tracing::warn!(%method, %uri, status, elapsed_ms, "request failed");
    } else {
        tracing::debug!(%method, %uri, status, elapsed_ms, "request served");
    }
}

/// What a request's log line names besides its labels: its id, method and target; and its
/// server span, ended with them.
struct Seen {
    id: HeaderValue,
    method: axum::http::Method,
    uri: axum::http::Uri,
    span: Option<Box<ServerSpan>>,
}

/// `429 RATE_LIMITED`, with `Retry-After` in whole seconds (rounded up).
fn too_many_requests(tier: RateLimitTier, verdict: &Verdict) -> Response {
    let retry = verdict.retry_after.as_millis().div_ceil(1000).max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
        format!("rate limit exceeded; retry in {retry} s"),
    )
    .with_metadata(serde_json::json!({
        "tier": tier.as_str(),
        "limit": verdict.limit,
        "retryAfterSeconds": retry,
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry as u64));
    response
}

/// `X-RateLimit-Limit`, `-Remaining`, and `-Reset` (Unix seconds when the budget is whole).
fn rate_limit_headers(verdict: &Verdict, headers: &mut HeaderMap) {
    let reset = SystemTime::now()
        .checked_add(verdict.reset_after)
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |at| at.as_secs() + u64::from(at.subsec_nanos() > 0));
    headers.insert(LIMIT.clone(), decimal(verdict.limit.into()));
    headers.insert(REMAINING.clone(), decimal(verdict.remaining.into()));
    headers.insert(RESET.clone(), decimal(reset));
}

static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
