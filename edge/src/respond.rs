//! Response headers and error bodies.
//!
//! Responses that come from `fetch()` or the Cache API have immutable JS headers, so every
//! outgoing response is rebuilt around a fresh header set first ([`rebuild`]).

use shared::cache_status::CacheStatus;
use shared::error_body::{ErrorBody, ErrorCode};
use shared::policy::RoutePolicy;
use worker::{Headers, Response, Result};

/// The security headers a route's responses leave with.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// The policy's set, overrides applied.
    headers: Vec<(String, String)>,
    /// Names whose policy value replaces the origin's.
    enforced: Vec<String>,
}

impl Security {
    /// The set for a route (the defaults when no rule matched).
    pub fn of(route: Option<&RoutePolicy>) -> Self {
        match route {
            Some(route) => Self {
                headers: shared::security::headers(&route.security_headers),
                enforced: route.enforced_security_headers.clone(),
            },
            None => Self {
                headers: shared::security::headers(&Default::default()),
                enforced: Vec::new(),
            },
        }
    }
}

/// A mutable copy of `response` (same status and body, copied headers).
pub fn rebuild(response: Response) -> Result<Response> {
    // One call into the runtime (`new Headers(headers)`), not three per header.
    let headers = response.headers().clone();
    let status = response.status_code();
    let (_, body) = response.into_parts();
    Ok(Response::from_body(body)?
        .with_status(status)
        .with_headers(headers))
}

/// Stamps the outgoing headers: `Cache-Status` appended after the origin's own members (RFC 9211
/// lists caches from the origin outwards, so the edge's member comes last), the security headers
/// the origin did not set itself (and the enforced ones), and implementation details removed.
pub fn finish(
    mut response: Response,
    status: &CacheStatus,
    security: &Security,
) -> Result<Response> {
    let headers = response.headers_mut();
    let members = match headers.get("cache-status")? {
        Some(upstream) if !upstream.is_empty() => format!("{upstream}, {status}"),
        _ => status.to_string(),
    };
    headers.set("cache-status", &members)?;
    let present = |name: &str| headers.has(name).unwrap_or(false);
    let missing: Vec<&(String, String)> =
        shared::security::to_apply(&security.headers, &security.enforced, present).collect();
    for (name, value) in missing {
        headers.set(name, value)?;
    }
    for name in shared::security::REMOVED {
        headers.delete(name)?;
    }
    Ok(response)
}

/// `response` carrying the request's id, `id`, as `X-Request-Id` (never a stored response's:
/// that names the request that filled the cache). The id is a courtesy: a response whose
/// headers the runtime will not change goes out as it is rather than as an error.
pub fn identify(mut response: Response, id: &str) -> Result<Response> {
    if let Err(error) = response.headers_mut().set("x-request-id", id) {
        worker::console_error!("rampart-edge: request {id}: X-Request-Id not set: {error}");
    }
    Ok(response)
}

/// A JSON error body (the shared [`ErrorBody`], as the origin sends), never cached.
pub fn error(status: u16, code: ErrorCode, message: &str) -> Result<Response> {
    let body = ErrorBody::new(status, code, message);
    let mut response = Response::from_json(&body)?.with_status(status);
    response.headers_mut().set("cache-control", "no-store")?;
    Ok(response)
}

/// The answer when the origin gave nothing usable and no stale copy may stand in: `504
/// ORIGIN_TIMEOUT` or `502 ORIGIN_UNREACHABLE`, as JSON, or as a small HTML page for browsers
/// (whose `Accept` names `text/html`).
pub fn origin_failure(timed_out: bool, wants_html: bool) -> Result<Response> {
    let (status, code, message) = if timed_out {
        (
            504,
            ErrorCode::OriginTimeout,
            "the origin did not answer in time",
        )
    } else {
        (
            502,
            ErrorCode::OriginUnreachable,
            "the origin could not be reached",
        )
    };
    if !wants_html {
        return error(status, code, message);
    }
    let title = if timed_out {
        "Gateway Timeout"
    } else {
        "Bad Gateway"
    };
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{status} {title}</title>\
         </head><body><h1>{title}</h1><p>The site is unavailable: {message}. Please try again \
         in a moment.</p><p><small>{code}</small></p></body></html>\n"
    );
    let mut response = Response::from_html(page)?.with_status(status);
    response.headers_mut().set("cache-control", "no-store")?;
    Ok(response)
}

/// Adds `Accept` to `Vary`: the URL answers in another format to clients that name AVIF or WebP.
pub fn vary_on_accept(mut response: Response) -> Result<Response> {
    add_vary(response.headers_mut(), "Accept")?;
    Ok(response)
}

/// Lists `name` in `Vary`, unless it (or `*`) is there already.
pub fn add_vary(headers: &Headers, name: &str) -> Result<()> {
    let vary = headers.get("vary")?.unwrap_or_default();
    let listed = vary
        .split(',')
        .any(|listed| listed.trim().eq_ignore_ascii_case(name) || listed.trim() == "*");
    if !listed {
        let value = if vary.trim().is_empty() {
            name.to_owned()
        } else {
            format!("{vary}, {name}")
        };
        headers.set("vary", &value)?;
    }
    Ok(())
}

/// Headers for a body the edge changed (minified, compressed): its bytes differ from the
/// origin's, so a strong `ETag` becomes weak and the origin's `Content-Length` goes.
pub fn body_changed(headers: &Headers) -> Result<()> {
    headers.delete("content-length")?;
    if let Some(etag) = headers.get("etag")? {
        if !etag.starts_with("W/") {
            headers.set("etag", &format!("W/{etag}"))?;
        }
    }
    Ok(())
}

/// Whether the origin's `Cache-Control` forbids intermediaries to transform the content
/// (RFC 9110 §7.7).
pub fn no_transform(headers: &Headers) -> Result<bool> {
    Ok(headers.get("cache-control")?.is_some_and(|value| {
        value
            .split(',')
            .any(|directive| directive.trim().eq_ignore_ascii_case("no-transform"))
    }))
}
