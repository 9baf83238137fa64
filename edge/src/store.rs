//! Stored entries in the Workers Cache API, with freshness tracked by the Worker itself.
//!
//! The Cache API only stores and matches: it has no stale-while-revalidate or stale-if-error. So
//! an entry is stored with a *physical* lifetime (`Cache-Control: max-age=<retention>`) long
//! enough to cover the stale windows, while its *logical* freshness is computed on every lookup by
//! the shared crate from the origin's original headers, kept beside it:
//!
//! | header on the stored copy | meaning |
//! | --- | --- |
//! | `x-rampart-cache-control` | the origin's `Cache-Control`, restored on the way out |
//! | `x-rampart-cdn-cache-control` | the origin's `CDN-Cache-Control` |
//! | `x-rampart-request-time` / `x-rampart-response-time` | Unix seconds, for RFC 9111 §4.2.3 age |
//! | `x-rampart-precompressed` | the body is the edge's brotli copy ([`precompress`]) |

use shared::freshness::{
    current_age, storability, Freshness, FreshnessState, NotStorable, ResponseFacts,
};
use worker::{Cache, Headers, Request, Response, Result};

use crate::precompress;

const ORIGINAL_CACHE_CONTROL: &str = "x-rampart-cache-control";
const ORIGINAL_CDN_CACHE_CONTROL: &str = "x-rampart-cdn-cache-control";
const REQUEST_TIME: &str = "x-rampart-request-time";
const RESPONSE_TIME: &str = "x-rampart-response-time";
const INTERNAL: &[&str] = &[
    ORIGINAL_CACHE_CONTROL,
    ORIGINAL_CDN_CACHE_CONTROL,
    REQUEST_TIME,
    RESPONSE_TIME,
];

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
        let headers = response.headers();
        Ok(Self {
            status: response.status_code(),
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

/// A stored response found for a key.
#[derive(Debug)]
pub struct Stored {
    /// The response with the origin's headers restored (mutable).
    pub response: Response,
    /// Its current age in seconds.
    pub age: u64,
    /// Fresh, or stale and what may still be done with it.
    pub state: FreshnessState,
}

/// Looks up `cache_url` for `request`, restoring the origin's headers and computing freshness.
/// A brotli copy is served as it is to a client that takes br, and decoded for any other.
pub async fn lookup(cache: &Cache, cache_url: &str, request: &Request) -> Result<Option<Stored>> {
    let Some(found) = cache.get(cache_url, true).await? else {
        return Ok(None);
    };
    let mut response = crate::respond::rebuild(found)?;
    if response.headers().has(precompress::MARKER)? {
        let Some(ready) = precompress::for_client(response, request).await? else {
            worker::console_error!("rampart-edge: the brotli copy of {cache_url} is corrupt");
            return Ok(None);
        };
        response = ready;
    }
    let headers = response.headers_mut();
    let time = |name: &str| -> Result<u64> {
        Ok(headers.get(name)?.and_then(|v| v.parse().ok()).unwrap_or(0))
    };
    let (request_time, response_time) = (time(REQUEST_TIME)?, time(RESPONSE_TIME)?);
    match headers.get(ORIGINAL_CACHE_CONTROL)? {
        Some(original) => headers.set("cache-control", &original)?,
        None => headers.delete("cache-control")?,
    }
    if let Some(original) = headers.get(ORIGINAL_CDN_CACHE_CONTROL)? {
        headers.set("cdn-cache-control", &original)?;
    }
    for name in INTERNAL.iter().chain([&precompress::MARKER]) {
        headers.delete(name)?;
    }
    let owned = OwnedFacts::of(&response)?;
    let facts = owned.facts();
    let age = current_age(&facts, request_time, response_time, now());
    let state = Freshness::of(&facts, response_time).state(age);
    Ok(Some(Stored {
        response,
        age,
        state,
    }))
}

/// Whether and for how long a fetched response may be stored (its retention in seconds).
pub fn admit(
    method: &str,
    has_authorization: bool,
    facts: &ResponseFacts<'_>,
    response_time: u64,
) -> std::result::Result<u32, NotStorable> {
    storability(method, has_authorization, facts)?;
    let retention = Freshness::of(facts, response_time).retention();
    if retention == 0 {
        return Err(NotStorable::NoFreshness);
    }
    Ok(retention)
}

/// Stores `body` with the headers of `origin_headers` under `cache_url`, as a brotli copy when
/// `compress` allows and the body is text worth it, and records its `Cache-Tag` values in the
/// tag index.
#[allow(clippy::too_many_arguments)]
pub async fn put(
    cache: &Cache,
    cache_url: &str,
    status: u16,
    origin_headers: &Headers,
    body: Vec<u8>,
    retention: u32,
    times: (u64, u64),
    compress: bool,
) -> Result<()> {
    let headers = Headers::new();
    for (name, value) in origin_headers.entries() {
        match name.as_str() {
            "cache-control" => headers.set(ORIGINAL_CACHE_CONTROL, &value)?,
            "cdn-cache-control" => headers.set(ORIGINAL_CDN_CACHE_CONTROL, &value)?,
            "set-cookie" | "age" | "cache-status" => {}
            _ => headers.append(&name, &value)?,
        }
    }
    headers.set("cache-control", &format!("public, max-age={retention}"))?;
    headers.set(REQUEST_TIME, &times.0.to_string())?;
    headers.set(RESPONSE_TIME, &times.1.to_string())?;
    let body = if compress && status == 200 && precompress::worthwhile(origin_headers, body.len())?
    {
        precompress::mark(&headers)?;
        precompress::brotli(&body)
    } else {
        body
    };
    let stored = Response::from_bytes(body)?
        .with_status(status)
        .with_headers(headers);
    cache.put(cache_url, stored).await?;
    let tags: Vec<String> = match origin_headers.get("cache-tag")? {
        Some(value) => crate::tags::parse(&value).map(str::to_owned).collect(),
        None => Vec::new(),
    };
    crate::tags::record(cache, &tags, cache_url).await
}
