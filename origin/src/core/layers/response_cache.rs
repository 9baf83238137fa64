//! Caches whole responses of any route the shared policy marks cacheable, through
//! [`TieredCache`], so repeated reads skip the handler (and its database) entirely.
//!
//! Called by the [`crate::core::layers::pipeline`] with the policy's [`RouteCaching`] for cacheable requests. Only `GET`
//! and `HEAD` are served from the cache. A response is stored when it is a `200` with a known
//! length under the body limit, without `Set-Cookie`, `private` or `no-store`; anything else is
//! passed through unchanged (streamed responses keep streaming). Every cached response leaves
//! with a strong `ETag`, `Age`, and `Cache-Status: rampart-origin; …`; a matching
//! `If-None-Match` gets `304`. An entry the compression layer would compress is compressed here
//! instead, once per coding, and that copy is served to every request negotiating the coding.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::{to_bytes, Body, HttpBody};

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use shared::cache_control::CacheControl;
use shared::cache_status::{CacheStatus, ForwardReason, ORIGIN};
use shared::validators::{if_none_match_matches, EntityTag};

use crate::core::service::{call, Inner};

use crate::core::cache::{CacheOptions, ForceRefresh, Loaded, Outcome, TieredCache};
use crate::core::http::errors::ErrorCause;
use crate::core::http::header_values::decimal;
use crate::core::layers::compression::{self, Coding};
use crate::core::layers::policy_headers::RouteCaching;
use crate::core::layers::response_freshness::{judge, SurrogateControl};
use crate::core::route::RouteTemplate;

/// Response headers never stored with a cached response.
const UNSTORED: &[&str] = &[
    "set-cookie",
    "date",
    "content-length",
    "cache-status",
    "age",
    "transfer-encoding",
];

/// The layer's state.
#[derive(Debug, Clone)]
pub struct ResponseCache {
    /// The cache.
    pub cache: TieredCache,
    /// Bodies larger than this are passed through, never buffered.
    pub max_body: usize,
    /// How long the origin keeps entries, where it differs from the policy.
    pub tuning: Arc<CacheTuning>,
}

/// The origin's own cache lifetimes, where operators want them to differ from what the policy
/// tells the edge and browsers.
#[derive(Debug, Clone)]
pub struct CacheTuning {
    /// `false` serves every request from its handler.
    pub enabled: bool,
    /// Freshness for every cacheable route.
    pub ttl: Option<Duration>,
    /// Freshness per policy rule name, before `ttl`.
    pub rule_ttls: Vec<(String, Duration)>,
    /// The stale-while-revalidate window for every route.
    pub stale_while_revalidate: Option<Duration>,
}

impl Default for CacheTuning {
    /// Enabled, with the policy's lifetimes.
    fn default() -> Self {
        Self {
            enabled: true,
            ttl: None,
            rule_ttls: Vec::new(),
            stale_while_revalidate: None,
        }
    }
}

impl CacheTuning {
    /// The cache options for a request the policy described as `caching`.
    fn options(&self, caching: &RouteCaching) -> CacheOptions {
        let rule_ttl = self
            .rule_ttls
            .iter()
            .find(|(rule, _)| *rule == caching.rule)
            .map(|(_, ttl)| *ttl);
        CacheOptions {
            ttl: rule_ttl.or(self.ttl).unwrap_or(caching.ttl),
            stale_while_revalidate: self
                .stale_while_revalidate
                .unwrap_or(caching.stale_while_revalidate),
            stale_if_error: caching.stale_if_error,
            tags: caching.tags.clone(),
        }
    }
}

/// The first byte of a stored response, naming its layout.
const FORMAT: u8 = 3;

/// A stored response: the format byte, the status (2 bytes), the length of the head (4 bytes),
/// the head as `name: value\r\n` lines, then the body. Decoding slices the stored bytes
/// without copying them, so a hit costs no allocation per header.
fn encode(
    status: StatusCode,
    route: Option<&RouteTemplate>,
    headers: &[(&HeaderName, &HeaderValue)],
    body: &[u8],
) -> Bytes {
    let mut head = Vec::with_capacity(headers.len() * 48);
    // The route template, as a pseudo-header no real header name can collide with.
    if let Some(route) = route {
        head.extend_from_slice(ROUTE_LINE);
        head.extend_from_slice(route.0.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    let mut out = Vec::with_capacity(7 + head.len() + body.len());
    out.push(FORMAT);
    out.extend_from_slice(&status.as_u16().to_be_bytes());
    out.extend_from_slice(&u32::try_from(head.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(body);
    Bytes::from(out)
}

/// The head line carrying the route template.
const ROUTE_LINE: &[u8] = b":route: ";

/// Marks a response whose headers the policy already stamped.
#[derive(Debug, Clone, Copy)]
pub struct Stamped;

/// A stored response, decoded.
struct Stored {
    status: StatusCode,
    route: Option<RouteTemplate>,
    headers: HeaderMap,
    body: Bytes,
    /// Whether the compression layer would compress the body.
    compressible: bool,
    /// The body in each [`Coding`], made when first asked for (`None`: the encoder failed, or
    /// its output was no smaller than the body, which then goes as it is).
    encoded: [OnceLock<Option<Bytes>>; 2],
}

impl Stored {
    /// The body in `coding`, compressed on the first request for it.
    fn encoded(&self, coding: Coding) -> Option<&Bytes> {
        let slot = &self.encoded[coding as usize];
        slot.get_or_init(|| {
            coding
                .encode(&self.body)
                .filter(|encoded| encoded.len() < self.body.len())
        })
        .as_ref()
    }
}

fn decode(value: &Bytes) -> Option<Stored> {
    // Decoded once per cache entry (see `Cached::decoded`), so plainness beats speed here.
    if value.first() != Some(&FORMAT) {
        return None;
    }
    let status =
        StatusCode::from_u16(u16::from_be_bytes(value.get(1..3)?.try_into().ok()?)).ok()?;
    let length = u32::from_be_bytes(value.get(3..7)?.try_into().ok()?) as usize;
    let head = value.slice(7..7usize.checked_add(length)?.min(value.len()));
    let body = value.slice(7 + head.len()..);
    let mut headers = HeaderMap::with_capacity(16);
    let mut route = None;
    let mut rest = &head[..];
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let line = &rest[..end];
        if let Some(template) = line.strip_prefix(ROUTE_LINE) {
            let template = std::str::from_utf8(template).ok()?;
            route = Some(RouteTemplate(Arc::from(template)));
            rest = &rest[end + 2..];
            continue;
        }
        let colon = line.iter().position(|b| *b == b':')?;
        let name = HeaderName::from_bytes(&line[..colon]).ok()?;
        let start = head.len() - rest.len() + colon + 2;
        let value = head.slice(start..start + (end - colon - 2));
        headers.append(name, HeaderValue::from_maybe_shared(value).ok()?);
        rest = &rest[end + 2..];
    }
    Some(Stored {
        status,
        route,
        compressible: compression::compressible(&headers, &body),
        headers,
        body,
        encoded: Default::default(),
    })
}

/// A copy of a request's head with an empty body, for a loader that may outlive the request.
fn replay(parts: &Parts) -> Request {
    let mut request = Request::new(Body::empty());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    *request.extensions_mut() = parts.extensions.clone();
    request
}

impl ResponseCache {
    /// Answers `request`, which the policy described as `caching`, through the cache: from it
    /// when it holds the response, else from `inner` (one load per key at a time), storing
    /// what may be stored. Methods other than `GET` and `HEAD` go straight to `inner`.
    ///
    /// `stamp` finishes the headers of a loaded response before it is stored, so that a hit
    /// leaves as stored; responses from here carry the [`Stamped`] extension.
    pub async fn serve<S: Inner>(
        &self,
        request: Request,
        caching: &RouteCaching,
        inner: S,
        stamp: impl FnOnce(&mut HeaderMap) + Send + 'static,
    ) -> Response {
        if !self.tuning.enabled || !matches!(*request.method(), Method::GET | Method::HEAD) {
            return call(inner, request).await;
        }
        let if_none_match = request
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let is_head = request.method() == Method::HEAD;
        let forced = request.extensions().get::<ForceRefresh>().is_some();
        let coding = compression::negotiate(request.headers().get_all(header::ACCEPT_ENCODING));
        let (parts, body) = request.into_parts();
        // Shared with the loader, which copies it only when it runs (never on a hit).
        let parts = Arc::new(parts);
        let loader_parts = Arc::clone(&parts);

        // What the loader hands the caller that started the load, beside the cache value.
        let passthrough: Arc<Mutex<Handover>> = Arc::default();
        let slot = Arc::clone(&passthrough);
        let loader_inner = inner.clone();
        let max_body = self.max_body;
        let options = self.tuning.options(caching);
        let from_response = caching.from_response;
        let loader = move || async move {
            let mut response = call(loader_inner, replay(&loader_parts)).await;
            stamp(response.headers_mut());
            response.extensions_mut().insert(Stamped);
            let cause = response.extensions_mut().remove::<ErrorCause>();
            let loaded = capture(response, max_body, from_response).await;
            let mut handover = slot.lock().unwrap_or_else(|p| p.into_inner());
            handover.cause = cause;
            loaded.map_err(|response| {
                handover.streamed = Some(response);
                "response streamed: not cacheable"
            })
        };
        let result = match forced {
            true => self.cache.load_now(&caching.key, options, loader).await,
            false => {
                self.cache
                    .get_with_refresh(&caching.key, options, loader)
                    .await
            }
        };
        let cached = match result {
            Ok(cached) => cached,
            Err(_) => {
                let taken = passthrough
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .streamed
                    .take();
                // The starting caller gets the streamed response; callers that waited run the
                // route themselves.
                return match taken {
                    Some(response) => response,
                    None => call(inner, original(parts, body)).await,
                };
            }
        };
        let Some(stored) = cached.decoded(decode) else {
            return call(inner, original(parts, body)).await;
        };
        let loaded_here = matches!(cached.outcome, Outcome::Miss { .. } | Outcome::StaleOnError);
        let mut response = respond(
            stored,
            cached.outcome,
            cached.age,
            if_none_match.as_deref(),
            (!is_head).then_some(coding),
        );
        if loaded_here {
            let cause = passthrough
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .cause
                .take();
            if let Some(cause) = cause {
                response.extensions_mut().insert(cause);
            }
        }
        response
    }
}

/// What a load hands the caller that started it, beside the cache value: the response itself
/// when it streams (it cannot be cached), and the cause of an error response, for its log line.
#[derive(Debug, Default)]
struct Handover {
    streamed: Option<Response>,
    cause: Option<ErrorCause>,
}

/// The request again, from its shared head.
fn original(parts: Arc<Parts>, body: Body) -> Request {
    match Arc::try_unwrap(parts) {
        Ok(parts) => Request::from_parts(parts, body),
        Err(parts) => replay(&parts),
    }
}

/// Buffers a response into a cache value, or hands it back when it must stream. With
/// `from_response`, the response's own headers say whether and how long it is kept.
async fn capture(
    response: Response,
    max_body: usize,
    from_response: bool,
) -> Result<Loaded, Response> {
    // A body of known size (the header is only added when hyper writes the response).
    let length = HttpBody::size_hint(response.body())
        .exact()
        .and_then(|length| usize::try_from(length).ok());
    if length.is_none_or(|length| length > max_body) {
        return Err(response);
    }
    // A response that says it may not be kept streams on unread (a server error is read, so
    // that a stale copy may stand in for it).
    let verdict = from_response.then(|| {
        let surrogate = response.extensions().get::<SurrogateControl>();
        judge(
            response.status(),
            response.headers(),
            surrogate.map(|s| s.0.as_str()),
        )
    });
    if verdict
        .as_ref()
        .is_some_and(|v| !v.store && !response.status().is_server_error())
    {
        return Err(response);
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = to_bytes(body, max_body).await else {
        return Err(StatusCode::BAD_GATEWAY.into_response());
    };
    let directives = parts
        .headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let cc = CacheControl::parse(&directives);
    let mut store = parts.status == StatusCode::OK
        && !cc.no_store
        && cc.private.is_none()
        && !parts.headers.contains_key(header::SET_COOKIE);
    let (mut options, mut age) = (None, Duration::ZERO);
    if let Some(verdict) = verdict {
        (store, options, age) = (verdict.store, Some(verdict.options), verdict.age);
    }
    // A server error (the database down, a breaker open, a timeout) gives way to a stale copy.
    let failed = parts.status.is_server_error();
    let etag = (!parts.headers.contains_key(header::ETAG))
        .then(|| HeaderValue::from_str(&EntityTag::from_bytes(&body).to_string()).ok())
        .flatten();
    let mut headers: Vec<(&HeaderName, &HeaderValue)> = parts
        .headers
        .iter()
        .filter(|(name, _)| !UNSTORED.contains(&name.as_str()))
        .collect();
    if let Some(etag) = &etag {
        headers.push((&header::ETAG, etag));
    }
    let route = parts.extensions.get::<RouteTemplate>();
    let value = encode(parts.status, route, &headers, &body);
    Ok(Loaded {
        value,
        store,
        failed,
        options,
        age,
    })
}

fn respond(
    stored: Arc<Stored>,
    outcome: Outcome,
    age: Duration,
    if_none_match: Option<&str>,
    // `None` for HEAD (no body), else the coding the request negotiated (`Some(None)`: none).
    body_coding: Option<Option<Coding>>,
) -> Response {
    let status = match outcome {
        // The hottest path: written without the general formatter.
        Outcome::Hit { remaining } => Some(hit_status(remaining.as_secs())),
        Outcome::Stale => general_status(CacheStatus::forward(ORIGIN, ForwardReason::Stale)),
        Outcome::StaleOnError => general_status(
            CacheStatus::forward(ORIGIN, ForwardReason::Stale).with_detail("stale-if-error"),
        ),
        Outcome::Miss { collapsed, stored } => general_status(
            CacheStatus::forward(ORIGIN, ForwardReason::Miss)
                .stored(stored)
                .collapsed(collapsed),
        ),
    };
    let code = stored.status;
    let route = stored.route.clone();
    let mut headers = stored.headers.clone();
    if let Some(value) = status {
        headers.insert(HeaderName::from_static("cache-status"), value);
    }
    headers.insert(header::AGE, decimal(age.as_secs()));
    if code == StatusCode::OK {
        if let Some(inm) = if_none_match {
            let etag = headers
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .and_then(EntityTag::parse);
            if if_none_match_matches(inm, etag.as_ref()) {
                headers.remove(header::CONTENT_TYPE);
                let mut response = with_head(StatusCode::NOT_MODIFIED, headers, Body::empty());
                response.extensions_mut().insert(Stamped);
                if let Some(route) = route {
                    response.extensions_mut().insert(route);
                }
                return response;
            }
        }
    }
    let body = match body_coding {
        None => Body::empty(),
        Some(coding) if stored.compressible => Body::from(in_coding(&stored, coding, &mut headers)),
        Some(_) => Body::from(stored.body.clone()),
    };
    let mut response = with_head(code, headers, body);
    response.extensions_mut().insert(Stamped);
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

/// The body of a compressible entry in `coding` (as it is when `None` or when the encoder
/// failed), with the headers the compression layer would have written.
fn in_coding(stored: &Stored, coding: Option<Coding>, headers: &mut HeaderMap) -> Bytes {
    let varies = headers.get_all(header::VARY).iter().any(|value| {
        let value = value.as_bytes();
        value
            .windows(b"accept-encoding".len())
            .any(|name| name.eq_ignore_ascii_case(b"accept-encoding"))
    });
    if !varies {
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    let Some((coding, body)) = coding.and_then(|c| Some((c, stored.encoded(c)?))) else {
        return stored.body.clone();
    };
    headers.remove(header::ACCEPT_RANGES);
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(header::CONTENT_ENCODING, coding.token());
    compression::weaken_etag(headers);
    body.clone()
}

fn general_status(status: CacheStatus) -> Option<HeaderValue> {
    HeaderValue::from_str(&status.to_string()).ok()
}

/// `Cache-Status: rampart-origin; hit; ttl=N`.
fn hit_status(ttl: u64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    let text = [HIT_PREFIX, digits.format(ttl).as_bytes()].concat();
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text))
        .expect("a token and digits are a valid header value")
}

/// What a hit's `Cache-Status` starts with (the TTL follows).
const HIT_PREFIX: &[u8] = b"rampart-origin; hit; ttl=";

/// A response with `status` and `headers` as they are (axum's tuple conversions would insert
/// each header again).
fn with_head(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_says_what_the_general_formatter_says() {
        for ttl in [0, 7, 299, 31_536_000] {
            let general = CacheStatus::hit(ORIGIN).with_ttl(ttl as i64).to_string();
            assert_eq!(hit_status(ttl).as_bytes(), general.as_bytes());
        }
    }
}
