//! Service plumbing shared by the core's layers: what a wrapped service must be, and how to
//! call one.

use std::convert::Infallible;

use axum::extract::Request;
use axum::response::Response;
use tower::{Service, ServiceExt};

/// A service answering requests as an axum `Router` does: the application behind the cache, or
/// the whole stack the listener serves.
pub trait Inner:
    Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> Inner for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Runs `request` on `inner`.
pub async fn call<S: Inner>(inner: S, request: Request) -> Response {
    match inner.oneshot(request).await {
        Ok(response) => response,
        Err(infallible) => match infallible {},
    }
}
