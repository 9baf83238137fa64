//! Misses and validations: one origin fetch per key and isolate, a `304` or `HEAD` that
//! freshens the stored response (RFC 9111 §4.3.4–4.3.5), what may be stored and how (§3), and
//! the stored response standing in when the origin fails (§4.2.4, RFC 5861).

use shared::cache_status::{CacheStatus, ForwardReason, EDGE};
use shared::freshness::{RequestDirectives, Reuse};
use shared::key::CacheKey;
use worker::{Cache, Response, Result};

use crate::answer::{answer, origin_failed, wants_html};
use crate::exchange::Exchange;
use crate::forward::{self, OriginError, Validators};
use crate::server_timing::{bounded, cache_io, CACHE_IO_TIMEOUT};
use crate::store::{self, Stored};
use crate::{coalesce, prepare, respond};

/// Responses up to this size are buffered, answered, and then stored in the background from
/// the same bytes; larger ones are streamed to the client while a copy is stored in the
/// background.
const INLINE_STORE_LIMIT: usize = 4 << 20;

/// A stored response that must be validated before it is used.
pub(crate) struct Validation {
    pub(crate) stored: Stored,
    /// It may stand in if the origin fails (stale-if-error).
    pub(crate) serve_if_error: bool,
    /// Why it is not used as it is.
    pub(crate) reason: ForwardReason,
}

/// What a fetch fills the cache with.
pub(crate) struct Fill<'a> {
    pub(crate) key: &'a CacheKey,
    pub(crate) cache_url: String,
    /// The route lets the edge minify and compress what it stores ([`crate::prepare`]).
    pub(crate) compress: bool,
    /// The request carries `Authorization`.
    pub(crate) authorized: bool,
    /// The route lets responses that set cookies be stored.
    pub(crate) store_set_cookie: bool,
    /// The request's cache directives, as the policy lets it steer the cache.
    pub(crate) directives: RequestDirectives,
    /// The key, when `Cache-Status` names it.
    pub(crate) shown_key: Option<String>,
}

impl Fill<'_> {
    pub(crate) fn status(&self, status: CacheStatus) -> CacheStatus {
        CacheStatus {
            key: self.shown_key.clone(),
            ..status
        }
    }
}

/// What is stored for the request and usable by it (§3.5: a request with Authorization reuses
/// only what was stored for one).
pub(crate) async fn lookup(
    exchange: &Exchange<'_>,
    cache: &Cache,
    fill: &Fill<'_>,
) -> Result<Option<Stored>> {
    let ranged = exchange.request.headers().has("range")?;
    let lookup = async {
        // A response just answered to another request may still be on its way into the cache.
        coalesce::settled(&fill.cache_url, CACHE_IO_TIMEOUT).await;
        store::lookup_as(cache, &fill.cache_url, exchange.request, ranged).await
    };
    let stored = cache_io(exchange.config, lookup)
        .await
        .unwrap_or_else(|error| {
            // A cache that cannot be read must not fail the request: it goes to the origin.
            exchange.log(&format!("cache lookup failed, taken as a miss: {error}"));
            None
        });
    Ok(stored.filter(|stored| !fill.authorized || stored.authorized))
}

/// The validators of a stored response, sent to revalidate it.
pub(crate) fn validators_of(stored: &Stored) -> Result<Validators> {
    let headers = stored.response.headers();
    Ok(Validators {
        etag: headers.get("etag")?,
        last_modified: headers.get("last-modified")?,
    })
}

/// Fetches from the origin for a miss or a validation. Concurrent GETs of one key share one
/// fetch; a `304` freshens the stored response and answers from it; a failure falls back on
/// the stored response inside its stale-if-error window, or, for a miss, on one a second
/// look at the cache finds.
pub(crate) async fn fetch(
    exchange: &Exchange<'_>,
    cache: &Cache,
    fill: &Fill<'_>,
    validating: Option<Validation>,
) -> Result<Response> {
    let reason = validating
        .as_ref()
        .map_or(ForwardReason::UriMiss, |v| v.reason);
    // Held to the end: the key's followers go on once this request has stored its response.
    let leader = if exchange.head() {
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
                        return answer_stored(exchange, fill, stored, status).await;
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
    let request_time = store::now();
    let fetched = exchange.forward(&target, validators.as_ref()).await;
    let times = (request_time, store::now());
    let response = match fetched {
        Err(error) if stands_in(&validating, &error) => {
            exchange.log(&format!("origin failed, serving stale: {error}"));
            return stale_on_error(exchange, validating, None, fill).await;
        }
        Err(error) if validating.is_none() => {
            return second_look(exchange, cache, fill, reason, &error).await
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
    if response.status_code() == 304 {
        if let Some(validation) = validating {
            return freshened(exchange, cache, fill, validation, &response, times).await;
        }
    } else if let (true, Some(validation)) = (exchange.head(), validating.as_ref()) {
        freshen_from_head(exchange, cache, &validation.stored, &response, times).await?;
    }
    let admitted = admission(exchange, fill, &response, times)?;
    let fetched = match read(exchange, response, admitted.is_some()).await {
        Ok(fetched) => fetched,
        Err(error) if stands_in(&validating, &error) => {
            exchange.log(&format!("origin body failed, serving stale: {error}"));
            return stale_on_error(exchange, validating, None, fill).await;
        }
        Err(error) if validating.is_none() => {
            return second_look(exchange, cache, fill, reason, &error).await
        }
        Err(error) => {
            let status = fill.status(CacheStatus::forward(EDGE, reason));
            return origin_failed(exchange, &error, &status);
        }
    };
    let received = Received {
        fetched,
        admitted,
        reason,
        times,
    };
    store_and_answer(exchange, fill, received, leader).await
}

/// Answers from a stored response, with its current age as `Age`.
pub(crate) async fn answer_stored(
    exchange: &Exchange<'_>,
    fill: &Fill<'_>,
    stored: Stored,
    status: CacheStatus,
) -> Result<Response> {
    answer(
        exchange,
        stored.response,
        Some(stored.age),
        fill.status(status),
    )
    .await
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
    if exchange.head() || fill.directives.no_store {
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
    let freshen = store::freshen(cache, stored_url, not_modified.headers(), times);
    if let Err(error) = cache_io(exchange.config, freshen).await {
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
    answer_stored(exchange, fill, current, status).await
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
        let freshen = store::freshen(cache, &stored.cache_url, now, times);
        if let Err(error) = cache_io(exchange.config, freshen).await {
            exchange.log(&format!("freshening from HEAD failed: {error}"));
        }
    }
    Ok(())
}

/// What the origin sent for a miss or a validation, and what may be done with it.
struct Received {
    fetched: Fetched,
    /// How long it may be stored, if at all.
    admitted: Option<u32>,
    /// Why it was fetched.
    reason: ForwardReason,
    /// When the request was sent and the response received.
    times: (u64, u64),
}

/// Answers with a fetched response, and stores it in the background when it may be stored.
/// `leader` (this request's hold on the key, if it has one) is let go once it is stored.
async fn store_and_answer(
    exchange: &Exchange<'_>,
    fill: &Fill<'_>,
    received: Received,
    leader: Option<coalesce::Leader>,
) -> Result<Response> {
    let Received {
        fetched,
        admitted,
        reason,
        times,
    } = received;
    let (head, body) = match fetched {
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
    let headers = head.headers().clone();
    let Some(retention) = admitted else {
        let whole = Response::from_bytes(body)?
            .with_status(code)
            .with_headers(headers);
        return answer(exchange, whole, None, status).await;
    };
    let answerable = prepare::for_answering(code, &headers, body, fill.compress)?;
    let whole = Response::from_bytes(answerable.identity().to_vec())?
        .with_status(code)
        .with_headers(headers.clone());
    let storing = Storing::new(exchange, fill, code, headers, (retention, times));
    let leader = leader.map(coalesce::Leader::storing);
    exchange.ctx.wait_until(async move {
        storing.put(answerable.finish()).await;
        drop(leader);
    });
    answer(exchange, whole, None, status.stored(true)).await
}

/// A response answered and to be stored in the background, as Cloudflare advises for
/// `cache.put` (`ctx.waitUntil`): the client does not wait for the brotli copy or the store.
/// A store that fails or times out is logged; the next request for the key fetches again.
struct Storing {
    cache_url: String,
    /// The request's headers, for the response's `Vary`.
    request_headers: worker::Headers,
    status: u16,
    headers: worker::Headers,
    retention: u32,
    times: (u64, u64),
    authorized: bool,
    keep_set_cookie: bool,
    request_id: String,
}

impl Storing {
    /// The store of a response with `status` and `headers`, kept for `retention` seconds,
    /// fetched between `times`.
    fn new(
        exchange: &Exchange<'_>,
        fill: &Fill<'_>,
        status: u16,
        headers: worker::Headers,
        (retention, times): (u32, (u64, u64)),
    ) -> Self {
        Self {
            cache_url: fill.cache_url.clone(),
            request_headers: exchange.request.headers().clone(),
            status,
            headers,
            retention,
            times,
            authorized: fill.authorized,
            keep_set_cookie: fill.store_set_cookie,
            request_id: exchange.id().to_owned(),
        }
    }

    async fn put(self, body: prepare::Prepared) {
        let entry = store::Entry {
            status: self.status,
            headers: &self.headers,
            body,
            retention: self.retention,
            times: self.times,
            authorized: self.authorized,
            keep_set_cookie: self.keep_set_cookie,
        };
        let cache = Cache::default();
        let put = store::put(&cache, &self.cache_url, &self.request_headers, entry);
        if let Err(error) = bounded(put).await {
            let id = &self.request_id;
            worker::console_error!("rampart-edge: request {id}: cache put failed: {error}");
        }
    }
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
    let code = copy.status_code();
    let storing = Storing::new(
        exchange,
        fill,
        code,
        copy.headers().clone(),
        (retention, times),
    );
    let compress = fill.compress;
    exchange.ctx.wait_until(async move {
        let Ok(body) = copy.bytes().await else {
            return;
        };
        match prepare::for_storing(code, &storing.headers, body, compress) {
            Ok(prepared) => storing.put(prepared).await,
            Err(error) => {
                let id = &storing.request_id;
                worker::console_error!("rampart-edge: request {id}: preparing failed: {error}");
            }
        }
    });
    respond::finish(response, &status.stored(true), &exchange.security)
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

/// The answer to a miss the origin failed with `error`. The cache is read once more (while
/// the request has time left): its first read may have failed, which is taken as a miss, or a
/// response been stored since. A response found is judged with the request's directives as the
/// first read would have judged it: served when usable as it is, or standing in as a
/// validated one would; else the error, as JSON or an HTML page.
async fn second_look(
    exchange: &Exchange<'_>,
    cache: &Cache,
    fill: &Fill<'_>,
    reason: ForwardReason,
    error: &OriginError,
) -> Result<Response> {
    let found = match exchange.deadline.remaining().is_zero() {
        true => None,
        false => lookup(exchange, cache, fill).await?,
    };
    let Some(stored) = found else {
        let status = fill.status(CacheStatus::forward(EDGE, reason));
        return origin_failed(exchange, error, &status);
    };
    exchange.log(&format!(
        "origin failed on a miss, found a stored copy: {error}"
    ));
    let forward = CacheStatus::forward(EDGE, reason).with_detail("found-on-origin-error");
    let ttl = match stored.freshness.reuse(stored.age, &fill.directives) {
        Reuse::Fresh { remaining } => i64::from(remaining),
        Reuse::WhileRevalidating { stale_for } | Reuse::StaleAccepted { stale_for } => {
            -i64::from(stale_for)
        }
        Reuse::Validate { serve_if_error } => {
            let validation = Some(Validation {
                stored,
                serve_if_error,
                reason,
            });
            if !stands_in(&validation, error) {
                let status = fill.status(CacheStatus::forward(EDGE, reason));
                return origin_failed(exchange, error, &status);
            }
            return stale_on_error(exchange, validation, None, fill).await;
        }
    };
    answer_stored(exchange, fill, stored, forward.with_ttl(ttl)).await
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
    answer_stored(exchange, fill, stored, status).await
}
