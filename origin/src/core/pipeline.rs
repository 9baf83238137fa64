//! The origin core's request pipeline: one tower service around the application that, for
//! every request, decides the shared policy, answers cacheable reads from the response cache
//! (before any routing), stamps the policy's headers and records the request's metrics.
//!
//! The steps run in one future per request rather than as stacked middleware: a cache hit is
//! the origin's hottest path, and each middleware layer costs it a boxed future and a clone of
//! the service below.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;
use futures::future::BoxFuture;
use tower::{Layer, Service};

use super::metrics::Metrics;
use super::policy_headers::PolicyHeaders;
use super::response_cache::{self, Inner, ResponseCache, Stamped};

/// What the pipeline shares between requests.
#[derive(Debug)]
pub struct Stages {
    /// The policy's decisions and headers.
    pub policy: PolicyHeaders,
    /// The response cache.
    pub cache: ResponseCache,
    /// Request counts and latencies.
    pub metrics: Metrics,
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
        Box::pin(async move { Ok(handle(stages, request, inner).await) })
    }
}

async fn handle<S: Inner>(stages: Arc<Stages>, request: Request, inner: S) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let mut prepared = stages.policy.prepare(&request);
    let mut response = match prepared.caching.take() {
        Some(caching) => {
            let (finish, with) = (Arc::clone(&stages), prepared.clone());
            let stamp = move |headers: &mut HeaderMap| finish.policy.stamp(with, headers);
            stages.cache.serve(request, &caching, inner, stamp).await
        }
        None => response_cache::call(inner, request).await,
    };
    if response.extensions().get::<Stamped>().is_none() {
        stages.policy.stamp(prepared, response.headers_mut());
    }
    let elapsed = started.elapsed();
    stages.metrics.observe(&method, &response, elapsed);
    tracing::debug!(%method, status = response.status().as_u16(), ?elapsed, "request served");
    response
}
