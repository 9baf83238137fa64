//! Answers a request from a stored response as the request asks (RFC 9110 §13, §14): `304`
//! when its conditions say the client's copy is current, `206`/`416` for a byte range of a
//! `200`, no body for `HEAD`, else the body in the coding the client negotiated; with `Age` and
//! `Cache-Status`.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use shared::cache_status::{CacheStatus, ForwardReason};
use shared::range::RangeAnswer;
use shared::validators::{Conditions, EntityTag};

use super::stored::{Stamped, Stored};
use crate::core::cache::Outcome;
use crate::core::http::header_values::decimal;
use crate::core::layers::compression::{self, Coding};

/// What a request asks of a stored response, read before the request is handed on.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
    range: Option<String>,
    if_range: Option<String>,
    /// `None` for `HEAD` (no body), else the coding negotiated (`Some(None)`: none).
    body_coding: Option<Option<Coding>>,
}

impl Asked {
    /// What `method` with `headers` asks.
    pub fn of(method: &Method, headers: &HeaderMap) -> Self {
        let text = |name: HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let coding = compression::negotiate(headers.get_all(header::ACCEPT_ENCODING));
        Self {
            if_none_match: text(header::IF_NONE_MATCH),
            if_modified_since: text(header::IF_MODIFIED_SINCE),
            range: text(header::RANGE),
            if_range: text(header::IF_RANGE),
            body_coding: (method != Method::HEAD).then_some(coding),
        }
    }

    /// Whether the request asks for a part of the body.
    pub fn wants_range(&self) -> bool {
        self.range.is_some() && self.body_coding.is_some()
    }

    /// Whether a `200` with `headers` is the client's copy already (RFC 9110 §13.2.2; for
    /// `If-Modified-Since`, against `Last-Modified`, else `Date`, as RFC 9111 §4.3.2 has a
    /// cache do).
    fn not_modified(&self, headers: &HeaderMap) -> bool {
        if self.if_none_match.is_none() && self.if_modified_since.is_none() {
            return false;
        }
        let conditions = Conditions {
            if_none_match: self.if_none_match.as_deref(),
            if_modified_since: self.if_modified_since.as_deref(),
        };
        let etag = headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .and_then(EntityTag::parse);
        let modified = headers
            .get(header::LAST_MODIFIED)
            .or_else(|| headers.get(header::DATE))
            .and_then(|v| v.to_str().ok());
        conditions.not_modified(etag.as_ref(), modified)
    }

    /// The part of a body of `length` bytes that the request's `Range` asks for, when it
    /// applies: `None` without one, or when `If-Range` names another representation (§13.1.5).
    fn part(&self, headers: &HeaderMap, length: u64) -> Option<RangeAnswer> {
        let range = self
            .range
            .as_deref()
            .filter(|_| self.body_coding.is_some())?;
        if let Some(if_range) = self.if_range.as_deref() {
            if !if_range_matches(if_range.trim(), headers) {
                return None;
            }
        }
        Some(shared::range::answer(range, length)).filter(|part| *part != RangeAnswer::Full)
    }
}

/// Whether `If-Range` holds: a strong entity tag equal to the `ETag`, or a date equal to the
/// `Last-Modified`.
fn if_range_matches(if_range: &str, headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(wanted) = EntityTag::parse(if_range) {
        let current = text(header::ETAG).and_then(EntityTag::parse);
        return current.is_some_and(|current| current.strong_eq(&wanted));
    }
    let parse = shared::freshness::parse_http_date;
    matches!(
        (parse(if_range), text(header::LAST_MODIFIED).and_then(parse)),
        (Some(wanted), Some(modified)) if wanted == modified
    )
}

/// The response to a request that asked `asked`, from `stored`, obtained by the cache named
/// `name` as `outcome`.
pub fn respond(
    stored: &Stored,
    (name, outcome): (&str, Outcome),
    age: Duration,
    asked: &Asked,
) -> Response {
    let mut headers = stored.headers.clone();
    if let Some(value) = cache_status(name, outcome) {
        headers.insert(CACHE_STATUS, value);
    }
    headers.insert(header::AGE, decimal(age.as_secs()));
    let (status, body) = match stored.status {
        StatusCode::OK => ok_answer(stored, asked, &mut headers),
        status if asked.body_coding.is_none() => (status, Body::empty()),
        status => (status, Body::from(stored.body.clone())),
    };
    let mut response = with_head(status, headers, body);
    response.extensions_mut().insert(Stamped);
    if let Some(route) = stored.route.clone() {
        response.extensions_mut().insert(route);
    }
    response
}

/// The status and body of an answer from a stored `200`.
fn ok_answer(stored: &Stored, asked: &Asked, headers: &mut HeaderMap) -> (StatusCode, Body) {
    let coding = asked.body_coding;
    if asked.not_modified(headers) {
        // The validators of the copy the client holds: that of its coding.
        if let Some(coding) = coding.filter(|_| stored.compressible) {
            let _ = in_coding(stored, coding, headers);
        }
        headers.remove(header::CONTENT_TYPE);
        headers.remove(header::CONTENT_ENCODING);
        return (StatusCode::NOT_MODIFIED, Body::empty());
    }
    let Some(coding) = coding else {
        return (StatusCode::OK, Body::empty());
    };
    // A range is of the identity body; a compressed one would be of another representation.
    if let Some(part) = asked.part(headers, stored.body.len() as u64) {
        return ranged(stored, part, headers);
    }
    let body = match stored.compressible {
        true => in_coding(stored, coding, headers),
        false => stored.body.clone(),
    };
    (StatusCode::OK, Body::from(body))
}

/// `206` with the asked bytes, or `416` when none exist.
fn ranged(stored: &Stored, part: RangeAnswer, headers: &mut HeaderMap) -> (StatusCode, Body) {
    let length = stored.body.len() as u64;
    if stored.compressible {
        add_vary_accept_encoding(headers);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(value) = part
        .content_range(length)
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        headers.insert(header::CONTENT_RANGE, value);
    }
    match part {
        RangeAnswer::Partial { first, last } => {
            // `answer` keeps `first <= last < length`.
            let slice = stored.body.slice(first as usize..=last as usize);
            (StatusCode::PARTIAL_CONTENT, Body::from(slice))
        }
        _ => {
            headers.remove(header::CONTENT_TYPE);
            (StatusCode::RANGE_NOT_SATISFIABLE, Body::empty())
        }
    }
}

/// The body of a compressible entry in `coding` (as it is when `None` or when the encoder
/// failed), with the headers the compression layer would have written.
fn in_coding(stored: &Stored, coding: Option<Coding>, headers: &mut HeaderMap) -> Bytes {
    add_vary_accept_encoding(headers);
    let Some((coding, body)) = coding.and_then(|c| Some((c, stored.encoded(c)?))) else {
        return stored.body.clone();
    };
    headers.remove(header::ACCEPT_RANGES);
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(header::CONTENT_ENCODING, coding.token());
    compression::weaken_etag(headers);
    body.clone()
}

fn add_vary_accept_encoding(headers: &mut HeaderMap) {
    let varies = headers.get_all(header::VARY).iter().any(|value| {
        let value = value.as_bytes();
        value
            .windows(b"accept-encoding".len())
            .any(|name| name.eq_ignore_ascii_case(b"accept-encoding"))
    });
    if !varies {
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// `Cache-Status` of the cache `name` for `outcome`.
fn cache_status(name: &str, outcome: Outcome) -> Option<HeaderValue> {
    let general = |status: CacheStatus| HeaderValue::from_str(&status.to_string()).ok();
    match outcome {
        // The hottest path: written without the general formatter.
        Outcome::Hit { remaining } => Some(hit_status(name, remaining.as_secs())),
        Outcome::Stale => general(CacheStatus::forward(name, ForwardReason::Stale)),
        Outcome::StaleOnError => {
            general(CacheStatus::forward(name, ForwardReason::Stale).with_detail("stale-if-error"))
        }
        Outcome::StaleUnreachable => general(
            CacheStatus::forward(name, ForwardReason::Stale).with_detail("origin-unreachable"),
        ),
        Outcome::Miss { collapsed, stored } => general(
            CacheStatus::forward(name, ForwardReason::Miss)
                .stored(stored)
                .collapsed(collapsed),
        ),
    }
}

/// `Cache-Status` of the cache `name` for a stale copy the next hop confirmed with a `304`:
/// `fwd=stale; fwd-status=304`, and whether the freshened copy was stored.
pub fn revalidated_status(name: &str, stored: bool) -> Option<HeaderValue> {
    let status = CacheStatus::forward(name, ForwardReason::Stale)
        .with_fwd_status(StatusCode::NOT_MODIFIED.as_u16())
        .stored(stored);
    HeaderValue::from_str(&status.to_string()).ok()
}

/// `Cache-Status: <name>; hit; ttl=N`.
fn hit_status(name: &str, ttl: u64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    let text = [name.as_bytes(), HIT, digits.format(ttl).as_bytes()].concat();
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text))
        .expect("a token and digits are a valid header value")
}

/// `Cache-Status` (RFC 9211).
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// What follows the name in a hit's `Cache-Status` (the TTL follows).
const HIT: &[u8] = b"; hit; ttl=";

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
        use shared::cache_status::{ORIGIN, SHIELD};
        for (name, ttl) in [
            (ORIGIN, 0),
            (ORIGIN, 7),
            (SHIELD, 299),
            (ORIGIN, 31_536_000),
        ] {
            let general = CacheStatus::hit(name).with_ttl(ttl as i64).to_string();
            assert_eq!(hit_status(name, ttl).as_bytes(), general.as_bytes());
        }
    }
}
