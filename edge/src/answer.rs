//! Answers from a stored or fetched response as the request asks (RFC 9110 §13, §14): `304`
//! for matching conditions, `206`/`416` for byte ranges, no body for `HEAD`; and the answers
//! the edge makes itself when the origin fails.

use shared::cache_status::CacheStatus;
use shared::error_body::ErrorCode;
use shared::range::RangeAnswer;
use shared::validators::{Conditions, EntityTag};
use worker::{Headers, Response, Result};

use crate::exchange::Exchange;
use crate::forward::OriginError;
use crate::respond;

/// Answers from a stored or fetched response as the request asks: `304` when its validators
/// match the client's conditions, `206`/`416` for a byte range of a `200`, no body for `HEAD`;
/// `age` (seconds) is sent as `Age`.
pub(crate) async fn answer(
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

/// The answer when the origin gave nothing usable and nothing stored may stand in.
pub(crate) fn origin_failed(
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
                ErrorCode::OriginInvalidResponse,
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
pub(crate) fn wants_html(exchange: &Exchange<'_>) -> bool {
    exchange
        .header("accept")
        .is_some_and(|accept| accept.contains("text/html"))
}
