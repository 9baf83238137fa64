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
//!
//! [`AdmissionMetrics`] counts what admission refuses and how long requests waited; the
//! slots taken and the queue's length are read at scrape time ([`Admission::in_flight`],
//! [`Admission::queued`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::Service;

use crate::core::http::errors::{ApiError, ErrorCode};
use crate::core::observability::dependency_metrics::latency_histogram;
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

/// Labels of `admission_shed_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    reason: &'static str,
}

/// What admission counts: requests shed (queue full, or no slot within the queue timeout),
/// requests cut by the request timeout, and how long queued requests waited. Every handle is
/// made up front, so that recording is an atomic add.
#[derive(Debug, Clone)]
pub struct AdmissionMetrics {
    shed: Family<ShedLabels, Counter>,
    queue_full: Counter,
    queue_timeout: Counter,
    timeouts: Counter,
    wait: Histogram,
}

impl Default for AdmissionMetrics {
    fn default() -> Self {
        let shed = Family::<ShedLabels, Counter>::default();
        let handle = |reason| shed.get_or_create(&ShedLabels { reason }).clone();
        Self {
            queue_full: handle("queue_full"),
            queue_timeout: handle("queue_timeout"),
            shed,
            timeouts: Counter::default(),
            wait: latency_histogram(),
        }
    }
}

impl AdmissionMetrics {
    /// Registers `admission_shed_total{reason}`, `admission_timeouts_total` and
    /// `admission_queue_wait_seconds` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "admission_shed",
            "Requests refused with 503 by admission: queue_full or queue_timeout",
            self.shed.clone(),
        );
        registry.register(
            "admission_timeouts",
            "Requests answered 504: no response head within the request timeout",
            self.timeouts.clone(),
        );
        registry.register(
            "admission_queue_wait_seconds",
            "Time requests that found every slot taken waited in the queue",
            self.wait.clone(),
        );
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
    metrics: AdmissionMetrics,
}

impl Admission {
    /// Admission with `limits`.
    pub fn new(limits: AdmissionLimits) -> Self {
        Self {
            limits,
            rule_timeouts: Vec::new(),
            slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            queued: AtomicUsize::new(0),
            metrics: AdmissionMetrics::default(),
        }
    }

    /// What admission counts.
    pub fn metrics(&self) -> &AdmissionMetrics {
        &self.metrics
    }

    /// Requests holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.limits
            .max_concurrent
            .max(1)
            .saturating_sub(self.slots.available_permits())
    }

    /// Requests waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
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

    /// A slot, at once or after waiting in the queue; `Err` is the `503` of a request shed.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, Response> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(permit);
        }
        let Some(place) = QueuePlace::take(&self.queued, self.limits.max_queued) else {
            self.metrics.queue_full.inc();
            return Err(overloaded("the origin is at capacity"));
        };
        let started = Instant::now();
        let waited = tokio::time::timeout(
            self.limits.queue_timeout,
            Arc::clone(&self.slots).acquire_owned(),
        )
        .await;
        drop(place);
        self.metrics.wait.observe(started.elapsed().as_secs_f64());
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                self.metrics.queue_timeout.inc();
                Err(overloaded("no capacity freed up in time"))
            }
        }
    }

    async fn run<S: Inner>(&self, inner: S, request: Request, timeout: Duration) -> Response {
        let permit = match self.slot().await {
            Ok(permit) => permit,
            Err(shed) => return shed,
        };
        let response = tokio::time::timeout(timeout, service::call(inner, request)).await;
        drop(permit);
        response.unwrap_or_else(|_| {
            self.metrics.timeouts.inc();
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorCode::Timeout,
                format!("no response within {} ms", timeout.as_millis()),
            )
            .into_response()
        })
    }
}

/// A place in the queue, given back when dropped: also when the client goes away while the
/// request waits, and the request's future with it.
struct QueuePlace<'a>(&'a AtomicUsize);

impl<'a> QueuePlace<'a> {
    /// A place among `queued` requests, unless `max` already wait.
    fn take(queued: &'a AtomicUsize, max: usize) -> Option<Self> {
        let ahead = queued.fetch_add(1, Ordering::AcqRel);
        // Refused, the place is dropped at once, and so given back.
        let place = Self(queued);
        (ahead < max).then_some(place)
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn one_slot_one_place() -> Admission {
        Admission::new(AdmissionLimits {
            max_concurrent: 1,
            max_queued: 1,
            queue_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
        })
    }

    #[tokio::test]
    async fn a_request_given_up_while_queued_leaves_the_queue() {
        let admission = one_slot_one_place();
        let held = admission.slot().await.expect("the free slot");
        assert_eq!((admission.in_flight(), admission.queued()), (1, 0));
        let mut waiting = Box::pin(admission.slot());
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        assert_eq!(admission.queued(), 1);
        assert!(admission.slot().await.is_err(), "the queue is full");
        assert_eq!(admission.metrics.queue_full.get(), 1);
        // The client went away: its request's future is dropped while it waits.
        drop(waiting);
        assert_eq!(admission.queued(), 0, "its place is given back");
        drop(held);
        assert_eq!(admission.in_flight(), 0);
        assert!(admission.slot().await.is_ok());
    }
}
