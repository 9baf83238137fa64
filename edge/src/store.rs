//! Stored entries in the Workers Cache API, with freshness tracked by the Worker itself.
//!
//! The Cache API only stores and matches: it has no stale-while-revalidate or stale-if-error,
//! and no `Vary`. So an entry is stored with a *physical* lifetime (`Cache-Control:
//! max-age=<retention>`) long enough to cover the stale windows, while its *logical* freshness
//! is computed on every lookup by the shared crate from the origin's original headers, kept
//! beside it:
//!
//! | header on the stored copy | meaning |
//! | --- | --- |
//! | `x-rampart-cache-control` | the origin's `Cache-Control`, restored on the way out |
//! | `x-rampart-cdn-cache-control` | the origin's `CDN-Cache-Control` |
//! | `x-rampart-age` | the origin's `Age`, which counts toward the current age |
//! | `x-rampart-date` | the origin's `Date` (the Cache API sets its own) |
//! | `x-rampart-status` | the origin's status: every entry is stored as a `200`, which the Cache API takes whatever the status |
//! | `x-rampart-request-time` / `x-rampart-response-time` | Unix seconds, for RFC 9111 §4.2.3 age |
//! | `x-rampart-authorized` | stored from a request with `Authorization` (§3.5 allowed it) |
//! | `x-rampart-vary-key` | the secondary key the variant was selected by |
//! | `x-rampart-precompressed` | the body is the edge's brotli copy ([`precompress`]) |
//!
//! **Vary** (§4.1): a response with `Vary` is stored under its URL plus a digest of its
//! secondary key ([`shared::vary`]); the URL itself holds a small marker naming the fields and a
//! generation id. A lookup reads the marker, computes the request's secondary key, and reads that
//! variant; several variants live side by side. Storing a response without `Vary` replaces the
//! marker, and purging or invalidating the URL deletes it, which orphans every variant (a new
//! marker has a new generation).

use shared::freshness::{
    current_age, storability, Freshness, FreshnessState, NotStorable, ResponseFacts,
};
use worker::{Cache, Headers, Request, Response, Result};

use crate::prepare::Prepared;
use crate::{precompress, runtime};

const ORIGINAL_CACHE_CONTROL: &str = "x-rampart-cache-control";
const ORIGINAL_CDN_CACHE_CONTROL: &str = "x-rampart-cdn-cache-control";
const ORIGINAL_AGE: &str = "x-rampart-age";
const ORIGINAL_DATE: &str = "x-rampart-date";
const ORIGINAL_STATUS: &str = "x-rampart-status";
const REQUEST_TIME: &str = "x-rampart-request-time";
const RESPONSE_TIME: &str = "x-rampart-response-time";
const AUTHORIZED: &str = "x-rampart-authorized";
const VARY_KEY: &str = "x-rampart-vary-key";
/// Prefix of the stored `Set-Cookie` lines, one numbered header each (the Cache API refuses
/// responses that set cookies, and one combined value would lose their boundaries).
const SET_COOKIE_PREFIX: &str = "x-rampart-set-cookie-";
const VARY_MARKER: &str = "x-rampart-vary";
const VARY_GENERATION: &str = "x-rampart-vary-generation";
const INTERNAL: &[&str] = &[
    ORIGINAL_CACHE_CONTROL,
    ORIGINAL_CDN_CACHE_CONTROL,
    ORIGINAL_AGE,
    ORIGINAL_DATE,
    ORIGINAL_STATUS,
    "cf-cache-status",
    REQUEST_TIME,
    RESPONSE_TIME,
    AUTHORIZED,
    VARY_KEY,
    precompress::MARKER,
];

/// Fields that describe one exchange and are never stored: `Cache-Status` (every answer gets
/// the edge's member of its own), `Server-Timing` and `X-Request-Id` (a stored copy's would be
/// another request's).
const PER_EXCHANGE: &[&str] = &["cache-status", "server-timing", "x-request-id"];

/// Headers a 304 or HEAD that freshens a stored response does not replace (RFC 9111 §3.2):
/// the stored body's length, and what the edge never stores.
const NOT_UPDATED: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "set-cookie",
    "cache-status",
    "server-timing",
    "x-request-id",
];

/// How long an entry is kept past its freshness (and its stale windows): a stale copy can
/// then be revalidated with a conditional request instead of fetched whole, and served when
/// the origin cannot be reached (RFC 9111 §4.2.4 allows it to a disconnected cache, unless the
/// response forbids it).
pub const STALE_RETENTION: u32 = 86_400;

/// How long a Vary marker is kept: longer than its variants, which expire on their own.
const MARKER_RETENTION: u32 = 30 * 86_400;

/// The current time in Unix seconds.
pub fn now() -> u64 {
    worker::Date::now().as_millis() / 1000
}

/// Header values of a response, owned, for the shared crate's [`ResponseFacts`].
#[derive(Debug, Default)]
pub struct OwnedFacts {
    status: u16,
    cache_control: Option<String>,
    cdn_cache_control: Option<String>,
    expires: Option<String>,
    date: Option<String>,
    age: Option<String>,
    last_modified: Option<String>,
    vary: Option<String>,
    has_set_cookie: bool,
}

impl OwnedFacts {
    /// Reads the facts of a response as the origin sent it.
    pub fn of(response: &Response) -> Result<Self> {
        Self::of_headers(response.status_code(), response.headers())
    }

    /// Reads the facts of `status` and `headers`.
    pub fn of_headers(status: u16, headers: &Headers) -> Result<Self> {
        Ok(Self {
            status,
            cache_control: headers.get("cache-control")?,
            cdn_cache_control: headers.get("cdn-cache-control")?,
            expires: headers.get("expires")?,
            date: headers.get("date")?,
            age: headers.get("age")?,
            last_modified: headers.get("last-modified")?,
            vary: headers.get("vary")?,
            has_set_cookie: headers.has("set-cookie")?,
        })
    }

    /// Borrowed view for the shared crate.
    pub fn facts(&self) -> ResponseFacts<'_> {
        ResponseFacts {
            status: self.status,
            cache_control: self.cache_control.as_deref(),
            cdn_cache_control: self.cdn_cache_control.as_deref(),
            expires: self.expires.as_deref(),
            date: self.date.as_deref(),
            age: self.age.as_deref(),
            last_modified: self.last_modified.as_deref(),
            vary: self.vary.as_deref(),
            has_set_cookie: self.has_set_cookie,
        }
    }
}

/// A stored response found for a request.
#[derive(Debug)]
pub struct Stored {
    /// The response with the origin's headers restored (mutable).
    pub response: Response,
    /// Its current age in seconds.
    pub age: u64,
    /// Its freshness.
    pub freshness: Freshness,
    /// Fresh, or stale and what may still be done with it.
    pub state: FreshnessState,
    /// The cache URL it lives under (the variant's, for a response with `Vary`).
    pub cache_url: String,
    /// Stored from a request with `Authorization`.
    pub authorized: bool,
}

/// Looks up what is stored for `request` under `cache_url` (following a Vary marker to the
/// request's variant), restoring the origin's headers and computing freshness. A brotli copy is
/// served as it is to a client that takes br (unless `identity` is asked), and decoded for any
/// other.
pub async fn lookup(cache: &Cache, cache_url: &str, request: &Request) -> Result<Option<Stored>> {
    lookup_as(cache, cache_url, request, false).await
}

/// [`lookup`], with `identity` forcing a decoded body (for byte ranges).
pub async fn lookup_as(
    cache: &Cache,
    cache_url: &str,
    request: &Request,
    identity: bool,
) -> Result<Option<Stored>> {
    let Some((found, found_url)) = find(cache, cache_url, request.headers()).await? else {
        return Ok(None);
    };
    let mut response = unwrap_status(crate::respond::rebuild(found)?)?;
    if response.headers().has(precompress::MARKER)? {
        let Some(ready) = precompress::for_client(response, request, identity).await? else {
            worker::console_error!("rampart-edge: the brotli copy of {found_url} is corrupt");
            return Ok(None);
        };
        response = ready;
    }
    let headers = response.headers_mut();
    let time = |name: &str| -> Result<u64> {
        Ok(headers.get(name)?.and_then(|v| v.parse().ok()).unwrap_or(0))
    };
    let (request_time, response_time) = (time(REQUEST_TIME)?, time(RESPONSE_TIME)?);
    let authorized = headers.has(AUTHORIZED)?;
    let upstream_age = headers.get(ORIGINAL_AGE)?;
    restore_origin_headers(headers)?;
    let mut owned = OwnedFacts::of(&response)?;
    owned.age = upstream_age;
    let facts = owned.facts();
    let age = current_age(&facts, request_time, response_time, now());
    let freshness = Freshness::of(&facts, response_time);
    Ok(Some(Stored {
        response,
        age,
        state: freshness.state(age),
        freshness,
        cache_url: found_url,
        authorized,
    }))
}

/// The raw stored entry for `request` and the URL it lives under: the entry at `cache_url`, or
/// the request's variant when that is a Vary marker.
async fn find(
    cache: &Cache,
    cache_url: &str,
    request_headers: &Headers,
) -> Result<Option<(Response, String)>> {
    let Some(found) = cache.get(cache_url, true).await? else {
        return Ok(None);
    };
    let Some(marker) = VaryMarker::of(found.headers())? else {
        return Ok(Some((found, cache_url.to_owned())));
    };
    let secondary = marker.secondary_key(request_headers);
    let variant_url = marker.variant_url(cache_url, &secondary);
    let Some(variant) = cache.get(variant_url.as_str(), true).await? else {
        return Ok(None);
    };
    // The URL holds a digest: the exact key guards against collisions.
    if variant.headers().get(VARY_KEY)?.as_deref() != Some(escape(&secondary).as_str()) {
        return Ok(None);
    }
    Ok(Some((variant, variant_url)))
}

/// A stored entry with the origin's status back (entries are stored as `200`s), and no body
/// where the status allows none.
fn unwrap_status(stored: Response) -> Result<Response> {
    let status = stored
        .headers()
        .get(ORIGINAL_STATUS)?
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| runtime::valid_status(*s))
        .unwrap_or(200);
    let (builder, body) = stored.into_parts();
    let body = if runtime::null_body_status(status) {
        worker::ResponseBody::Empty
    } else {
        body
    };
    Ok(builder.with_status(status).body(body))
}

/// `Cache-Control`, `CDN-Cache-Control`, `Date` and `Set-Cookie` as the origin sent them;
/// internal headers removed.
fn restore_origin_headers(headers: &Headers) -> Result<()> {
    for number in 1.. {
        let name = format!("{SET_COOKIE_PREFIX}{number}");
        let Some(cookie) = headers.get(&name)? else {
            break;
        };
        headers.delete(&name)?;
        headers.append("set-cookie", &cookie)?;
    }
    match headers.get(ORIGINAL_DATE)? {
        Some(original) => headers.set("date", &original)?,
        None => headers.delete("date")?,
    }
    match headers.get(ORIGINAL_CACHE_CONTROL)? {
        Some(original) => headers.set("cache-control", &original)?,
        None => headers.delete("cache-control")?,
    }
    if let Some(original) = headers.get(ORIGINAL_CDN_CACHE_CONTROL)? {
        headers.set("cdn-cache-control", &original)?;
    }
    // PER_EXCHANGE too: entries stored before they were left out.
    for name in INTERNAL.iter().chain(PER_EXCHANGE) {
        headers.delete(name)?;
    }
    Ok(())
}

/// The fields a URL's responses vary on, and the generation of its variants.
#[derive(Debug)]
struct VaryMarker {
    fields: Vec<String>,
    generation: String,
}

impl VaryMarker {
    fn of(headers: &Headers) -> Result<Option<Self>> {
        let (Some(fields), Some(generation)) =
            (headers.get(VARY_MARKER)?, headers.get(VARY_GENERATION)?)
        else {
            return Ok(None);
        };
        let fields = fields
            .split(',')
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .collect();
        Ok(Some(Self { fields, generation }))
    }

    fn secondary_key(&self, request_headers: &Headers) -> String {
        shared::vary::secondary_key(&self.fields, |name| {
            request_headers.get(name).ok().flatten()
        })
    }

    fn variant_url(&self, cache_url: &str, secondary_key: &str) -> String {
        let separator = if cache_url.contains('?') { '|' } else { '?' };
        format!(
            "{cache_url}{separator}|vary={}.{}",
            self.generation,
            shared::vary::digest(secondary_key)
        )
    }

    async fn put(&self, cache: &Cache, cache_url: &str) -> Result<()> {
        let headers = Headers::new();
        headers.set(VARY_MARKER, &self.fields.join(","))?;
        headers.set(VARY_GENERATION, &self.generation)?;
        headers.set(
            "cache-control",
            &format!("public, max-age={MARKER_RETENTION}"),
        )?;
        let marker = Response::empty()?.with_headers(headers);
        cache.put(cache_url, runtime::checked(marker)?).await
    }
}

/// A secondary key in a form a header value can carry.
fn escape(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'%' | 0..=0x1f | 0x7f.. => format!("%{b:02X}"),
            _ => (b as char).to_string(),
        })
        .collect()
}

/// Whether and for how long a fetched response may be stored (its retention in seconds). A
/// response with no freshness is kept only when it has a validator, to be revalidated later.
pub fn admit(
    method: &str,
    has_authorization: bool,
    facts: &ResponseFacts<'_>,
    response_time: u64,
    has_validator: bool,
) -> std::result::Result<u32, NotStorable> {
    storability(method, has_authorization, facts)?;
    let freshness = Freshness::of(facts, response_time);
    if freshness.retention() == 0 && !has_validator {
        return Err(NotStorable::NoFreshness);
    }
    Ok(retention(&freshness))
}

/// The physical lifetime of an entry: its freshness, its stale windows, and a day to be
/// revalidated or stand in for an unreachable origin.
fn retention(freshness: &Freshness) -> u32 {
    freshness
        .retention()
        .max(freshness.lifetime.saturating_add(STALE_RETENTION))
}

/// Whether `headers` carry a validator (`ETag` or `Last-Modified`).
pub fn has_validator(headers: &Headers) -> Result<bool> {
    Ok(headers.has("etag")? || headers.has("last-modified")?)
}

/// A response about to be stored.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Its status.
    pub status: u16,
    /// The origin's headers.
    pub headers: &'a Headers,
    /// The body, prepared for storing ([`crate::prepare`]).
    pub body: Prepared,
    /// Physical lifetime in the cache, in seconds.
    pub retention: u32,
    /// When the request was sent and the response received (Unix seconds).
    pub times: (u64, u64),
    /// Stored from a request with `Authorization`.
    pub authorized: bool,
    /// The route's policy lets its `Set-Cookie` be stored.
    pub keep_set_cookie: bool,
}

/// Stores `entry` for the request with `request_headers` under `cache_url` (as a variant, when
/// it has a `Vary`), and records its `Cache-Tag` values in the tag index. Returns the cache URL
/// it was stored under.
pub async fn put(
    cache: &Cache,
    cache_url: &str,
    request_headers: &Headers,
    entry: Entry<'_>,
) -> Result<String> {
    let fields = entry
        .headers
        .get("vary")?
        .and_then(|vary| shared::vary::fields(&vary))
        .unwrap_or_default();
    let stored_url = if fields.is_empty() {
        (cache_url.to_owned(), None)
    } else {
        let marker = match cache.get(cache_url, true).await? {
            Some(found) => VaryMarker::of(found.headers())?.filter(|m| m.fields == fields),
            None => None,
        };
        let marker = match marker {
            Some(marker) => marker,
            None => {
                let marker = VaryMarker {
                    fields,
                    generation: crate::forward::random_id(),
                };
                marker.put(cache, cache_url).await?;
                marker
            }
        };
        let secondary = marker.secondary_key(request_headers);
        (
            marker.variant_url(cache_url, &secondary),
            Some(escape(&secondary)),
        )
    };
    write(cache, &stored_url.0, entry, stored_url.1.as_deref()).await?;
    Ok(stored_url.0)
}

async fn write(
    cache: &Cache,
    stored_url: &str,
    entry: Entry<'_>,
    vary_key: Option<&str>,
) -> Result<()> {
    let headers = Headers::new();
    let mut cookies = 0;
    for (name, value) in entry.headers.entries() {
        match name.as_str() {
            "cache-control" => headers.set(ORIGINAL_CACHE_CONTROL, &value)?,
            "cdn-cache-control" => headers.set(ORIGINAL_CDN_CACHE_CONTROL, &value)?,
            "age" => headers.set(ORIGINAL_AGE, &value)?,
            "date" => headers.set(ORIGINAL_DATE, &value)?,
            "set-cookie" if entry.keep_set_cookie => {
                cookies += 1;
                headers.set(&format!("{SET_COOKIE_PREFIX}{cookies}"), &value)?;
            }
            "set-cookie" => {}
            name if PER_EXCHANGE.contains(&name) => {}
            _ => headers.append(&name, &value)?,
        }
    }
    headers.set(ORIGINAL_STATUS, &entry.status.to_string())?;
    if let Some(key) = vary_key {
        headers.set(VARY_KEY, key)?;
    }
    headers.set(
        "cache-control",
        &format!("public, max-age={}", entry.retention),
    )?;
    headers.set(REQUEST_TIME, &entry.times.0.to_string())?;
    headers.set(RESPONSE_TIME, &entry.times.1.to_string())?;
    if entry.authorized {
        headers.set(AUTHORIZED, "1")?;
    }
    if entry.body.is_brotli() {
        precompress::mark(&headers)?;
    }
    let stored = Response::from_bytes(entry.body.into_stored())?.with_headers(headers);
    cache.put(stored_url, runtime::checked(stored)?).await?;
    let tags: Vec<String> = match entry.headers.get("cache-tag")? {
        Some(value) => crate::tags::parse(&value).map(str::to_owned).collect(),
        None => Vec::new(),
    };
    crate::tags::record(cache, &tags, stored_url).await
}

/// Freshens the entry stored under `stored_url` with the headers of a `304` or `HEAD` response
/// (RFC 9111 §3.2, §4.3.4, §4.3.5): each field it carries replaces the stored one, except the
/// stored body's framing; the exchange's times replace the stored ones.
pub async fn freshen(
    cache: &Cache,
    stored_url: &str,
    update: &Headers,
    times: (u64, u64),
) -> Result<()> {
    let Some(found) = cache.get(stored_url, true).await? else {
        return Ok(());
    };
    let found = crate::respond::rebuild(found)?;
    let headers = found.headers();
    // The brotli copy's coding is the edge's own.
    let precompressed = headers.has(precompress::MARKER)?;
    let mut replaced: Vec<String> = Vec::new();
    for (name, value) in update.entries() {
        let framing = precompressed && name == "content-encoding";
        if framing || NOT_UPDATED.contains(&name.as_str()) || INTERNAL.contains(&name.as_str()) {
            continue;
        }
        let stored_name = match name.as_str() {
            "cache-control" => ORIGINAL_CACHE_CONTROL,
            "cdn-cache-control" => ORIGINAL_CDN_CACHE_CONTROL,
            "age" => ORIGINAL_AGE,
            "date" => ORIGINAL_DATE,
            other => other,
        };
        if !replaced.iter().any(|r| r == stored_name) {
            headers.delete(stored_name)?;
            replaced.push(stored_name.to_owned());
        }
        headers.append(stored_name, &value)?;
    }
    // Age and Date describe the exchange that freshened it; without them, its times do.
    for name in [ORIGINAL_AGE, ORIGINAL_DATE] {
        if !replaced.iter().any(|r| r == name) {
            headers.delete(name)?;
        }
    }
    // Added by the Cache API to what it returns.
    for name in ["age", "cf-cache-status"] {
        headers.delete(name)?;
    }
    headers.set(REQUEST_TIME, &times.0.to_string())?;
    headers.set(RESPONSE_TIME, &times.1.to_string())?;
    let status = headers
        .get(ORIGINAL_STATUS)?
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let retention = retention_of(status, headers, times.1)?;
    headers.set("cache-control", &format!("public, max-age={retention}"))?;
    cache.put(stored_url, runtime::checked(found)?).await
}

/// The physical lifetime of a stored entry with `headers` (internal names included).
fn retention_of(status: u16, stored_headers: &Headers, response_time: u64) -> Result<u32> {
    let view = Headers::new();
    for (name, value) in stored_headers.entries() {
        view.append(&name, &value)?;
    }
    restore_origin_headers(&view)?;
    let owned = OwnedFacts::of_headers(status, &view)?;
    Ok(retention(&Freshness::of(&owned.facts(), response_time)))
}

/// Removes what is stored for `cache_url` (its variants with it); whether anything was.
pub async fn invalidate(cache: &Cache, cache_url: &str) -> Result<bool> {
    let outcome = cache.delete(cache_url, true).await?;
    Ok(matches!(outcome, worker::CacheDeletionOutcome::Success))
}
