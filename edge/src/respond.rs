//! Response headers and error bodies.
//!
//! Responses that come from `fetch()` or the Cache API have immutable JS headers, so every
//! outgoing response is rebuilt around a fresh header set first ([`rebuild`]).

use shared::cache_status::CacheStatus;
use shared::security::SecurityOverrides;
use worker::{Headers, Response, Result};

/// A mutable copy of `response` (same status and body, copied headers).
pub fn rebuild(response: Response) -> Result<Response> {
    let headers = Headers::new();
    for (name, value) in response.headers().entries() {
        headers.append(&name, &value)?;
    }
    let status = response.status_code();
    let (_, body) = response.into_parts();
    Ok(Response::from_body(body)?
        .with_status(status)
        .with_headers(headers))
}

/// Stamps the outgoing headers: `Cache-Status` appended after the origin's own members (RFC 9211
/// lists caches from the origin outwards, so the edge's member comes last), security headers,
/// and implementation details removed.
pub fn finish(
    mut response: Response,
    status: &CacheStatus,
    security: &SecurityOverrides,
) -> Result<Response> {
    let headers = response.headers_mut();
    let members = match headers.get("cache-status")? {
        Some(upstream) if !upstream.is_empty() => format!("{upstream}, {status}"),
        _ => status.to_string(),
    };
    headers.set("cache-status", &members)?;
    for (name, value) in shared::security::headers(security) {
        headers.set(&name, &value)?;
    }
    for name in shared::security::REMOVED {
        headers.delete(name)?;
    }
    Ok(response)
}

/// A JSON error in the origin's error model, never cached.
pub fn error(status: u16, code: &str, message: &str) -> Result<Response> {
    let body =
        serde_json::json!({ "error": message, "code": code, "statusCode": status, "metadata": {} });
    let mut response = Response::from_json(&body)?.with_status(status);
    response.headers_mut().set("cache-control", "no-store")?;
    Ok(response)
}
