//! The request to the origin, and the origin's answer made safe to use.
//!
//! The URL is always an origin's (`ORIGIN_URL`, one or several: see [`crate::origins`]) scheme
//! and authority with the request's path and query: a
//! request target that looks like another authority (`//host/`, `/\host`, an absolute-form
//! target) stays a path on the configured origin, so the edge never fetches from a host it was
//! not configured for. Hop-by-hop headers, and those the `Connection` header names, are dropped
//! both ways; the origin learns the client address (`CF-Connecting-IP`, `X-Forwarded-For`), the
//! public host (`X-Forwarded-Host`), the request id, the edge span's `traceparent` (see
//! [`crate::trace`]) and the shared secret proving the request came through the edge. Bodies are asked for unencoded (`Accept-Encoding: identity`). Redirects are
//! passed on, never followed. Every fetch, body included, is bounded by the request's
//! [`Deadline`] (`ORIGIN_TIMEOUT_MS`) and aborted when it runs out.
//!
//! An answer the runtime cannot relay (a status outside 200–599, such as an interim 1xx or a
//! 999) is an [`OriginError::InvalidResponse`], answered 502 like an unreachable origin.

use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use worker::wasm_bindgen::JsValue;
use worker::{web_sys, AbortController, Date, Delay, Fetch, Headers, Request, Response, Result};

use shared::security::DRAINING_HEADER;

use crate::config::{EdgeConfig, ORIGIN_AUTH_HEADER};
use crate::origins::Origins;
use crate::runtime;

/// Why the origin gave no usable response.
#[derive(Debug)]
pub enum OriginError {
    /// No response (or no complete body) within `ORIGIN_TIMEOUT_MS`.
    Timeout(Duration),
    /// The fetch failed (connection refused, reset, DNS, TLS…).
    Unreachable(worker::Error),
    /// The origin answered something that is not a valid HTTP response.
    InvalidResponse(String),
}

impl std::fmt::Display for OriginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout(limit) => write!(f, "no response within {} ms", limit.as_millis()),
            Self::Unreachable(error) => write!(f, "unreachable: {error}"),
            Self::InvalidResponse(what) => write!(f, "invalid response: {what}"),
        }
    }
}

/// The moment by which a request must have its origin answer.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at_ms: u64,
    limit: Duration,
}

impl Deadline {
    /// `limit` from now.
    pub fn after(limit: Duration) -> Self {
        Self {
            at_ms: Date::now().as_millis() + limit.as_millis() as u64,
            limit,
        }
    }

    /// Time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        Duration::from_millis(self.at_ms.saturating_sub(Date::now().as_millis()))
    }

    fn timeout(&self) -> OriginError {
        OriginError::Timeout(self.limit)
    }
}

/// RFC 9110 §7.6.1 connection-specific fields: never forwarded, in either direction (and an
/// origin's announcement that it drains, which concerns the edge alone).
const HOP_BY_HOP: &[&str] = &[
    DRAINING_HEADER,
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers the edge sets itself, and unkeyed overrides of the URL, scheme or method
/// that frameworks honour: a client could use them to make the origin answer something else
/// under this request's key.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "accept-encoding",
    ORIGIN_AUTH_HEADER,
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

/// The client's validators: replaced by the stored response's when the edge revalidates it
/// (the edge then answers the client's conditions itself).
const CLIENT_CONDITIONS: &[&str] = &["if-none-match", "if-modified-since"];

/// A stored response's validators, sent to revalidate it (RFC 9111 §4.3.1).
#[derive(Debug, Clone, Default)]
pub struct Validators {
    /// Its `ETag`.
    pub etag: Option<String>,
    /// Its `Last-Modified`.
    pub last_modified: Option<String>,
}

/// What the edge asks the origin for.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The method, as the client sent it (or `GET` for an image source).
    pub method: &'a str,
    /// Path and query.
    pub target: &'a str,
    /// For a revalidation: the client's validators are left out, and these (the stored
    /// response's, verbatim) are sent instead.
    pub fill: Option<&'a Validators>,
    /// The request id, sent as `X-Request-Id`.
    pub request_id: &'a str,
}

/// Sends `outgoing` for `request`, within `deadline`.
pub async fn to_origin(
    request: &Request,
    outgoing: &Outgoing<'_>,
    config: &EdgeConfig,
    deadline: Deadline,
) -> std::result::Result<Response, OriginError> {
    let prepared = prepare(request, outgoing, config).map_err(OriginError::Unreachable)?;
    let started = Date::now().as_millis();
    let head = outgoing.method == "HEAD";
    let outcome = send(&prepared, head, deadline, &config.origins).await;
    let waited = Date::now().as_millis().saturating_sub(started);
    config.trace(|span| span.add_origin_time(waited as f64));
    outcome
}

/// The request the origin receives, ready for [`send`] (and, for a background refresh, to
/// outlive the incoming request).
pub fn prepare(request: &Request, outgoing: &Outgoing<'_>, config: &EdgeConfig) -> Result<Request> {
    let idempotent = matches!(outgoing.method, "GET" | "HEAD");
    let url = origin_url(config.origins.pick(now_ms(), idempotent), outgoing.target);
    let headers = forwarded_headers(request, outgoing, config)?;
    let init = web_sys::RequestInit::new();
    init.set_method(outgoing.method);
    init.set_headers(&headers.0);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if !matches!(outgoing.method, "GET" | "HEAD") {
        if let Some(body) = request.inner().body() {
            init.set_body(&JsValue::from(body));
        }
    }
    web_sys::Request::new_with_str_and_init(url.as_str(), &init)
        .map(Request::from)
        .map_err(runtime::js_error)
}

/// `origin` with its path and query replaced by `target`'s: scheme, host and port always come
/// from the origin's URL, however the target is spelled.
pub fn origin_url(origin: &worker::Url, target: &str) -> worker::Url {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let mut url = origin.clone();
    // A path that does not start with '/' would be joined onto the origin's own path.
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    url.set_path(&path);
    url.set_query(query);
    url.set_fragment(None);
    url
}

/// Sends a prepared request, aborting it when `deadline` passes, and returns the origin's
/// response with mutable headers, hop-by-hop fields removed and no body where none belongs. A
/// `GET` or `HEAD` whose connection fails (refused, reset, a kept-alive connection the origin
/// closed or left unusable) goes to the next of `origins` in turn, or once more to the only
/// one on a new connection, within the same deadline; the failed origin rests a while, as
/// does one whose answer says it drains (`Rampart-Draining`).
pub async fn send(
    prepared: &Request,
    head: bool,
    deadline: Deadline,
    origins: &Origins,
) -> std::result::Result<Response, OriginError> {
    let mut outcome = attempt(prepared, deadline).await;
    let mut answered_by = prepared.url().map_err(OriginError::Unreachable)?;
    if matches!(outcome, Err(OriginError::Unreachable(_))) {
        let next = origins.after_failure(&answered_by, now_ms());
        if matches!(prepared.inner().method().as_str(), "GET" | "HEAD") {
            let target = target_of(&answered_by);
            for origin in next {
                if deadline.remaining().is_zero() {
                    break;
                }
                answered_by = origin_url(&origin, &target);
                let retry = retarget(prepared, &answered_by).map_err(OriginError::Unreachable)?;
                outcome = attempt(&retry, deadline).await;
                if !matches!(outcome, Err(OriginError::Unreachable(_))) {
                    break;
                }
                origins.after_failure(&answered_by, now_ms());
            }
        }
    }
    let response = outcome?;
    // A draining origin still answers; new requests go to the others from now on.
    if response.headers().has(DRAINING_HEADER).unwrap_or(false) {
        origins.rest(&answered_by, now_ms());
    } else {
        origins.answered(&answered_by);
    }
    sanitize(response, head)
}

/// A `GET` or `HEAD` like `prepared` (method, headers, no redirects followed) sent to `url`.
fn retarget(prepared: &Request, url: &worker::Url) -> Result<Request> {
    let init = web_sys::RequestInit::new();
    init.set_method(&prepared.inner().method());
    init.set_headers(&prepared.inner().headers());
    init.set_redirect(web_sys::RequestRedirect::Manual);
    web_sys::Request::new_with_str_and_init(url.as_str(), &init)
        .map(Request::from)
        .map_err(runtime::js_error)
}

/// The path and query of `url`.
fn target_of(url: &worker::Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// One fetch of `prepared`, aborted when `deadline` passes.
async fn attempt(
    prepared: &Request,
    deadline: Deadline,
) -> std::result::Result<Response, OriginError> {
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(prepared.clone().map_err(OriginError::Unreachable)?);
    let response = Box::pin(fetch.send_with_signal(&signal));
    let outcome = match select(response, Delay::from(deadline.remaining())).await {
        Either::Left((result, _)) => result.map_err(OriginError::Unreachable),
        Either::Right(((), _)) => Err(deadline.timeout()),
    };
    if matches!(outcome, Err(OriginError::Timeout(_))) {
        controller.abort();
    }
    outcome
}

/// The origin's response as the edge relays it.
fn sanitize(response: Response, head: bool) -> std::result::Result<Response, OriginError> {
    let status = response.status_code();
    if !runtime::valid_status(status) {
        return Err(OriginError::InvalidResponse(format!("status {status}")));
    }
    let headers = without_hop_by_hop(response.headers()).map_err(OriginError::Unreachable)?;
    let (_, body) = response.into_parts();
    let body = if head || runtime::null_body_status(status) {
        worker::ResponseBody::Empty
    } else {
        body
    };
    Response::from_body(body)
        .map(|r| r.with_status(status).with_headers(headers))
        .map_err(OriginError::Unreachable)
}

/// A copy of `headers` without hop-by-hop fields and those that `Connection` names.
pub fn without_hop_by_hop(headers: &Headers) -> Result<Headers> {
    let named: Vec<String> = headers
        .get("connection")?
        .map(|value| {
            value
                .split(',')
                .map(|name| name.trim().to_ascii_lowercase())
                .filter(|name| !name.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let out = Headers::new();
    for (name, value) in headers.entries() {
        if !HOP_BY_HOP.contains(&name.as_str()) && !named.contains(&name) {
            out.append(&name, &value)?;
        }
    }
    Ok(out)
}

/// Reads a body of at most `limit` bytes before `deadline`. `Ok(None)` when it is larger (the
/// response then streams on, rebuilt from what was read and the rest); a body cut short, reset
/// or too slow is an error, so that it is never stored.
pub async fn read_body(
    response: Response,
    limit: usize,
    deadline: Deadline,
) -> std::result::Result<std::result::Result<(Response, Vec<u8>), Response>, OriginError> {
    let status = response.status_code();
    let headers = response.headers().clone();
    let (_, body) = response.into_parts();
    let stream = match body {
        worker::ResponseBody::Empty => return Ok(Ok((empty(status, headers)?, Vec::new()))),
        worker::ResponseBody::Body(bytes) => return Ok(Ok((empty(status, headers)?, bytes))),
        worker::ResponseBody::Stream(stream) => stream,
    };
    let mut chunks = Response::from_body(worker::ResponseBody::Stream(stream))
        .and_then(|mut holder| holder.stream())
        .map_err(OriginError::Unreachable)?;
    let mut read: Vec<u8> = Vec::new();
    loop {
        let next = Box::pin(chunks.next());
        let chunk = match select(next, Delay::from(deadline.remaining())).await {
            Either::Left((chunk, _)) => chunk,
            Either::Right(((), _)) => return Err(deadline.timeout()),
        };
        match chunk {
            None => return Ok(Ok((empty(status, headers)?, read))),
            Some(Err(error)) => return Err(OriginError::Unreachable(error)),
            Some(Ok(mut bytes)) => read.append(&mut bytes),
        }
        if read.len() > limit {
            let rest =
                futures_util::stream::iter([Ok::<Vec<u8>, worker::Error>(read)]).chain(chunks);
            let streaming = Response::from_stream(rest)
                .map_err(OriginError::Unreachable)?
                .with_status(status)
                .with_headers(headers);
            return Ok(Err(streaming));
        }
    }
}

/// A response with no body yet, carrying `status` and `headers`.
fn empty(status: u16, headers: Headers) -> std::result::Result<Response, OriginError> {
    Response::empty()
        .map(|r| r.with_status(status).with_headers(headers))
        .map_err(OriginError::Unreachable)
}

fn forwarded_headers(
    request: &Request,
    outgoing: &Outgoing<'_>,
    config: &EdgeConfig,
) -> Result<Headers> {
    let incoming = request.headers();
    let headers = without_hop_by_hop(incoming)?;
    for name in NOT_FORWARDED {
        headers.delete(name)?;
    }
    if let Some(validators) = outgoing.fill {
        for name in CLIENT_CONDITIONS {
            headers.delete(name)?;
        }
        if let Some(etag) = &validators.etag {
            headers.set("if-none-match", etag)?;
        }
        if let Some(modified) = &validators.last_modified {
            headers.set("if-modified-since", modified)?;
        }
    }
    let url = request.url()?;
    let host = crate::url_parts::authority(&url).unwrap_or_default();
    headers.set("x-forwarded-host", &host)?;
    headers.set("x-forwarded-proto", url.scheme())?;
    headers.set("accept-encoding", "identity")?;
    // On Cloudflare, CF-Connecting-IP is set by the network and cannot be spoofed by clients.
    if let Some(client) = incoming.get("cf-connecting-ip")? {
        let chain = match incoming.get("x-forwarded-for")? {
            Some(previous) => format!("{previous}, {client}"),
            None => client.clone(),
        };
        headers.set("x-forwarded-for", &chain)?;
    }
    headers.set("x-request-id", outgoing.request_id)?;
    if let Some(token) = &config.origin_auth_token {
        headers.set(ORIGIN_AUTH_HEADER, token)?;
    }
    if let Some(span) = &config.span {
        headers.set("traceparent", &span.traceparent())?;
        if span.parent_id.is_none() {
            // A new trace: the caller's vendor state belongs to a trace it is not part of.
            headers.delete("tracestate")?;
        }
    }
    Ok(headers)
}

/// The request's id: the client's `X-Request-Id` when it is a sane token, else the runtime's
/// `CF-Ray`, else a random 128-bit hex id.
pub fn request_id(request: &Request) -> String {
    let sane = |value: &String| {
        !value.is_empty()
            && value.len() <= 128
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    };
    let headers = request.headers();
    if let Some(id) = headers.get("x-request-id").ok().flatten().filter(sane) {
        return id;
    }
    if let Some(ray) = headers.get("cf-ray").ok().flatten().filter(sane) {
        return ray;
    }
    random_id()
}

/// A random 128-bit id in hex.
pub fn random_id() -> String {
    (0..4)
        .map(|_| {
            format!(
                "{:08x}",
                (worker::js_sys::Math::random() * f64::from(u32::MAX)) as u32
            )
        })
        .collect()
}
