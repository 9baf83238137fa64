//! The request flow: which path a request takes, and the reuse of stored responses.
//!
//! | step | where |
//! | --- | --- |
//! | route the request: purge, images, writes, bypasses, the cache | [`handle`] |
//! | writes: forward, then invalidate what they changed (RFC 9111 §4.4) | `write` |
//! | reads: a stored response reused as the request's directives allow (§4) | `cached` |
//! | misses and validations: one origin fetch per key, 304s freshen (§4.3) | `fill` |
//! | every answer: conditions, ranges, HEAD, the edge's own errors | `answer` |

use std::rc::Rc;
use std::sync::OnceLock;

use shared::cache_status::{CacheStatus, ForwardReason, EDGE};
use shared::error_body::ErrorCode;
use shared::freshness::{RequestDirectives, Reuse};
use shared::key::CacheKey;
use shared::policy::{Policy, RequestFacts, RoutePolicy};
use shared::request_key::request_key;
use worker::{Cache, Context, Env, Request, Response, Result};

use crate::answer::origin_failed;
use crate::config::EdgeConfig;
use crate::exchange::Exchange;
use crate::fill::{answer_stored, fetch, lookup, validators_of, Fill, Validation};
use crate::forward::{Deadline, Outgoing};
use crate::respond::Security;
use crate::server_timing::cache_io;
use crate::store::{self, Stored};
use crate::trace::Span;
use crate::{forward, images, purge, respond, revalidate, runtime, url_parts};

/// The policy, parsed once per isolate.
static POLICY: OnceLock<Policy> = OnceLock::new();

/// Handles one request, known as `id`, recording on `span`.
pub async fn handle(
    request: Request,
    id: &str,
    env: &Env,
    ctx: &Context,
    span: Rc<Span>,
) -> Result<Response> {
    let mut config = EdgeConfig::of_isolate(env)?;
    config.span = Some(span);
    let url = request.url()?;
    let Some(host) = url_parts::authority(&url) else {
        return respond::error(400, ErrorCode::BadRequest, "the request has no host");
    };
    let target = url_parts::target(&url);
    let policy = POLICY.get_or_init(Policy::default);
    if url.path() == purge::PATH {
        let status = CacheStatus::forward(EDGE, ForwardReason::Bypass).with_detail("purge");
        let response = purge::handle(request, &config, policy).await?;
        return respond::finish(response, &status, &Security::of(None));
    }
    let method = runtime::method(&request);
    let Some(key) = key_of(&request, &method, &host, &target, policy) else {
        return respond::error(
            400,
            ErrorCode::BadRequest,
            "the request target cannot be cached or forwarded",
        );
    };
    let cookie = request.headers().get("cookie")?;
    // Authorization does not bypass the edge: RFC 9111 §3.5 decides what may be stored.
    let decision = policy.decide(&RequestFacts {
        method: &method,
        path: key.path(),
        has_authorization: false,
        cookie: cookie.as_deref(),
    });
    let route = decision.rule.map(|rule| rule.pattern.to_string());
    config.trace(|span| span.record_route(route, &key.to_string()));
    if shows_timing(&request, &config, decision.policy())? {
        config.trace(Span::show_server_timing);
    }
    let exchange = Exchange {
        request: &request,
        config: &config,
        ctx,
        id,
        security: Security::of(decision.policy()),
        deadline: Deadline::after(config.origin_timeout),
        method,
    };
    let reads = matches!(exchange.method.as_str(), "GET" | "HEAD");
    if !reads {
        return write(&exchange, &key, &target).await;
    }
    // Transformed images are public and keyed by URL alone, so a session cookie or an
    // Authorization header does not bypass them (the page that embeds them may be personal).
    if key.path().starts_with(shared::image::PREFIX) {
        let public = policy.decide(&RequestFacts {
            method: &exchange.method,
            path: key.path(),
            ..RequestFacts::default()
        });
        return images::handle(&exchange, &key, &public).await;
    }
    let image_route = decision.policy().is_some_and(|route| route.image_transform);
    if image_route && decision.bypass.is_none() {
        if let Some(format) = key.image_format() {
            return images::handle_original(&exchange, &key, format, &decision).await;
        }
        let response = cached(&exchange, &key, decision.policy(), policy).await?;
        return respond::vary_on_accept(response);
    }
    if let Some(reason) = decision.bypass {
        let status = CacheStatus::forward(EDGE, ForwardReason::Bypass).with_detail(reason.as_str());
        return pass(&exchange, &target, &status).await;
    }
    cached(&exchange, &key, decision.policy(), policy).await
}

/// The request's key ([`request_key`]): its authority is the URL's (which the runtime takes from
/// `Host`); of its headers, only the keyed ones are read.
fn key_of(
    request: &Request,
    method: &str,
    host: &str,
    target: &str,
    policy: &Policy,
) -> Option<CacheKey> {
    let header = |name: &str| match name {
        "host" => Some(host.to_owned()),
        _ => request.headers().get(name).ok().flatten(),
    };
    request_key(method, target, header, policy).ok()
}

/// Whether the response may carry `Server-Timing`: the route's policy opts in, or the request
/// bears the admin token ([`crate::server_timing`]).
fn shows_timing(
    request: &Request,
    config: &EdgeConfig,
    route: Option<&RoutePolicy>,
) -> Result<bool> {
    if route.is_some_and(|route| route.server_timing) {
        return Ok(true);
    }
    let authorization = request.headers().get("authorization")?;
    Ok(config.bears_admin_token(authorization.as_deref()))
}

/// Forwards a request that caches must not handle, as it came.
async fn pass(exchange: &Exchange<'_>, target: &str, status: &CacheStatus) -> Result<Response> {
    let fetched = exchange.forward(target, None).await;
    match fetched {
        Ok(response) => respond::finish(response, status, &exchange.security),
        Err(error) => origin_failed(exchange, &error, status),
    }
}

/// A write (any method but GET and HEAD, unknown ones included): forwarded, and when it
/// succeeds, what is stored for its URL and for the same-site `Location` and
/// `Content-Location` it answers with is invalidated (RFC 9111 §4.4).
async fn write(exchange: &Exchange<'_>, key: &CacheKey, target: &str) -> Result<Response> {
    let status = CacheStatus::forward(EDGE, ForwardReason::Method);
    let fetched = exchange.forward(target, None).await;
    let response = match fetched {
        Ok(response) => response,
        Err(error) => return origin_failed(exchange, &error, &status),
    };
    if (200..400).contains(&response.status_code()) {
        let cache = Cache::default();
        let mut urls = vec![key.cache_url()];
        for name in ["location", "content-location"] {
            if let Some(url) = same_site_url(exchange, key, response.headers().get(name)?) {
                urls.push(url);
            }
        }
        for url in urls {
            let invalidated = cache_io(exchange.config, store::invalidate(&cache, &url)).await;
            if let Err(error) = invalidated {
                exchange.log(&format!("invalidating {url} failed: {error}"));
            }
        }
    }
    respond::finish(response, &status, &exchange.security)
}

/// The cache URL of `reference` (a `Location` value), when it names this site.
fn same_site_url(
    exchange: &Exchange<'_>,
    key: &CacheKey,
    reference: Option<String>,
) -> Option<String> {
    let base = exchange.request.url().ok()?;
    let url = base.join(reference?.trim()).ok()?;
    let host = url_parts::authority(&url)?;
    if !host.eq_ignore_ascii_case(&url_parts::authority(&base)?) {
        return None;
    }
    let policy = POLICY.get()?;
    let target = url_parts::target(&url);
    let other = CacheKey::new("GET", key.host(), &target, policy.keys()).ok()?;
    Some(other.cache_url())
}

/// The request's directives, when the policy lets clients steer the cache.
fn directives(exchange: &Exchange<'_>, policy: &Policy) -> RequestDirectives {
    if !policy.honours_client_directives() {
        return RequestDirectives::default();
    }
    RequestDirectives::parse(
        exchange.header("cache-control").as_deref(),
        exchange.header("pragma").as_deref(),
    )
}

/// The cacheable path: a stored response reused as its freshness and the request's directives
/// allow; else one fetch (a validation when something is stored).
async fn cached(
    exchange: &Exchange<'_>,
    key: &CacheKey,
    route: Option<&RoutePolicy>,
    policy: &Policy,
) -> Result<Response> {
    let cache = Cache::default();
    let directives = directives(exchange, policy);
    let fill = Fill {
        key,
        cache_url: key.cache_url(),
        compress: route.is_some_and(|route| route.compress),
        store_set_cookie: route.is_some_and(|route| route.store_set_cookie),
        authorized: exchange.request.headers().has("authorization")?,
        shown_key: exchange.config.expose_cache_key.then(|| key.to_string()),
        directives,
    };
    let Some(stored) = lookup(exchange, &cache, &fill).await? else {
        if directives.only_if_cached {
            return only_if_cached(exchange);
        }
        return fetch(exchange, &cache, &fill, None).await;
    };
    let status = match stored.freshness.reuse(stored.age, &directives) {
        Reuse::Fresh { remaining } => CacheStatus::hit(EDGE).with_ttl(i64::from(remaining)),
        Reuse::WhileRevalidating { stale_for } => {
            if !exchange.head() {
                refresh(exchange, &stored, &fill)?;
            }
            CacheStatus::hit(EDGE)
                .with_ttl(-i64::from(stale_for))
                .with_detail("stale-while-revalidate")
        }
        Reuse::StaleAccepted { stale_for } => CacheStatus::hit(EDGE)
            .with_ttl(-i64::from(stale_for))
            .with_detail("max-stale"),
        Reuse::Validate { .. } if directives.only_if_cached => return only_if_cached(exchange),
        Reuse::Validate { serve_if_error } => {
            let reason = if directives.no_cache || directives.max_age.is_some() {
                ForwardReason::Request
            } else {
                ForwardReason::Stale
            };
            let validation = Validation {
                stored,
                serve_if_error,
                reason,
            };
            return fetch(exchange, &cache, &fill, Some(validation)).await;
        }
    };
    answer_stored(exchange, &fill, stored, status).await
}

/// `504` for `only-if-cached` with nothing usable stored (§5.2.1.7).
fn only_if_cached(exchange: &Exchange<'_>) -> Result<Response> {
    let response = respond::error(
        504,
        ErrorCode::NotCached,
        "only-if-cached: nothing usable is stored",
    )?;
    let status = CacheStatus::forward(EDGE, ForwardReason::Request).with_detail("only-if-cached");
    respond::finish(response, &status, &exchange.security)
}

/// Starts a background refresh of a stale response (stale-while-revalidate), conditional on
/// its validators.
fn refresh(exchange: &Exchange<'_>, stored: &Stored, fill: &Fill<'_>) -> Result<()> {
    let validators = validators_of(stored)?;
    let target = fill.key.target();
    let outgoing = Outgoing {
        method: "GET",
        target: &target,
        fill: Some(&validators),
        request_id: exchange.id(),
    };
    let prepared = forward::prepare(exchange.request, &outgoing, exchange.config)?;
    let refresh = revalidate::Refresh {
        cache_url: fill.cache_url.clone(),
        stored_url: stored.cache_url.clone(),
        timeout: exchange.config.origin_timeout,
        compress: fill.compress,
        keep_set_cookie: fill.store_set_cookie,
        request_id: exchange.id().to_owned(),
        origins: exchange.config.origins.clone(),
    };
    revalidate::spawn(exchange.ctx, prepared, refresh);
    Ok(())
}
