//! `/cdn-cgi/image/<options>/<source>`: Cloudflare's URL format for resized images. The options
//! are checked (bounded sizes, known names) before anything is fetched; the source comes from
//! the origin, is bounded again by its bytes and its header's pixel count, transformed by the
//! `imaging` crate, and stored under the transformation URL, so each variant is made once.
//!
//! This build encodes JPEG and PNG: `format=auto` keeps the source's kind (JPEG stays JPEG,
//! anything that may carry transparency becomes PNG), and an explicit `format=avif` or
//! `format=webp` falls back the same way. When the output would not be smaller than the source
//! at the same format, the source is served.

use imaging::{Limits, TransformError};
use shared::cache_status::{CacheStatus, ForwardReason, EDGE};
use shared::freshness::FreshnessState;
use shared::image::{FormatChoice, ImageFormat, ImageRequest, SourceFormat};
use shared::key::CacheKey;
use shared::policy::Decision;
use shared::security::SecurityOverrides;
use worker::{Cache, Headers, Method, Request, Response, Result};

use crate::config::EdgeConfig;
use crate::{forward, respond, store};

/// Answers an image transformation request (GET or HEAD).
pub async fn handle(
    request: &Request,
    key: &CacheKey,
    decision: &Decision<'_>,
    config: &EdgeConfig,
    security: &SecurityOverrides,
) -> Result<Response> {
    let ask = match ImageRequest::parse(key.path()) {
        Ok(ask) => ask,
        Err(error) => return respond::error(400, error.code(), &error.to_string()),
    };
    let cache = Cache::default();
    let cache_url = key.cache_url();
    if let Some(stored) = store::lookup(&cache, &cache_url).await? {
        if let FreshnessState::Fresh { remaining } = stored.state {
            let status = CacheStatus::hit(EDGE).with_ttl(i64::from(remaining));
            let mut response = stored.response;
            response.headers_mut().set("age", &stored.age.to_string())?;
            return finish(request, response, &status, security);
        }
    }
    let status = CacheStatus::forward(EDGE, ForwardReason::UriMiss);
    let request_time = store::now();
    let source = match fetch_source(request, &ask, config).await? {
        Ok(source) => source,
        Err(refusal) => return respond::finish(refusal, &status, security),
    };
    let response_time = store::now();
    let (bytes, content_type) = match convert(request, &ask, &source) {
        Ok(converted) => converted,
        Err(error) => {
            let refusal = respond::error(error.status(), error.code(), &error.to_string())?;
            return respond::finish(refusal, &status, security);
        }
    };
    let headers = Headers::new();
    headers.set("content-type", content_type)?;
    headers.set("cache-control", &decision.cache_control().to_string())?;
    let response = Response::from_bytes(bytes.clone())?.with_headers(headers.clone());
    let owned = store::OwnedFacts::of(&response)?;
    let stored = match store::admit("GET", false, &owned.facts(), response_time) {
        Ok(retention) => store::put(
            &cache,
            &cache_url,
            200,
            &headers,
            bytes,
            retention,
            (request_time, response_time),
        )
        .await
        .is_ok(),
        Err(_) => false,
    };
    finish(request, response, &status.stored(stored), security)
}

/// The source's bytes, or the response refusing the request.
async fn fetch_source(
    request: &Request,
    ask: &ImageRequest,
    config: &EdgeConfig,
) -> Result<std::result::Result<Vec<u8>, Response>> {
    let outgoing = forward::prepare_as(request, Method::Get, &ask.source, config)?;
    let mut response = match forward::send(&outgoing, config.origin_timeout).await {
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
                "IMAGE_SOURCE_NOT_FOUND",
                "the source image does not exist",
            )?))
        }
        code => {
            let message = format!("the origin answered {code} for the source image");
            return Ok(Err(respond::error(502, "IMAGE_SOURCE_FAILED", &message)?));
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
        return Ok(Err(respond::error(
            error.status(),
            error.code(),
            &error.to_string(),
        )?));
    }
    Ok(Ok(response.bytes().await?))
}

/// The transformed bytes and their media type (or the source's, when it is smaller).
fn convert(
    request: &Request,
    ask: &ImageRequest,
    source: &[u8],
) -> std::result::Result<(Vec<u8>, &'static str), TransformError> {
    let limits = Limits::default();
    let kind = imaging::inspect(source, &limits)?;
    let format = output_format(request, ask, kind);
    let output = imaging::transform(source, ask, format, &limits)?;
    let same_kind = format.mime() == kind.mime();
    if same_kind && output.bytes.len() >= source.len() {
        return Ok((source.to_vec(), kind.mime()));
    }
    Ok((output.bytes, format.mime()))
}

/// The format to encode: the requested one when this build has its encoder, else what the
/// client accepts among those it has, else the source's kind.
fn output_format(request: &Request, ask: &ImageRequest, kind: SourceFormat) -> ImageFormat {
    let fallback = kind.fallback_output();
    match ask.format {
        FormatChoice::Fixed(format) if imaging::ENCODERS.contains(&format) => format,
        FormatChoice::Fixed(_) => fallback,
        FormatChoice::Auto => {
            let accept = request.headers().get("accept").ok().flatten();
            let modern: Vec<ImageFormat> = imaging::ENCODERS
                .into_iter()
                .filter(|format| format.is_modern())
                .collect();
            shared::negotiate::image_format(accept.as_deref(), fallback, &modern)
        }
    }
}

fn finish(
    request: &Request,
    response: Response,
    status: &CacheStatus,
    security: &SecurityOverrides,
) -> Result<Response> {
    if request.method() == Method::Head {
        let head = Response::empty()?.with_headers(response.headers().clone());
        return respond::finish(head, status, security);
    }
    respond::finish(response, status, security)
}
