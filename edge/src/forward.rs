//! The request to the origin.
//!
//! Hop-by-hop headers are dropped; the origin learns the client address (`CF-Connecting-IP`,
//! `X-Forwarded-For`), the public host (`X-Forwarded-Host`), a request id and the trace context,
//! plus the shared secret proving the request came through the edge. Bodies are asked for
//! unencoded (`Accept-Encoding: identity`): the edge stores one identity copy per key and
//! leaves content negotiation with clients to itself. Redirects are passed to the client,
//! never followed. Every fetch is bounded by `ORIGIN_TIMEOUT_MS`, and aborted when it runs out.

use std::time::Duration;

use futures_util::future::{select, Either};
use worker::{
    AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect,
    Response, Result,
};

use crate::config::{EdgeConfig, ORIGIN_AUTH_HEADER};

/// Why the origin gave no response.
#[derive(Debug)]
pub enum OriginError {
    /// No response within `ORIGIN_TIMEOUT_MS`.
    Timeout(Duration),
    /// The fetch failed (connection refused, DNS, TLS…).
    Unreachable(worker::Error),
}

impl std::fmt::Display for OriginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OriginError::Timeout(limit) => write!(f, "no response within {} ms", limit.as_millis()),
            OriginError::Unreachable(error) => write!(f, "unreachable: {error}"),
        }
    }
}

/// RFC 9110 §7.6.1 connection-specific fields, headers the edge sets itself, and unkeyed
/// overrides.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "accept-encoding",
    ORIGIN_AUTH_HEADER,
    // Unkeyed overrides of the URL, scheme or method that frameworks honour: a client could use
    // them to make the origin answer something else under this request's key. The edge sets
    // its own X-Forwarded-Host and -Proto.
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-scheme",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Sends `request` to the origin at `target` (path and query).
pub async fn to_origin(
    request: &Request,
    target: &str,
    config: &EdgeConfig,
) -> std::result::Result<Response, OriginError> {
    let outgoing = prepare(request, target, config).map_err(OriginError::Unreachable)?;
    send(&outgoing, config.origin_timeout).await
}

/// Sends a prepared request, aborting it after `timeout`.
pub async fn send(
    outgoing: &Request,
    timeout: Duration,
) -> std::result::Result<Response, OriginError> {
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(outgoing.clone().map_err(OriginError::Unreachable)?);
    let response = Box::pin(fetch.send_with_signal(&signal));
    let outcome = match select(response, Delay::from(timeout)).await {
        Either::Left((result, _)) => result.map_err(OriginError::Unreachable),
        Either::Right(((), _)) => Err(OriginError::Timeout(timeout)),
    };
    if matches!(outcome, Err(OriginError::Timeout(_))) {
        controller.abort();
    }
    outcome
}

/// The request the origin receives for `request` at `target`, ready for [`send`] (and, for a
/// background refresh, to outlive the incoming request).
pub fn prepare(request: &Request, target: &str, config: &EdgeConfig) -> Result<Request> {
    prepare_as(request, request.method(), target, config)
}

/// Like [`prepare`], with another method (a transformation fetches its source with GET).
pub fn prepare_as(
    request: &Request,
    method: Method,
    target: &str,
    config: &EdgeConfig,
) -> Result<Request> {
    let url = config.origin_url.join(target)?;
    let headers = forwarded_headers(request, config)?;
    let mut init = RequestInit::new();
    init.with_method(method.clone())
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual);
    if !matches!(method, Method::Get | Method::Head) {
        init.with_body(request.inner().body().map(Into::into));
    }
    Request::new_with_init(url.as_str(), &init)
}

fn forwarded_headers(request: &Request, config: &EdgeConfig) -> Result<Headers> {
    let incoming = request.headers();
    let headers = Headers::new();
    for (name, value) in incoming.entries() {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            headers.append(&name, &value)?;
        }
    }
    let url = request.url()?;
    let host = crate::url_parts::authority(&url).unwrap_or_default();
    headers.set("x-forwarded-host", &host)?;
    headers.set("x-forwarded-proto", url.scheme())?;
    // The edge caches identity bodies and negotiates encodings with clients itself.
    headers.set("accept-encoding", "identity")?;
    // On Cloudflare, CF-Connecting-IP is set by the network and cannot be spoofed by clients.
    if let Some(client) = incoming.get("cf-connecting-ip")? {
        let chain = match incoming.get("x-forwarded-for")? {
            Some(previous) => format!("{previous}, {client}"),
            None => client.clone(),
        };
        headers.set("x-forwarded-for", &chain)?;
    }
    if incoming.get("x-request-id")?.is_none() {
        headers.set("x-request-id", &request_id())?;
    }
    if let Some(token) = &config.origin_auth_token {
        headers.set(ORIGIN_AUTH_HEADER, token)?;
    }
    Ok(headers)
}

/// A random 128-bit request id in hex.
fn request_id() -> String {
    (0..4)
        .map(|_| {
            format!(
                "{:08x}",
                (worker::js_sys::Math::random() * f64::from(u32::MAX)) as u32
            )
        })
        .collect()
}
