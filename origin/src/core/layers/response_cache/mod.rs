//! Caches whole responses of any route the shared policy marks cacheable, through
//! [`TieredCache`], so repeated reads skip the handler (and its database) entirely.
//!
//! Called by the [`crate::core::layers::pipeline`] with the policy's [`RouteCaching`] for
//! cacheable requests. Only `GET` and `HEAD` are served from the cache. An application's
//! response is stored when it is a `200` with a known length under the body limit, without
//! `Set-Cookie`, `private` or `no-store`; an upstream's (shield mode) when its own headers allow
//! it (RFC 9111). Anything else is passed through unchanged (streamed responses keep streaming).
//! Every cached response leaves with an `ETag`, `Age`, and `Cache-Status` under the cache's name,
//! answered as the request asks ([`answer`]: `304`, `206`, `416`). An entry the compression
//! layer would compress is compressed here instead, once per coding.
//!
//! | where | what |
//! | --- | --- |
//! | [`load`] | loading: the request replayed, a stale copy validated, the response buffered |
//! | [`variants`] | responses that vary: a marker under the URL's key, one key per variant |
//! | [`stored`] | the stored form of a response |
//! | [`answer`] | the answer to one request from a stored response |

mod answer;
mod load;
mod stored;
mod variants;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

use crate::core::cache::{CacheOptions, Cached, ForceRefresh, Outcome, TieredCache};
use crate::core::http::header_values::asks_websocket;
use crate::core::layers::policy_headers::RouteCaching;
use crate::core::service::{call, Inner};
use answer::{respond, revalidated_status, Asked, CACHE_STATUS};
use load::{copy, Handover, Load};
pub use stored::Stamped;
use stored::Value;

/// The layer's state.
#[derive(Debug, Clone)]
pub struct ResponseCache {
    /// The cache.
    pub cache: TieredCache,
    /// Bodies larger than this are passed through, never buffered.
    pub max_body: usize,
    /// How long the origin keeps entries, where it differs from the policy.
    pub tuning: Arc<CacheTuning>,
    /// The cache's name in `Cache-Status` (`rampart-origin`, or `rampart-shield`).
    pub name: &'static str,
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
            keep: Duration::ZERO,
            stale_if_unreachable: false,
            tags: caching.tags.clone(),
        }
    }
}

/// The most keys one request looks under: the URL's, its variant's, and a variant's again when
/// the upstream changed the fields it varies on.
const MAX_HOPS: usize = 3;

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
        stamp: impl Fn(StatusCode, &mut HeaderMap) + Send + Sync + 'static,
    ) -> Response {
        if !self.tuning.enabled || !cacheable(&request, caching) {
            return call(inner, request).await;
        }
        let asked = Asked::of(request.method(), request.headers());
        let forced = request.extensions().get::<ForceRefresh>().is_some();
        let (parts, body) = request.into_parts();
        // Shared with the loader, which copies it only when it runs (never on a hit).
        let parts = Arc::new(parts);
        let load = Load {
            parts: Arc::clone(&parts),
            inner: inner.clone(),
            stamp: Arc::new(stamp),
            max_body: self.max_body,
            from_response: caching.from_response,
            cache: self.cache.clone(),
            handover: Arc::default(),
        };
        let options = self.tuning.options(caching);
        match self
            .find(&caching.key, &options, &load, &asked, forced)
            .await
        {
            Some(response) => response,
            // Callers that waited for a response that streamed run the route themselves.
            None => call(inner, original(parts, body)).await,
        }
    }

    /// The answer from the cache under `primary` (the URL's key) or the key of the variant the
    /// request selects, loading what is missing; `None` when the request must be handed on as
    /// it is.
    async fn find<S: Inner>(
        &self,
        primary: &str,
        options: &CacheOptions,
        load: &Load<S>,
        asked: &Asked,
        forced: bool,
    ) -> Option<Response> {
        let (mut key, mut variants) = (primary.to_owned(), None);
        for _ in 0..MAX_HOPS {
            // A part of what is not held is asked for as it is: a large body is not fetched
            // whole for a part of it.
            if asked.wants_range() && !Box::pin(self.cache.holds(&key)).await {
                return None;
            }
            let loader = load.loader(&key, variants.clone());
            let result = match forced {
                true => self.cache.load_now(&key, options.clone(), loader).await,
                false => {
                    self.cache
                        .get_with_refresh(&key, options.clone(), loader)
                        .await
                }
            };
            // Set by this request's own load, with what it handed over (never on a hit).
            let (primary_value, variant_value, mark) = {
                let mut handover = lock(&load.handover);
                let mark = handover.mark.unwrap_or_default();
                (handover.primary.take(), handover.variant.take(), mark)
            };
            if let Some(value) = primary_value {
                // Boxed, as every step a hit never takes: a hit's future stays small.
                Box::pin(self.cache.put_since(primary, options.clone(), value, mark)).await;
            }
            let Ok(mut cached) = result else {
                return lock(&load.handover).streamed.take();
            };
            let value = cached.decoded(stored::decode)?;
            let marker = match value.as_ref() {
                Value::Response(stored) if shared_unfresh(&cached, stored) => return None,
                Value::Response(stored) => {
                    return Some(self.answer(stored, &cached, asked, load));
                }
                Value::Variants(marker) => marker.clone(),
            };
            key = marker.key_for(primary, &load.parts.headers);
            variants = Some(marker);
            if let Some(value) = variant_value {
                // This request loaded its variant: stored under the key the marker names.
                cached = Box::pin(self.cache.put_since(&key, options.clone(), value, mark)).await;
                if let Value::Response(stored) = cached.decoded(stored::decode)?.as_ref() {
                    return Some(self.answer(stored, &cached, asked, load));
                }
            }
        }
        None
    }

    /// The answer to a request that asked `asked` from `stored`, with the cause of the error
    /// this request loaded, if any, for its log line.
    fn answer<S>(
        &self,
        stored: &stored::Stored,
        cached: &Cached,
        asked: &Asked,
        load: &Load<S>,
    ) -> Response {
        let mut response = respond(stored, (self.name, cached.outcome), cached.age, asked);
        if matches!(
            cached.outcome,
            Outcome::Miss { .. } | Outcome::StaleOnError | Outcome::StaleUnreachable
        ) {
            let mut handover = lock(&load.handover);
            if let Some(cause) = handover.cause.take() {
                response.extensions_mut().insert(cause);
            }
            // This request's own load found its stale copy unchanged (RFC 9211 §2.2, §2.4).
            if let Outcome::Miss {
                collapsed: false,
                stored,
            } = cached.outcome
            {
                if let Some(value) = handover
                    .revalidated
                    .then(|| revalidated_status(self.name, stored))
                    .flatten()
                {
                    response.headers_mut().insert(CACHE_STATUS, value);
                }
                if let Some(upstream) = handover.upstream_status.take() {
                    after_upstream(upstream, response.headers_mut());
                }
            }
        }
        response
    }
}

/// Whether the cache may answer `request` at all: a `GET` or `HEAD` without preconditions
/// (`If-Match`, `If-Unmodified-Since`: the application decides those), and, in front of an
/// upstream, not a WebSocket upgrade.
fn cacheable(request: &Request, caching: &RouteCaching) -> bool {
    let headers = request.headers();
    let preconditions =
        headers.contains_key(header::IF_MATCH) || headers.contains_key(header::IF_UNMODIFIED_SINCE);
    let upgrade = caching.from_response && asks_websocket(request.method(), headers);
    matches!(*request.method(), Method::GET | Method::HEAD) && !(preconditions || upgrade)
}

/// Whether a response another request loaded is not for this one to take: it may not be
/// reused without validation (never fresh, or stored for an `Authorization` request with
/// `must-revalidate`), so this request goes upstream itself, as Varnish wakes its waiting list.
/// A server error is shared: sending every waiter to a failing upstream would only add load.
fn shared_unfresh(cached: &Cached, stored: &stored::Stored) -> bool {
    matches!(
        cached.outcome,
        Outcome::Miss {
            collapsed: true,
            ..
        }
    ) && !cached.is_fresh()
        && !stored.status.is_server_error()
}

fn lock(handover: &Mutex<Handover>) -> std::sync::MutexGuard<'_, Handover> {
    handover.lock().unwrap_or_else(|p| p.into_inner())
}

/// The request again, from its shared head.
fn original(parts: Arc<Parts>, body: Body) -> Request {
    match Arc::try_unwrap(parts) {
        Ok(parts) => Request::from_parts(parts, body),
        Err(parts) => copy(&parts, body),
    }
}

/// Puts an upstream cache's `Cache-Status` members before this cache's own in `headers`, as
/// RFC 9211 §2 asks of a cache that adds its member to a response it was handed.
fn after_upstream(upstream: HeaderValue, headers: &mut HeaderMap) {
    let value = match headers.get(CACHE_STATUS) {
        Some(ours) => [upstream.as_bytes(), b", ", ours.as_bytes()].concat(),
        None => upstream.as_bytes().to_vec(),
    };
    if let Ok(value) = HeaderValue::from_bytes(&value) {
        headers.insert(CACHE_STATUS, value);
    }
}
