//! Image variants: `/cdn-cgi/image/<options>/<source>` (Cloudflare's URL format for resized
//! images) and, on routes whose policy allows it, the originals under `/images/*` re-encoded for
//! clients that name AVIF or WebP in `Accept`. The options are checked (bounded sizes, known
//! names) before anything is fetched; the source comes from the origin, is bounded again by its
//! bytes and its header's pixel count, transformed by the `imaging` crate, and stored under the
//! transformation URL plus the negotiated format, so each variant is made once.
//!
//! With `IMAGE_SIGNING_KEY` set, a transformation URL must carry `sig=`, its HMAC (see
//! `shared::image_signing`), or it is refused with 403 before anything is fetched.
//!
//! Format: `format=avif|webp|jpeg|png` is honoured; `format=auto` (and `/images/*`) gives AVIF to
//! clients naming both `image/avif` and `image/webp` (every browser that decodes AVIF decodes
//! WebP), WebP to those naming `image/webp`, and the source's kind to everyone else, with
//! `Vary: Accept`. AVIF costs the most CPU: beyond its pixel budget WebP is made instead, and
//! beyond WebP's the source's kind. When the output would not be smaller than the source and
//! the client can take the source, the source is served.

use imaging::{Limits, SourceInfo, TransformError};
use shared::cache_status::{CacheStatus, ForwardReason, EDGE};
use shared::error_body::ErrorCode;
use shared::freshness::FreshnessState;
use shared::image::{FormatChoice, ImageFormat, ImageRequest, SourceFormat};
use shared::key::CacheKey;
use shared::policy::Decision;
use worker::{Cache, Headers, Request, Response, Result};

use crate::exchange::Exchange;
use crate::forward::{Deadline, Outgoing};
use crate::prepare::Prepared;
use crate::respond::Security;
use crate::server_timing::cache_io;
use crate::{coalesce, forward, respond, store};

/// How long a request waits for another one's conversion of the same variant, beyond the
/// origin timeout: the slowest conversions (AVIF at its pixel budget) take a few seconds.
const CONVERSION_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The output format a request settles on before the source is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Choice {
    /// The format asked for, or negotiated; `None` is the source's own kind.
    format: Option<ImageFormat>,
    /// Whether it came from `Accept` (the response then says `Vary: Accept`).
    negotiated: bool,
    /// Whether the URL names the original (`/images/*`): it is then served as it is whenever no
    /// smaller modern variant can be made (too costly, undecodable, or not smaller).
    original: bool,
}

/// The format a transformation URL asks for, or the one its key negotiated from `Accept`.
fn choose(key: &CacheKey, ask: &ImageRequest) -> Choice {
    match ask.format {
        FormatChoice::Fixed(format) => Choice {
            format: Some(format),
            negotiated: false,
            original: false,
        },
        FormatChoice::Auto => Choice {
            format: key.image_format(),
            negotiated: true,
            original: false,
        },
    }
}

/// Answers an image transformation request (GET or HEAD).
pub(crate) async fn handle(
    exchange: &Exchange<'_>,
    key: &CacheKey,
    decision: &Decision<'_>,
) -> Result<Response> {
    let ask = match ImageRequest::parse(key.path()) {
        Ok(ask) => ask,
        Err(error) => return respond::error(400, error.code(), &error.to_string()),
    };
    if let Some(key) = &exchange.config.image_signing_key {
        if let Err(error) = shared::image_signing::verify(key.as_bytes(), &ask) {
            return respond::error(403, error.code(), &error.to_string());
        }
    }
    let choice = choose(key, &ask);
    serve(exchange, key, &ask, choice, decision).await
}

/// Answers a read of an original image (`/images/*`) by a client that takes `format`: the
/// original re-encoded at full size, stored as the URL's `format` variant.
pub(crate) async fn handle_original(
    exchange: &Exchange<'_>,
    key: &CacheKey,
    format: ImageFormat,
    decision: &Decision<'_>,
) -> Result<Response> {
    let ask = ImageRequest::original(&key.target());
    let choice = Choice {
        format: Some(format),
        negotiated: true,
        original: true,
    };
    serve(exchange, key, &ask, choice, decision).await
}

async fn serve(
    exchange: &Exchange<'_>,
    key: &CacheKey,
    ask: &ImageRequest,
    choice: Choice,
    decision: &Decision<'_>,
) -> Result<Response> {
    let (request, config, security) = (exchange.request, exchange.config, &exchange.security);
    let cache = Cache::default();
    let cache_url = key.cache_url();
    if let Some((response, remaining)) = stored_variant(exchange, &cache, &cache_url).await? {
        let status = CacheStatus::hit(EDGE).with_ttl(i64::from(remaining));
        return finish(request, response, choice, &status, security);
    }
    let status = CacheStatus::forward(EDGE, ForwardReason::UriMiss);
    // Held to the end: concurrent requests for one variant share one conversion (a popular
    // page's new image would otherwise be converted once per visitor).
    let _leader = match coalesce::lead(&cache_url) {
        Some(leader) => Some(leader),
        None => {
            coalesce::wait(&cache_url, config.origin_timeout + CONVERSION_WAIT).await;
            if let Some((response, remaining)) =
                stored_variant(exchange, &cache, &cache_url).await?
            {
                let status = status.collapsed(true).with_ttl(i64::from(remaining));
                return finish(request, response, choice, &status, security);
            }
            // The leader's variant was not stored: this request makes its own.
            None
        }
    };
    let request_time = store::now();
    let source = match fetch_source(exchange, ask).await? {
        Ok(source) => source,
        Err(refusal) => return respond::finish(refusal, &status, security),
    };
    let response_time = store::now();
    let converting = worker::Date::now().as_millis();
    let converted = convert(ask, choice, &source);
    let spent = worker::Date::now().as_millis().saturating_sub(converting);
    config.trace(|span| span.add_image_time(spent as f64));
    let (bytes, content_type) = match converted {
        Ok(converted) => converted,
        Err(_) if choice.original => as_is(source),
        Err(error) => {
            return respond::finish(refused(&error)?, &status, security);
        }
    };
    let headers = Headers::new();
    headers.set("content-type", content_type)?;
    headers.set("cache-control", &decision.cache_control().to_string())?;
    let response = Response::from_bytes(bytes.clone())?.with_headers(headers.clone());
    let times = (request_time, response_time);
    let kept = keep(&cache, &cache_url, &response, &headers, bytes, times);
    let stored = cache_io(config, kept).await.unwrap_or_else(|error| {
        exchange.log(&format!("storing the converted image failed: {error}"));
        false
    });
    finish(request, response, choice, &status.stored(stored), security)
}

/// The fresh stored variant at `cache_url`; a cache that cannot be read counts as holding none.
async fn stored_variant(
    exchange: &Exchange<'_>,
    cache: &Cache,
    cache_url: &str,
) -> Result<Option<(Response, u32)>> {
    let lookup = stored_fresh(cache, cache_url, exchange.request);
    Ok(cache_io(exchange.config, lookup)
        .await
        .unwrap_or_else(|error| {
            exchange.log(&format!("cache lookup failed, taken as a miss: {error}"));
            None
        }))
}

/// A fresh stored copy of `cache_url`, with its `Age`, and how long it stays fresh.
async fn stored_fresh(
    cache: &Cache,
    cache_url: &str,
    request: &Request,
) -> Result<Option<(Response, u32)>> {
    let Some(stored) = store::lookup(cache, cache_url, request).await? else {
        return Ok(None);
    };
    let FreshnessState::Fresh { remaining } = stored.state else {
        return Ok(None);
    };
    let mut response = stored.response;
    response.headers_mut().set("age", &stored.age.to_string())?;
    Ok(Some((response, remaining)))
}

/// Stores a made variant under `cache_url`; whether it was stored.
async fn keep(
    cache: &Cache,
    cache_url: &str,
    response: &Response,
    headers: &Headers,
    bytes: Vec<u8>,
    (request_time, response_time): (u64, u64),
) -> Result<bool> {
    let owned = store::OwnedFacts::of(response)?;
    let Ok(retention) = store::admit("GET", false, &owned.facts(), response_time, false) else {
        return Ok(false);
    };
    let entry = store::Entry {
        status: 200,
        headers,
        // Encoded images: nothing to minify or compress.
        body: Prepared::as_is(bytes),
        retention,
        times: (request_time, response_time),
        authorized: false,
        keep_set_cookie: false,
    };
    let put = store::put(cache, cache_url, &Headers::new(), entry).await;
    Ok(put.is_ok())
}

/// The source's bytes, or the response refusing the request.
async fn fetch_source(
    exchange: &Exchange<'_>,
    ask: &ImageRequest,
) -> Result<std::result::Result<Vec<u8>, Response>> {
    let (request, config) = (exchange.request, exchange.config);
    let outgoing = Outgoing {
        method: "GET",
        target: &ask.source,
        fill: Some(&forward::Validators::default()),
        request_id: exchange.id(),
    };
    let deadline = Deadline::after(config.origin_timeout);
    let response = match forward::to_origin(request, &outgoing, config, deadline).await {
        Ok(response) => response,
        Err(error) => {
            let timed_out = matches!(error, forward::OriginError::Timeout(_));
            return Ok(Err(respond::origin_failure(timed_out, false)?));
        }
    };
    match response.status_code() {
        200 => {}
        404 => {
            return Ok(Err(respond::error(
                404,
                ErrorCode::ImageSourceNotFound,
                "the source image does not exist",
            )?))
        }
        code => {
            let message = format!("the origin answered {code} for the source image");
            return Ok(Err(respond::error(
                502,
                ErrorCode::ImageSourceFailed,
                &message,
            )?));
        }
    }
    let limit = Limits::default().max_source_bytes;
    let declared = response
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        let error = TransformError::SourceTooLarge {
            bytes: declared.unwrap_or(0),
            limit,
        };
        return Ok(Err(refused(&error)?));
    }
    match forward::read_body(response, limit, deadline).await {
        Ok(Ok((_, bytes))) => Ok(Ok(bytes)),
        Ok(Err(_)) => {
            let error = TransformError::SourceTooLarge {
                bytes: limit + 1,
                limit,
            };
            Ok(Err(refused(&error)?))
        }
        Err(error) => {
            let timed_out = matches!(error, forward::OriginError::Timeout(_));
            Ok(Err(respond::origin_failure(timed_out, false)?))
        }
    }
}

/// The transformed bytes and their media type (or the source's, when it is smaller).
fn convert(
    ask: &ImageRequest,
    choice: Choice,
    source: &[u8],
) -> std::result::Result<(Vec<u8>, &'static str), TransformError> {
    let limits = Limits::default();
    let info = imaging::measure(source, &limits)?;
    let format = output_format(ask, choice, &info);
    if choice.original && !format.is_modern() {
        return Ok(as_is(source.to_vec()));
    }
    let output = imaging::transform(source, ask, format, &limits)?;
    let takes_source = choice.negotiated || format.mime() == info.format.mime();
    if takes_source && output.bytes.len() >= source.len() {
        return Ok((source.to_vec(), info.format.mime()));
    }
    Ok((output.bytes, format.mime()))
}

/// The error answer to a transformation that was refused or failed.
fn refused(error: &TransformError) -> Result<Response> {
    respond::error(error.status(), error.code(), &error.to_string())
}

/// The source unchanged, with the media type its first bytes show.
fn as_is(source: Vec<u8>) -> (Vec<u8>, &'static str) {
    let mime = SourceFormat::sniff(&source).map_or("application/octet-stream", |f| f.mime());
    (source, mime)
}

/// The format to encode: the chosen one within its CPU budget, else the next affordable one.
fn output_format(ask: &ImageRequest, choice: Choice, info: &SourceInfo) -> ImageFormat {
    let fallback = info.format.fallback_output();
    let wanted = choice.format.unwrap_or(fallback);
    imaging::affordable(wanted, info.output_pixels(ask), fallback)
}

/// The answer, with `Vary: Accept` when the format was negotiated (the stored copy is keyed
/// by its format instead, so it carries no `Vary`).
fn finish(
    request: &Request,
    response: Response,
    choice: Choice,
    status: &CacheStatus,
    security: &Security,
) -> Result<Response> {
    let response = if crate::runtime::method(request) == "HEAD" {
        Response::empty()?.with_headers(response.headers().clone())
    } else {
        response
    };
    let response = if choice.negotiated {
        respond::vary_on_accept(response)?
    } else {
        response
    };
    respond::finish(response, status, security)
}
