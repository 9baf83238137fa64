//! Route identity: which route template answered a request, carried on its response so that
//! layers outside the router (and cached copies of the response) can label it.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// The route template that answered a request, carried on its response so that layers outside
/// the router (and cached copies of the response) can label it.
#[derive(Debug, Clone)]
pub struct RouteTemplate(pub Arc<str>);

/// Per-route middleware: puts the matched route template on the response.
pub async fn tag_route(request: Request, next: Next) -> Response {
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| RouteTemplate(Arc::from(path.as_str())));
    let mut response = next.run(request).await;
    if let Some(template) = template {
        response.extensions_mut().insert(template);
    }
    response
}
