//! Caches whole responses of any route the shared policy marks cacheable, through
//! [`TieredCache`], so repeated reads skip the handler (and its database) entirely.
//!
//! Runs inside the policy layer, which leaves a [`RouteCaching`] on cacheable requests. Only `GET`
//! and `HEAD` are served from the cache. A response is stored when it is a `200` with a known
//! length under the body limit, without `Set-Cookie`, `private` or `no-store`; anything else is
//! passed through unchanged (streamed responses keep streaming). Every cached response leaves
//! with a strong `ETag`, `Age`, and `Cache-Status: rampart-origin; …`; a matching
//! `If-None-Match` gets `304`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{to_bytes, Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shared::cache_control::CacheControl;
use shared::cache_status::{CacheStatus, ForwardReason, ORIGIN};
use shared::validators::{if_none_match_matches, EntityTag};

use super::cache::{CacheOptions, Loaded, Outcome, TieredCache};
use super::policy_headers::RouteCaching;

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
            tags: caching.tags.clone(),
        }
    }
}

/// A response as stored: a length-prefixed JSON head (status, headers), then the raw body.
#[derive(Debug, Serialize, Deserialize)]
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

fn encode(head: &Head, body: &[u8]) -> Option<Bytes> {
    let head = serde_json::to_vec(head).ok()?;
    let mut out = Vec::with_capacity(4 + head.len() + body.len());
    out.extend_from_slice(&u32::try_from(head.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(body);
    Some(Bytes::from(out))
}

fn decode(value: &Bytes) -> Option<(Head, Bytes)> {
    let length = u32::from_be_bytes(value.get(..4)?.try_into().ok()?) as usize;
    let head = serde_json::from_slice(value.get(4..4 + length)?).ok()?;
    Some((head, value.slice(4 + length..)))
}

/// Middleware: serves cacheable reads through the cache.
pub async fn serve(State(state): State<ResponseCache>, request: Request, next: Next) -> Response {
    let caching = request.extensions().get::<RouteCaching>().cloned();
    let (Some(caching), true) = (
        caching,
        state.tuning.enabled && matches!(*request.method(), Method::GET | Method::HEAD),
    ) else {
        return next.run(request).await;
    };
    let if_none_match = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_head = request.method() == Method::HEAD;
    let (parts, body) = request.into_parts();
    let mut load_request = Request::new(Body::empty());
    *load_request.method_mut() = Method::GET;
    *load_request.uri_mut() = parts.uri.clone();
    *load_request.headers_mut() = parts.headers.clone();
    *load_request.extensions_mut() = parts.extensions.clone();

    // A streamed (uncacheable) response reaches the caller that started the load through here.
    let passthrough: Arc<Mutex<Option<Response>>> = Arc::default();
    let slot = Arc::clone(&passthrough);
    let loader_next = next.clone();
    let max_body = state.max_body;
    let options = state.tuning.options(&caching);
    let result = state
        .cache
        .get_with_refresh(&caching.key, options, move || async move {
            let response = loader_next.run(load_request).await;
            match capture(response, max_body).await {
                Ok(loaded) => Ok(loaded),
                Err(response) => {
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(response);
                    Err("response streamed: not cacheable")
                }
            }
        })
        .await;
    let cached = match result {
        Ok(cached) => cached,
        Err(_) => {
            let taken = passthrough.lock().unwrap_or_else(|p| p.into_inner()).take();
            // The starting caller gets the streamed response; callers that waited run the route.
            return match taken {
                Some(response) => response,
                None => next.run(Request::from_parts(parts, body)).await,
            };
        }
    };
    let Some((head, stored_body)) = decode(&cached.value) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    respond(
        head,
        stored_body,
        cached.outcome,
        cached.age,
        if_none_match.as_deref(),
        is_head,
    )
}

/// Buffers a response into a cache value, or hands it back when it must stream.
async fn capture(response: Response, max_body: usize) -> Result<Loaded, Response> {
    // A body of known size (the header is only added when hyper writes the response).
    let length = HttpBody::size_hint(response.body())
        .exact()
        .and_then(|length| usize::try_from(length).ok());
    if length.is_none_or(|length| length > max_body) {
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
    let store = parts.status == StatusCode::OK
        && !cc.no_store
        && cc.private.is_none()
        && !parts.headers.contains_key(header::SET_COOKIE);
    let mut headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(name, _)| !UNSTORED.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    if !parts.headers.contains_key(header::ETAG) {
        headers.push(("etag".to_owned(), EntityTag::from_bytes(&body).to_string()));
    }
    let head = Head {
        status: parts.status.as_u16(),
        headers,
    };
    let value =
        encode(&head, &body).ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
    Ok(Loaded { value, store })
}

fn respond(
    head: Head,
    body: Bytes,
    outcome: Outcome,
    age: Duration,
    if_none_match: Option<&str>,
    is_head: bool,
) -> Response {
    let status = match outcome {
        Outcome::Hit { remaining } => CacheStatus::hit(ORIGIN).with_ttl(remaining.as_secs() as i64),
        Outcome::Stale => CacheStatus::forward(ORIGIN, ForwardReason::Stale),
        Outcome::Miss { collapsed, stored } => CacheStatus::forward(ORIGIN, ForwardReason::Miss)
            .stored(stored)
            .collapsed(collapsed),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &head.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    let etag = headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(EntityTag::parse);
    if let Ok(value) = HeaderValue::from_str(&status.to_string()) {
        headers.insert(HeaderName::from_static("cache-status"), value);
    }
    headers.insert(header::AGE, HeaderValue::from(age.as_secs()));
    let code = StatusCode::from_u16(head.status).unwrap_or(StatusCode::OK);
    if code == StatusCode::OK
        && if_none_match.is_some_and(|inm| if_none_match_matches(inm, etag.as_ref()))
    {
        headers.remove(header::CONTENT_TYPE);
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let body = if is_head {
        Body::empty()
    } else {
        Body::from(body)
    };
    (code, headers, body).into_response()
}
