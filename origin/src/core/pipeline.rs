//! The origin core's request pipeline: one tower service around the application that, for
//! every request, decides the shared policy, applies the route's rate limit to the client,
//! answers cacheable reads from the response cache (before any routing), stamps the policy's
//! headers and records the request's metrics; with OpenTelemetry on, all of it runs inside the
//! request's server span.
//!
//! The steps run in one future per request rather than as stacked middleware: a cache hit is
//! the origin's hottest path, and each middleware layer costs it a boxed future and a clone of
//! the service below.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::response::Response;
use futures::future::BoxFuture;
use tower::{Layer, Service};
use tracing::Instrument;

use shared::rate_limit::{is_crawler, RateLimitTier};

use super::admission::{Admission, Admitted};
use super::client::EdgeTrust;
use super::errors::{ApiError, ErrorCode};
use super::header_values::decimal;
use super::metrics::Metrics;
use super::policy_headers::{PolicyHeaders, Prepared, RouteCaching};
use super::rate_limit::{RateLimiter, Verdict};
use super::response_cache::{self, Inner, ResponseCache, Stamped};
use super::telemetry;

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
        if telemetry::enabled() {
            let span =
                telemetry::request_span(request.method(), request.uri().path(), request.headers());
            return Box::pin(
                async move {
                    let response = handle(stages, request, inner).await;
                    telemetry::record_status(response.status().as_u16());
                    Ok(response)
                }
                .instrument(span),
            );
        }
        Box::pin(async move { Ok(handle(stages, request, inner).await) })
    }
}

async fn handle<S: Inner>(stages: Arc<Stages>, mut request: Request, inner: S) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let request_id = request_id(&mut request);
    let uri = request.uri().clone();
    let mut prepared = stages.policy.prepare(&request);
    let verdict = match &stages.limiter {
        Some(limiter) => {
            let tier = effective_tier(prepared.tier, &request);
            let client = stages.trust.client_ip(&request);
            limiter
                .check(tier, client)
                .await
                .map(|verdict| (tier, verdict))
        }
        None => None,
    };
    let mut response = match (verdict, prepared.caching.take()) {
        (Some((tier, verdict)), _) if !verdict.allowed => {
            stages.metrics.rate_limited(tier.as_str());
            too_many_requests(tier, &verdict)
        }
        (_, caching) => {
            // Health, metrics and admin routes are never shed nor timed out.
            let exempt = matches!(
                prepared.tier,
                RateLimitTier::Unlimited | RateLimitTier::Aggressive
            );
            if exempt {
                through(&stages, request, caching, &prepared, inner).await
            } else {
                let timeout = stages
                    .admission
                    .timeout_for(stages.policy.rule_name(&prepared));
                let admitted = Admitted::new(inner, Arc::clone(&stages.admission), timeout);
                through(&stages, request, caching, &prepared, admitted).await
            }
        }
    };
    if response.extensions().get::<Stamped>().is_none() {
        stages.policy.stamp(prepared, response.headers_mut());
    }
    if let Some((_, verdict)) = verdict {
        rate_limit_headers(&verdict, response.headers_mut());
    }
    let elapsed = started.elapsed();
    stages.metrics.observe(&method, &response, elapsed);
    log(&stages, &request_id, &method, &uri, &response, elapsed);
    response
        .headers_mut()
        .insert(REQUEST_ID.clone(), request_id);
    response
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
            let stamp = move |headers: &mut HeaderMap| finish.policy.stamp(with, headers);
            stages.cache.serve(request, &caching, inner, stamp).await
        }
        None => response_cache::call(inner, request).await,
    }
}

/// The request's `X-Request-Id`: the edge's (or any client's) when it is a sane token, else a
/// new one, written back into the request so that the application sees it too.
fn request_id(request: &mut Request) -> HeaderValue {
    let given = request.headers().get(&REQUEST_ID).filter(|id| {
        let bytes = id.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 128
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    });
    if let Some(id) = given {
        return id.clone();
    }
    let id = new_id();
    request.headers_mut().insert(REQUEST_ID.clone(), id.clone());
    id
}

/// 16 random hex digits.
fn new_id() -> HeaderValue {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let random = fastrand::u64(..);
    let mut text = [0u8; 16];
    for (i, digit) in text.iter_mut().enumerate() {
        *digit = DIGITS[((random >> (60 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("0"))
}

/// One debug line per request; a warning for slow requests and server errors, which carry the
/// request id so that an operator can find the same request at the edge.
fn log(
    stages: &Stages,
    request_id: &HeaderValue,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    response: &Response,
    elapsed: std::time::Duration,
) {
    let id = request_id.to_str().unwrap_or("-");
    let status = response.status().as_u16();
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    if elapsed >= stages.slow_request {
        tracing::warn!(request_id = id, %method, %uri, status, elapsed_ms, "slow request");
    } else if response.status().is_server_error() {
        tracing::warn!(request_id = id, %method, %uri, status, elapsed_ms, "request failed");
    } else {
        tracing::debug!(request_id = id, %method, %uri, status, elapsed_ms, "request served");
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The route's tier, or the crawler tier for a well-known crawler on an ordinary route.
fn effective_tier(tier: RateLimitTier, request: &Request) -> RateLimitTier {
    let crawler = || {
        request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|agent| agent.to_str().ok())
            .is_some_and(is_crawler)
    };
    if tier == RateLimitTier::Default && crawler() {
        RateLimitTier::Crawler
    } else {
        tier
    }
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
