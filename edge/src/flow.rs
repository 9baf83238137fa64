//! The request flow: decide, look up, forward, store, respond.

use std::sync::OnceLock;

use shared::cache_status::{CacheStatus, ForwardReason, EDGE};
use shared::freshness::FreshnessState;
use shared::key::CacheKey;
use shared::policy::{BypassReason, Policy, RequestFacts};
use shared::security::SecurityOverrides;
use shared::validators::{Conditions, EntityTag};
use worker::{Cache, Context, Env, Request, Response, Result};

use crate::config::EdgeConfig;
use crate::{coalesce, forward, images, minify, purge, respond, revalidate, store, url_parts};

/// Responses up to this size are buffered, stored before answering, and answered from the same
/// bytes; larger ones are streamed to the client while a copy is stored in the background.
const INLINE_STORE_LIMIT: usize = 4 << 20;

/// The policy, parsed once per isolate.
static POLICY: OnceLock<Policy> = OnceLock::new();

/// Handles one request.
pub async fn handle(request: Request, env: &Env, ctx: &Context) -> Result<Response> {
    let config = EdgeConfig::from_env(env)?;
    let url = request.url()?;
    let Some(host) = url_parts::authority(&url) else {
        return respond::error(400, "BAD_REQUEST", "the request has no host");
    };
    let target = url_parts::target(&url);
    let method = request.method().to_string();
    let policy = POLICY.get_or_init(Policy::default);
    if url.path() == purge::PATH {
        let status = CacheStatus::forward(EDGE, ForwardReason::Bypass).with_detail("purge");
        let response = purge::handle(request, &config, policy).await?;
        return respond::finish(response, &status, &SecurityOverrides::default());
    }
    let Ok(key) = CacheKey::new(&method, &host, &target, policy.keys()) else {
        return respond::error(
            400,
            "BAD_REQUEST",
            "the request target cannot be cached or forwarded",
        );
    };
    let cookie = request.headers().get("cookie")?;
    let decision = policy.decide(&RequestFacts {
        method: &method,
        path: key.path(),
        has_authorization: request.headers().has("authorization")?,
        cookie: cookie.as_deref(),
    });
    let security = decision
        .policy()
        .map(|p| p.security_headers.clone())
        .unwrap_or_default();

    // Transformed images are public and keyed by URL alone, so a session cookie or an
    // Authorization header does not bypass them (the page that embeds them may be personal).
    let reads = matches!(request.method(), worker::Method::Get | worker::Method::Head);
    if reads && key.path().starts_with(shared::image::PREFIX) {
        let public = policy.decide(&RequestFacts {
            method: &method,
            path: key.path(),
            ..RequestFacts::default()
        });
        return images::handle(&request, &key, &public, &config, &security).await;
    }
    let image_route = decision.policy().is_some_and(|route| route.image_transform);
    if reads && image_route && decision.bypass.is_none() {
        if let Some(format) = images::preferred_format(&request) {
            return images::handle_original(&request, &key, format, &decision, &config, &security)
                .await;
        }
        let response = cached(&request, &key, &config, ctx, &security, false).await?;
        return respond::vary_on_accept(response);
    }
    if let Some(reason) = decision.bypass {
        let forward_reason = match reason {
            BypassReason::Method => ForwardReason::Method,
            _ => ForwardReason::Bypass,
        };
        let status = CacheStatus::forward(EDGE, forward_reason).with_detail(reason.as_str());
        return pass(&request, &target, &config, &status, &security).await;
    }
    let compress = decision.policy().is_some_and(|route| route.compress);
    cached(&request, &key, &config, ctx, &security, compress).await
}

/// Forwards a request that caches must not handle.
async fn pass(
    request: &Request,
    target: &str,
    config: &EdgeConfig,
    status: &CacheStatus,
    security: &SecurityOverrides,
) -> Result<Response> {
    match forward::to_origin(request, target, config).await {
        Ok(response) => respond::finish(respond::rebuild(response)?, status, security),
        Err(error) => origin_failed(request, &error, status, security),
    }
}

/// The cacheable path: a fresh hit; a stale copy served at once while it is refreshed in the
/// background; or forward, store, and fall back on a stale copy when the origin fails.
/// `compress` (the route's policy) minifies HTML and stores text as a brotli copy.
async fn cached(
    request: &Request,
    key: &CacheKey,
    config: &EdgeConfig,
    ctx: &Context,
    security: &SecurityOverrides,
    compress: bool,
) -> Result<Response> {
    let cache = Cache::default();
    let cache_url = key.cache_url();
    let shown_key = config.expose_cache_key.then(|| key.to_string());
    let mut fallback = None;
    let reason = match store::lookup(&cache, &cache_url, request).await? {
        Some(stored) => match stored.state {
            FreshnessState::Fresh { remaining } => {
                let mut status = CacheStatus::hit(EDGE).with_ttl(i64::from(remaining));
                status.key = shown_key;
                return serve_hit(request, stored, status, security);
            }
            FreshnessState::Stale {
                stale_for,
                serve_while_revalidating: true,
                ..
            } => {
                // Only a GET refreshes: a HEAD's answer has no body to store.
                if request.method() == worker::Method::Get {
                    let outgoing = forward::prepare(request, &key.target(), config)?;
                    let refresh = revalidate::Refresh {
                        cache_url,
                        timeout: config.origin_timeout,
                        compress,
                    };
                    revalidate::spawn(ctx, outgoing, refresh);
                }
                let mut status = CacheStatus::hit(EDGE)
                    .with_ttl(-i64::from(stale_for))
                    .with_detail("stale-while-revalidate");
                status.key = shown_key;
                return serve_hit(request, stored, status, security);
            }
            FreshnessState::Stale { serve_if_error, .. } => {
                fallback = serve_if_error.then_some(stored);
                ForwardReason::Stale
            }
        },
        None => ForwardReason::UriMiss,
    };
    // Held to the end: the key's followers go on once this request has stored its response.
    let _leader = match coalesce::lead(&cache_url) {
        Some(leader) => Some(leader),
        None => {
            coalesce::wait(&cache_url, config.origin_timeout).await;
            if let Some(stored) = store::lookup(&cache, &cache_url, request).await? {
                if let FreshnessState::Fresh { remaining } = stored.state {
                    let mut status = CacheStatus::forward(EDGE, reason)
                        .collapsed(true)
                        .with_ttl(i64::from(remaining));
                    status.key = shown_key;
                    return serve_hit(request, stored, status, security);
                }
            }
            // The leader's response was not stored: this request fetches for itself.
            None
        }
    };
    let request_time = store::now();
    let response = match forward::to_origin(request, &key.target(), config).await {
        Ok(response) if response.status_code() >= 500 && fallback.is_some() => {
            let code = response.status_code();
            return serve_stale_on_error(request, fallback, Some(code), security);
        }
        Ok(response) => response,
        Err(error) => {
            if fallback.is_some() {
                worker::console_error!("rampart-edge: origin failed, serving stale: {error}");
                return serve_stale_on_error(request, fallback, None, security);
            }
            let status = CacheStatus::forward(EDGE, reason);
            return origin_failed(request, &error, &status, security);
        }
    };
    let response_time = store::now();
    let owned = store::OwnedFacts::of(&response)?;
    let method = request.method().to_string();
    let has_authorization = request.headers().has("authorization")?;
    let mut status = CacheStatus::forward(EDGE, reason).with_fwd_status(response.status_code());
    status.key = shown_key;
    // A HEAD response has no body: it shares the GET key, so it is never what gets stored.
    let admitted = (method == "GET")
        .then(|| store::admit(&method, has_authorization, &owned.facts(), response_time).ok())
        .flatten();
    let Some(retention) = admitted else {
        return respond::finish(respond::rebuild(response)?, &status, security);
    };
    let length = response
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<usize>().ok());
    let times = (request_time, response_time);
    let mut response = respond::rebuild(response)?;
    if length.is_some_and(|length| length <= INLINE_STORE_LIMIT) {
        let code = response.status_code();
        let mut body = response.bytes().await?;
        if compress && code == 200 {
            body = minified(response.headers_mut(), body)?;
        }
        let stored = store::put(
            &cache,
            &cache_url,
            code,
            response.headers(),
            body.clone(),
            retention,
            times,
            compress,
        )
        .await;
        if let Err(error) = &stored {
            // A cache that cannot store must not fail the request: serve what the origin sent.
            worker::console_error!("rampart-edge: cache put failed: {error}");
        }
        let answer = Response::from_bytes(body)?
            .with_status(code)
            .with_headers(response.headers().clone());
        return respond::finish(answer, &status.stored(stored.is_ok()), security);
    }
    let mut copy = response.cloned()?;
    let headers = copy.headers().clone();
    let code = copy.status_code();
    ctx.wait_until(async move {
        if let Ok(body) = copy.bytes().await {
            if let Err(error) = store::put(
                &Cache::default(),
                &cache_url,
                code,
                &headers,
                body,
                retention,
                times,
                compress,
            )
            .await
            {
                worker::console_error!("rampart-edge: cache put failed: {error}");
            }
        }
    });
    respond::finish(response, &status.stored(true), security)
}

/// Answers from a fresh stored copy, with `304 Not Modified` when the client's validators match.
fn serve_hit(
    request: &Request,
    stored: store::Stored,
    status: CacheStatus,
    security: &SecurityOverrides,
) -> Result<Response> {
    let mut response = stored.response;
    response.headers_mut().set("age", &stored.age.to_string())?;
    let headers = request.headers();
    let (if_none_match, if_modified_since) = (
        headers.get("if-none-match")?,
        headers.get("if-modified-since")?,
    );
    let conditions = Conditions {
        if_none_match: if_none_match.as_deref(),
        if_modified_since: if_modified_since.as_deref(),
    };
    let etag = response
        .headers()
        .get("etag")?
        .as_deref()
        .and_then(EntityTag::parse);
    let last_modified = response.headers().get("last-modified")?;
    if conditions.not_modified(etag.as_ref(), last_modified.as_deref()) {
        let not_modified = Response::empty()?
            .with_status(304)
            .with_headers(response.headers().clone());
        for name in ["content-length", "content-type", "content-encoding"] {
            not_modified.headers().delete(name)?;
        }
        return respond::finish(not_modified, &status, security);
    }
    if request.method() == worker::Method::Head {
        let head = Response::empty()?
            .with_status(response.status_code())
            .with_headers(response.headers().clone());
        return respond::finish(head, &status, security);
    }
    respond::finish(response, &status, security)
}

/// An HTML body minified once, before it is stored; other bodies, and any the origin marked
/// `no-transform`, unchanged. The bytes differ from the origin's, so a strong `ETag` becomes
/// weak and the length is recomputed.
fn minified(headers: &mut worker::Headers, body: Vec<u8>) -> Result<Vec<u8>> {
    let html = headers
        .get("content-type")?
        .is_some_and(|t| t.starts_with("text/html"));
    if !html || headers.has("content-encoding")? || respond::no_transform(headers)? {
        return Ok(body);
    }
    let text = match String::from_utf8(body) {
        Ok(text) => text,
        Err(not_utf8) => return Ok(not_utf8.into_bytes()),
    };
    let smaller = minify::html(&text);
    if smaller.len() >= text.len() {
        return Ok(text.into_bytes());
    }
    respond::body_changed(headers)?;
    Ok(smaller.into_bytes())
}

/// Serves the stale copy kept for stale-if-error, naming the failure in `Cache-Status`.
fn serve_stale_on_error(
    request: &Request,
    fallback: Option<store::Stored>,
    origin_status: Option<u16>,
    security: &SecurityOverrides,
) -> Result<Response> {
    let Some(stored) = fallback else {
        return respond::origin_failure(false, wants_html(request));
    };
    let mut status = CacheStatus::forward(EDGE, ForwardReason::Stale).with_detail("stale-if-error");
    if let Some(code) = origin_status {
        status = status.with_fwd_status(code);
    }
    serve_hit(request, stored, status, security)
}

fn origin_failed(
    request: &Request,
    error: &forward::OriginError,
    status: &CacheStatus,
    security: &SecurityOverrides,
) -> Result<Response> {
    worker::console_error!("rampart-edge: origin fetch failed: {error}");
    let timed_out = matches!(error, forward::OriginError::Timeout(_));
    let response = respond::origin_failure(timed_out, wants_html(request))?;
    let detail = if timed_out {
        "origin-timeout"
    } else {
        "origin-unreachable"
    };
    respond::finish(response, &status.clone().with_detail(detail), security)
}

/// Whether the client is a browser asking for a page (its `Accept` names `text/html`).
fn wants_html(request: &Request) -> bool {
    request
        .headers()
        .get("accept")
        .ok()
        .flatten()
        .is_some_and(|accept| accept.contains("text/html"))
}
