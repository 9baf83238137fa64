//! The request flow: decide, look up, forward, store, respond.
//!
//! | step | function |
//! | --- | --- |
//! | route the request: purge, images, writes, bypasses, the cache | [`handle`] |
//! | writes: forward, then invalidate what they changed (RFC 9111 §4.4) | [`write`] |
//! | reads: a stored response reused as the request's directives allow (§4) | [`cached`] |
//! | misses and validations: one origin fetch per key, 304s freshen (§4.3) | [`fetch`] |
//! | every answer from a stored or fetched response: conditions, ranges, HEAD | [`answer`] |

use std::sync::OnceLock;

use shared::cache_status::{CacheStatus, ForwardReason, EDGE};
use shared::freshness::{RequestDirectives, Reuse};
use shared::key::CacheKey;
use shared::policy::{Policy, RequestFacts, RoutePolicy};
use shared::range::RangeAnswer;
use shared::validators::{Conditions, EntityTag};
use worker::{Cache, Context, Env, Headers, Request, Response, Result};

use crate::config::EdgeConfig;
use crate::forward::{Deadline, OriginError, Outgoing, Validators};
use crate::respond::Security;
use crate::store::{self, Stored};
use crate::{coalesce, forward, images, minify, purge, respond, revalidate, runtime, url_parts};

/// Responses up to this size are buffered, stored before answering, and answered from the same
/// bytes; larger ones are streamed to the client while a copy is stored in the background.
const INLINE_STORE_LIMIT: usize = 4 << 20;

/// The policy, parsed once per isolate.
static POLICY: OnceLock<Policy> = OnceLock::new();

/// One request and what every step needs to know about it.
struct Exchange<'a> {
    request: &'a Request,
    config: &'a EdgeConfig,
    ctx: &'a Context,
    /// The method as sent, upper-cased (unknown methods included).
    method: String,
    /// The request id, in logs and sent to the origin (made when first needed: a hit needs none).
    id: std::cell::OnceCell<String>,
    security: Security,
    /// When the origin's answer is due.
    deadline: Deadline,
}

impl Exchange<'_> {
    fn id(&self) -> &str {
        self.id.get_or_init(|| forward::request_id(self.request))
    }

    fn head(&self) -> bool {
        self.method == "HEAD"
    }

    fn header(&self, name: &str) -> Option<String> {
        self.request.headers().get(name).ok().flatten()
    }

    fn log(&self, event: &str) {
        worker::console_error!("rampart-edge: request {}: {event}", self.id());
    }
}

/// Handles one request.
pub async fn handle(request: Request, env: &Env, ctx: &Context) -> Result<Response> {
    let config = EdgeConfig::from_env(env)?;
    let url = request.url()?;
    let Some(host) = url_parts::authority(&url) else {
        return respond::error(400, "BAD_REQUEST", "the request has no host");
    };
    let target = url_parts::target(&url);
    let policy = POLICY.get_or_init(Policy::default);
    if url.path() == purge::PATH {
        let status = CacheStatus::forward(EDGE, ForwardReason::Bypass).with_detail("purge");
        let response = purge::handle(request, &config, policy).await?;
        return respond::finish(response, &status, &Security::of(None));
    }
    let method = runtime::method(&request);
    let Ok(key) = CacheKey::new(&method, &host, &target, policy.keys()) else {
        return respond::error(
            400,
            "BAD_REQUEST",
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
    let exchange = Exchange {
        request: &request,
        config: &config,
        ctx,
        id: std::cell::OnceCell::new(),
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
    let security = &exchange.security;
    if key.path().starts_with(shared::image::PREFIX) {
        let public = policy.decide(&RequestFacts {
            method: &exchange.method,
            path: key.path(),
            ..RequestFacts::default()
        });
        return images::handle(&request, &key, &public, &config, security).await;
    }
    let image_route = decision.policy().is_some_and(|route| route.image_transform);
    if image_route && decision.bypass.is_none() {
        if let Some(format) = images::preferred_format(&request) {
            return images::handle_original(&request, &key, format, &decision, &config, security)
                .await;
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

/// Forwards a request that caches must not handle, as it came.
async fn pass(exchange: &Exchange<'_>, target: &str, status: &CacheStatus) -> Result<Response> {
    let outgoing = Outgoing {
        method: &exchange.method,
        target,
        fill: None,
        request_id: exchange.id(),
    };
    let fetched = forward::to_origin(
        exchange.request,
        &outgoing,
        exchange.config,
        exchange.deadline,
    )
    .await;
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
    let outgoing = Outgoing {
        method: &exchange.method,
        target,
        fill: None,
        request_id: exchange.id(),
    };
    let fetched = forward::to_origin(
        exchange.request,
        &outgoing,
        exchange.config,
        exchange.deadline,
    )
    .await;
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
            if let Err(error) = store::invalidate(&cache, &url).await {
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

/// A stored response that must be validated before it is used.
struct Validation {
    stored: Stored,
    /// It may stand in if the origin fails (stale-if-error).
    serve_if_error: bool,
    /// Why it is not used as it is.
    reason: ForwardReason,
}

/// What a fetch fills the cache with.
struct Fill<'a> {
    key: &'a CacheKey,
    cache_url: String,
    /// Text is stored as a brotli copy.
    compress: bool,
    /// The request said `no-store`.
    no_store: bool,
    /// The request carries `Authorization`.
    authorized: bool,
    /// The route lets responses that set cookies be stored.
    store_set_cookie: bool,
    /// The key, when `Cache-Status` names it.
    shown_key: Option<String>,
}

impl Fill<'_> {
    fn status(&self, status: CacheStatus) -> CacheStatus {
        CacheStatus {
            key: self.shown_key.clone(),
            ..status
        }
    }
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
        no_store: directives.no_store,
        authorized: exchange.request.headers().has("authorization")?,
        shown_key: exchange.config.expose_cache_key.then(|| key.to_string()),
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
    answer(
        exchange,
        stored.response,
        Some(stored.age),
        fill.status(status),
    )
    .await
}

/// What is stored for the request and usable by it (§3.5: a request with Authorization reuses
/// only what was stored for one).
async fn lookup(exchange: &Exchange<'_>, cache: &Cache, fill: &Fill<'_>) -> Result<Option<Stored>> {
    let ranged = exchange.request.headers().has("range")?;
    let stored = store::lookup_as(cache, &fill.cache_url, exchange.request, ranged).await?;
    Ok(stored.filter(|stored| !fill.authorized || stored.authorized))
}

/// `504` for `only-if-cached` with nothing usable stored (§5.2.1.7).
fn only_if_cached(exchange: &Exchange<'_>) -> Result<Response> {
    let response = respond::error(
        504,
        "NOT_CACHED",
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
    };
    revalidate::spawn(exchange.ctx, prepared, refresh);
    Ok(())
}

/// The validators of a stored response, sent to revalidate it.
fn validators_of(stored: &Stored) -> Result<Validators> {
    let headers = stored.response.headers();
    Ok(Validators {
        etag: headers.get("etag")?,
        last_modified: headers.get("last-modified")?,
    })
}

/// Fetches from the origin for a miss or a validation. Concurrent GETs of one key share one
/// fetch; a `304` freshens the stored response and answers from it; a failure falls back on
/// the stored response inside its stale-if-error window.
async fn fetch(
    exchange: &Exchange<'_>,
    cache: &Cache,
    fill: &Fill<'_>,
    validating: Option<Validation>,
) -> Result<Response> {
    let reason = validating
        .as_ref()
        .map_or(ForwardReason::UriMiss, |v| v.reason);
    // Held to the end: the key's followers go on once this request has stored its response.
    let _leader = if exchange.head() {
        None
    } else {
        match coalesce::lead(&fill.cache_url) {
            Some(leader) => Some(leader),
            None => {
                coalesce::wait(&fill.cache_url, exchange.deadline.remaining()).await;
                if let Some(stored) = lookup(exchange, cache, fill).await? {
                    if let Reuse::Fresh { remaining } = stored
                        .freshness
                        .reuse(stored.age, &RequestDirectives::default())
                    {
                        let status = CacheStatus::forward(EDGE, reason)
                            .collapsed(true)
                            .with_ttl(i64::from(remaining));
                        return answer(
                            exchange,
                            stored.response,
                            Some(stored.age),
                            fill.status(status),
                        )
                        .await;
                    }
                }
                // The leader's response was not stored: this request fetches for itself.
                None
            }
        }
    };
    // A revalidation sends the stored validators; a miss forwards the client's own.
    let validators = validating
        .as_ref()
        .map(|validation| validators_of(&validation.stored))
        .transpose()?;
    let target = fill.key.target();
    let outgoing = Outgoing {
        method: &exchange.method,
        target: &target,
        fill: validators.as_ref(),
        request_id: exchange.id(),
    };
    let request_time = store::now();
    let fetched = forward::to_origin(
        exchange.request,
        &outgoing,
        exchange.config,
        exchange.deadline,
    )
    .await;
    let times = (request_time, store::now());
    let response = match fetched {
        Err(error) if stands_in(&validating, &error) => {
            exchange.log(&format!("origin failed, serving stale: {error}"));
            return stale_on_error(exchange, validating, None, fill).await;
        }
        Err(error) => {
            let status = fill.status(CacheStatus::forward(EDGE, reason));
            return origin_failed(exchange, &error, &status);
        }
        Ok(response)
            if response.status_code() >= 500
                && validating.as_ref().is_some_and(|v| v.serve_if_error) =>
        {
            let code = response.status_code();
            return stale_on_error(exchange, validating, Some(code), fill).await;
        }
        Ok(response) => response,
    };
    if let Some(validation) = validating.as_ref() {
        if response.status_code() == 304 {
            if let Some(validation) = validating {
                return freshened(exchange, cache, fill, validation, &response, times).await;
            }
        }
        if exchange.head() {
            freshen_from_head(exchange, cache, &validation.stored, &response, times).await?;
        }
    }
    let admitted = admission(exchange, fill, &response, times)?;
    let fetched = match read(exchange, response, admitted.is_some()).await {
        Ok(fetched) => fetched,
        Err(error) if stands_in(&validating, &error) => {
            exchange.log(&format!("origin body failed, serving stale: {error}"));
            return stale_on_error(exchange, validating, None, fill).await;
        }
        Err(error) => {
            let status = fill.status(CacheStatus::forward(EDGE, reason));
            return origin_failed(exchange, &error, &status);
        }
    };
    store_and_answer(exchange, cache, fill, fetched, admitted, reason, times).await
}

/// A fetched response: its head and whole body, or still streaming (too large to hold, or not
/// to be stored and of unknown length).
enum Fetched {
    Whole(Response, Vec<u8>),
    Streaming(Response),
}

/// How long a fetched response may be stored, if at all.
fn admission(
    exchange: &Exchange<'_>,
    fill: &Fill<'_>,
    response: &Response,
    times: (u64, u64),
) -> Result<Option<u32>> {
    if exchange.head() || fill.no_store {
        return Ok(None);
    }
    let owned = store::OwnedFacts::of(response)?;
    let mut facts = owned.facts();
    facts.has_set_cookie &= !fill.store_set_cookie;
    let validator = store::has_validator(response.headers())?;
    Ok(store::admit("GET", fill.authorized, &facts, times.1, validator).ok())
}

/// Reads a body of known, small length (or any body to be stored, up to the inline limit)
/// before answering, so that a body cut short or too slow is an error, never a truncated
/// answer or a stored one; others stream on.
async fn read(
    exchange: &Exchange<'_>,
    response: Response,
    storing: bool,
) -> std::result::Result<Fetched, OriginError> {
    let length = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok());
    let small = length.is_some_and(|length| length <= INLINE_STORE_LIMIT);
    let unknown = length.is_none();
    if !(small || (storing && unknown)) {
        return Ok(Fetched::Streaming(response));
    }
    Ok(
        match forward::read_body(response, INLINE_STORE_LIMIT, exchange.deadline).await? {
            Ok((head, body)) => Fetched::Whole(head, body),
            Err(streaming) => Fetched::Streaming(streaming),
        },
    )
}

/// A `304` answered a validation: the stored response is freshened with its headers (§4.3.4)
/// and answers the request.
async fn freshened(
    exchange: &Exchange<'_>,
    cache: &Cache,
    fill: &Fill<'_>,
    validation: Validation,
    not_modified: &Response,
    times: (u64, u64),
) -> Result<Response> {
    let stored_url = &validation.stored.cache_url;
    if let Err(error) = store::freshen(cache, stored_url, not_modified.headers(), times).await {
        exchange.log(&format!("freshening {stored_url} failed: {error}"));
    }
    let status = CacheStatus::forward(EDGE, validation.reason).with_fwd_status(304);
    let current = lookup(exchange, cache, fill)
        .await?
        .unwrap_or(validation.stored);
    let status = match current.state {
        shared::freshness::FreshnessState::Fresh { remaining } => {
            status.with_ttl(i64::from(remaining)).stored(true)
        }
        _ => status.stored(true),
    };
    answer(
        exchange,
        current.response,
        Some(current.age),
        fill.status(status),
    )
    .await
}

/// A `HEAD` response freshens the stored `GET` response it describes, when their validators
/// agree (§4.3.5).
async fn freshen_from_head(
    exchange: &Exchange<'_>,
    cache: &Cache,
    stored: &Stored,
    head: &Response,
    times: (u64, u64),
) -> Result<()> {
    if head.status_code() != 200 {
        return Ok(());
    }
    let (now, before) = (head.headers(), stored.response.headers());
    let same = |name: &str| -> Result<bool> { Ok(now.get(name)? == before.get(name)?) };
    let validated =
        (now.has("etag")? || now.has("last-modified")?) && same("etag")? && same("last-modified")?;
    if validated {
        if let Err(error) = store::freshen(cache, &stored.cache_url, now, times).await {
            exchange.log(&format!("freshening from HEAD failed: {error}"));
        }
    }
    Ok(())
}

/// Stores a fetched response when it may be, and answers with it.
async fn store_and_answer(
    exchange: &Exchange<'_>,
    cache: &Cache,
    fill: &Fill<'_>,
    fetched: Fetched,
    admitted: Option<u32>,
    reason: ForwardReason,
    times: (u64, u64),
) -> Result<Response> {
    let (head, mut body) = match fetched {
        Fetched::Whole(head, body) => (head, body),
        Fetched::Streaming(response) => {
            let code = response.status_code();
            let status = fill.status(CacheStatus::forward(EDGE, reason).with_fwd_status(code));
            return match admitted {
                Some(retention) => {
                    stream_and_store(exchange, fill, response, retention, times, status)
                }
                None => answer(exchange, response, None, status).await,
            };
        }
    };
    let code = head.status_code();
    let status = fill.status(CacheStatus::forward(EDGE, reason).with_fwd_status(code));
    let mut headers = head.headers().clone();
    let Some(retention) = admitted else {
        let whole = Response::from_bytes(body)?
            .with_status(code)
            .with_headers(headers);
        return answer(exchange, whole, None, status).await;
    };
    if fill.compress && code == 200 {
        body = minified(&mut headers, body)?;
    }
    let entry = store::Entry {
        status: code,
        headers: &headers,
        body: body.clone(),
        retention,
        times,
        compress: fill.compress,
        authorized: fill.authorized,
        keep_set_cookie: fill.store_set_cookie,
    };
    let stored = store::put(cache, &fill.cache_url, exchange.request.headers(), entry).await;
    if let Err(error) = &stored {
        // A cache that cannot store must not fail the request: serve what the origin sent.
        exchange.log(&format!("cache put failed: {error}"));
    }
    let whole = Response::from_bytes(body)?
        .with_status(code)
        .with_headers(headers);
    answer(exchange, whole, None, status.stored(stored.is_ok())).await
}

/// A large response: streamed to the client while a copy is stored in the background.
fn stream_and_store(
    exchange: &Exchange<'_>,
    fill: &Fill<'_>,
    mut response: Response,
    retention: u32,
    times: (u64, u64),
    status: CacheStatus,
) -> Result<Response> {
    let mut copy = response.cloned()?;
    let headers = copy.headers().clone();
    let request_headers = exchange.request.headers().clone();
    let code = copy.status_code();
    let (cache_url, compress, authorized, keep_set_cookie) = (
        fill.cache_url.clone(),
        fill.compress,
        fill.authorized,
        fill.store_set_cookie,
    );
    let id = exchange.id().to_owned();
    exchange.ctx.wait_until(async move {
        let Ok(body) = copy.bytes().await else {
            return;
        };
        let entry = store::Entry {
            status: code,
            headers: &headers,
            body,
            retention,
            times,
            compress,
            authorized,
            keep_set_cookie,
        };
        if let Err(error) = store::put(&Cache::default(), &cache_url, &request_headers, entry).await
        {
            worker::console_error!("rampart-edge: request {id}: cache put failed: {error}");
        }
    });
    respond::finish(response, &status.stored(true), &exchange.security)
}

/// Answers from a stored or fetched response as the request asks: `304` when its validators
/// match the client's conditions, `206`/`416` for a byte range of a `200`, no body for `HEAD`;
/// `age` (seconds) is sent as `Age`.
async fn answer(
    exchange: &Exchange<'_>,
    mut response: Response,
    age: Option<u64>,
    status: CacheStatus,
) -> Result<Response> {
    if let Some(age) = age {
        response.headers_mut().set("age", &age.to_string())?;
    }
    let code = response.status_code();
    if code == 200 && not_modified(exchange, response.headers())? {
        let headers = response.headers().clone();
        for name in ["content-length", "content-type", "content-encoding"] {
            headers.delete(name)?;
        }
        let not_modified = Response::empty()?.with_status(304).with_headers(headers);
        return respond::finish(not_modified, &status, &exchange.security);
    }
    if exchange.head() {
        let head = Response::empty()?
            .with_status(code)
            .with_headers(response.headers().clone());
        return respond::finish(head, &status, &exchange.security);
    }
    if code == 200 {
        if let Some(range) = exchange.header("range") {
            response = ranged(exchange, response, &range).await?;
        }
    }
    respond::finish(response, &status, &exchange.security)
}

/// Largest body a byte range is cut from (the body is read into memory).
const RANGE_LIMIT: usize = 32 << 20;

/// The part of a `200` that a `Range` asks for (RFC 9110 §14): `206` with `Content-Range`,
/// `416` when nothing overlaps, or the whole response when the range does not apply (an
/// `If-Range` that does not match, several ranges, an invalid one, an encoded body).
async fn ranged(exchange: &Exchange<'_>, mut response: Response, range: &str) -> Result<Response> {
    let headers = response.headers().clone();
    let length = headers
        .get("content-length")?
        .and_then(|v| v.parse::<usize>().ok());
    let buffered = matches!(response.body(), worker::ResponseBody::Body(_));
    if headers.has("content-encoding")? || !(buffered || length.is_some_and(|l| l <= RANGE_LIMIT)) {
        return Ok(response);
    }
    if let Some(if_range) = exchange.header("if-range") {
        if !if_range_matches(&if_range, &headers)? {
            return Ok(response);
        }
    }
    let body = response.bytes().await?;
    let total = body.len() as u64;
    let part = shared::range::answer(range, total);
    headers.set("accept-ranges", "bytes")?;
    if let Some(content_range) = part.content_range(total) {
        headers.set("content-range", &content_range)?;
    }
    headers.delete("content-length")?;
    Ok(match part {
        RangeAnswer::Full => Response::from_bytes(body)?.with_headers(headers),
        RangeAnswer::Partial { first, last } => {
            let slice = body[first as usize..=last as usize].to_vec();
            Response::from_bytes(slice)?
                .with_status(206)
                .with_headers(headers)
        }
        RangeAnswer::Unsatisfiable => Response::from_bytes(Vec::new())?
            .with_status(416)
            .with_headers(headers),
    })
}

/// Whether `If-Range` holds for a response: a strong entity tag equal to its `ETag`, or a date
/// equal to its `Last-Modified` (RFC 9110 §13.1.5).
fn if_range_matches(if_range: &str, headers: &Headers) -> Result<bool> {
    let if_range = if_range.trim();
    if let Some(wanted) = EntityTag::parse(if_range) {
        let current = headers.get("etag")?.as_deref().and_then(EntityTag::parse);
        return Ok(current.is_some_and(|current| current.strong_eq(&wanted)));
    }
    let modified = headers.get("last-modified")?;
    Ok(matches!(
        (shared::freshness::parse_http_date(if_range), modified.as_deref().and_then(shared::freshness::parse_http_date)),
        (Some(wanted), Some(modified)) if wanted == modified
    ))
}

/// Whether the client's `If-None-Match` or `If-Modified-Since` matches a response with these
/// headers (RFC 9110 §13.2.2; for `If-Modified-Since`, `Last-Modified`, else `Date`, as RFC
/// 9111 §4.3.2 has a cache do).
fn not_modified(exchange: &Exchange<'_>, headers: &Headers) -> Result<bool> {
    let (if_none_match, if_modified_since) = (
        exchange.header("if-none-match"),
        exchange.header("if-modified-since"),
    );
    if if_none_match.is_none() && if_modified_since.is_none() {
        return Ok(false);
    }
    let conditions = Conditions {
        if_none_match: if_none_match.as_deref(),
        if_modified_since: if_modified_since.as_deref(),
    };
    let etag = headers.get("etag")?.as_deref().and_then(EntityTag::parse);
    let modified = match headers.get("last-modified")? {
        Some(modified) => Some(modified),
        None => headers.get("date")?,
    };
    Ok(conditions.not_modified(etag.as_ref(), modified.as_deref()))
}

/// An HTML body minified once, before it is stored; other bodies, and any the origin marked
/// `no-transform`, unchanged. The bytes differ from the origin's, so a strong `ETag` becomes
/// weak and the length is recomputed.
fn minified(headers: &mut Headers, body: Vec<u8>) -> Result<Vec<u8>> {
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

/// Whether the stored response being validated may stand in for an origin that failed with
/// `error`: inside its stale-if-error window, or, when the origin could not be reached at all,
/// unless the response forbids serving it stale (RFC 9111 §4.2.4).
fn stands_in(validating: &Option<Validation>, error: &OriginError) -> bool {
    let disconnected = matches!(error, OriginError::Timeout(_) | OriginError::Unreachable(_));
    validating.as_ref().is_some_and(|validation| {
        validation.serve_if_error || (disconnected && !validation.stored.freshness.must_revalidate)
    })
}

/// Serves the stored response kept for stale-if-error, naming the failure in `Cache-Status`.
async fn stale_on_error(
    exchange: &Exchange<'_>,
    validating: Option<Validation>,
    origin_status: Option<u16>,
    fill: &Fill<'_>,
) -> Result<Response> {
    let Some(validation) = validating else {
        return respond::origin_failure(false, wants_html(exchange));
    };
    let detail = if validation.serve_if_error {
        "stale-if-error"
    } else {
        "origin-unreachable"
    };
    let mut status = CacheStatus::forward(EDGE, ForwardReason::Stale).with_detail(detail);
    if let Some(code) = origin_status {
        status = status.with_fwd_status(code);
    }
    // Read again: a failed fetch can take the first read's body stream down with it.
    let cache = Cache::default();
    let stored = match lookup(exchange, &cache, fill).await {
        Ok(Some(again)) => again,
        _ => validation.stored,
    };
    answer(
        exchange,
        stored.response,
        Some(stored.age),
        fill.status(status),
    )
    .await
}

/// The answer when the origin gave nothing usable and nothing stored may stand in.
fn origin_failed(
    exchange: &Exchange<'_>,
    error: &OriginError,
    status: &CacheStatus,
) -> Result<Response> {
    exchange.log(&format!("origin fetch failed: {error}"));
    let (response, detail) = match error {
        OriginError::Timeout(_) => (
            respond::origin_failure(true, wants_html(exchange))?,
            "origin-timeout",
        ),
        OriginError::Unreachable(_) => (
            respond::origin_failure(false, wants_html(exchange))?,
            "origin-unreachable",
        ),
        OriginError::InvalidResponse(_) => (
            respond::error(
                502,
                "ORIGIN_INVALID_RESPONSE",
                "the origin sent a response that is not valid HTTP",
            )?,
            "origin-invalid-response",
        ),
    };
    respond::finish(
        response,
        &status.clone().with_detail(detail),
        &exchange.security,
    )
}

/// Whether the client is a browser asking for a page (its `Accept` names `text/html`).
fn wants_html(exchange: &Exchange<'_>) -> bool {
    exchange
        .header("accept")
        .is_some_and(|accept| accept.contains("text/html"))
}
