//! Admission to the application: a concurrency limit with a bounded wait queue (load
//! shedding), and a timeout on the time to a response head.
//!
//! Only requests that reach the application are admitted: cache hits never wait for a slot.
//! A request finding every slot taken waits in the queue up to the queue timeout; when the
//! queue is full, or the wait runs out, it gets `503 SERVICE_UNAVAILABLE` with `Retry-After`
//! at once, so that an overloaded origin answers quickly instead of collapsing. A handler that
//! has not produced a response head within the request timeout gets `504 TIMEOUT` (streaming
//! bodies, such as exports, are not cut once their head is out). Health, metrics and admin
//! routes are exempt (see [`crate::core::layers::pipeline`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tower::Service;

use crate::core::http::errors::{ApiError, ErrorCode};
use crate::core::service::{self, Inner};

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Requests the application serves at once (`MAX_CONCURRENT_REQUESTS`).
    pub max_concurrent: usize,
    /// Requests that may wait for a slot (`MAX_QUEUED_REQUESTS`).
    pub max_queued: usize,
    /// How long a request may wait for a slot (`QUEUE_TIMEOUT_MS`).
    pub queue_timeout: Duration,
    /// How long the application has to produce a response head (`REQUEST_TIMEOUT`).
    pub request_timeout: Duration,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        Self {
            max_concurrent: 100,
            max_queued: 1000,
            queue_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Shared admission state.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    /// Request timeouts of particular policy rules, instead of `limits.request_timeout`.
    rule_timeouts: Vec<(String, Duration)>,
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
}

impl Admission {
    /// Admission with `limits`.
    pub fn new(limits: AdmissionLimits) -> Self {
        Self {
            limits,
            rule_timeouts: Vec::new(),
            slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            queued: AtomicUsize::new(0),
        }
    }

    /// Runs `request` on `inner` once a slot is free, bounded by the request timeout.
    /// Gives the requests matching each named policy rule its own request timeout.
    #[must_use]
    pub fn with_rule_timeouts(mut self, timeouts: Vec<(String, Duration)>) -> Self {
        self.rule_timeouts = timeouts;
        self
    }

    /// The request timeout of a request that matched the policy rule `rule`.
    pub fn timeout_for(&self, rule: Option<&str>) -> Duration {
        rule.and_then(|rule| self.rule_timeouts.iter().find(|(name, _)| name == rule))
            .map_or(self.limits.request_timeout, |(_, timeout)| *timeout)
    }

    async fn run<S: Inner>(&self, inner: S, request: Request, timeout: Duration) -> Response {
        let permit = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.queued.fetch_add(1, Ordering::AcqRel) >= self.limits.max_queued {
                    self.queued.fetch_sub(1, Ordering::AcqRel);
                    return overloaded("the origin is at capacity");
                }
                let waited = tokio::time::timeout(
                    self.limits.queue_timeout,
                    Arc::clone(&self.slots).acquire_owned(),
                )
                .await;
                self.queued.fetch_sub(1, Ordering::AcqRel);
                match waited {
                    Ok(Ok(permit)) => permit,
                    _ => return overloaded("no capacity freed up in time"),
                }
            }
        };
        let response = tokio::time::timeout(timeout, service::call(inner, request)).await;
        drop(permit);
        response.unwrap_or_else(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorCode::Timeout,
                format!("no response within {} ms", timeout.as_millis()),
            )
            .into_response()
        })
    }
}

/// `503` with `Retry-After: 1`.
fn overloaded(why: &str) -> Response {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServiceUnavailable,
        why,
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The application behind admission.
#[derive(Debug, Clone)]
pub struct Admitted<S> {
    inner: S,
    admission: Arc<Admission>,
    timeout: Duration,
}

impl<S> Admitted<S> {
    /// `inner`, admitted by `admission`.
    pub fn new(inner: S, admission: Arc<Admission>, timeout: Duration) -> Self {
        Self {
            inner,
            admission,
            timeout,
        }
    }
}

impl<S: Inner> Service<Request> for Admitted<S> {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let (inner, admission) = (self.inner.clone(), Arc::clone(&self.admission));
        let timeout = self.timeout;
        Box::pin(async move { Ok(admission.run(inner, request, timeout).await) })
    }
}
