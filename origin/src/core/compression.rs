//! Response compression by `Accept-Encoding` (brotli preferred, then gzip), for bodies of at
//! least 1 KiB that are not compressed already (images, archives, anything with a
//! `Content-Encoding`); tower-http's compression layer does the work.
//!
//! A compressed body is another representation of the resource, so a strong `ETag` becomes
//! weak (as nginx does): `If-None-Match` still matches it, since that comparison is weak.

use axum::http::{header, HeaderValue};
use axum::response::Response;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};

/// Bodies smaller than this are sent as they are.
pub const MIN_BYTES: u16 = 1024;

/// The compression layer: brotli or gzip at a speed-minded level.
pub fn layer() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new()
        .br(true)
        .gzip(true)
        .no_deflate()
        .no_zstd()
        // Level 4 compresses text nearly as well as the defaults at a fraction of the CPU.
        .quality(CompressionLevel::Precise(4))
        .compress_when(DefaultPredicate::new().and(SizeAbove::new(MIN_BYTES)))
}

/// Weakens the `ETag` of a compressed response (for `tower::util::MapResponseLayer`, outside
/// [`layer`]: a plain function, so the hot path gains no boxed future).
pub fn weaken_etag(mut response: Response) -> Response {
    if !response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    let strong = response
        .headers()
        .get(header::ETAG)
        .filter(|etag| etag.as_bytes().starts_with(b"\""))
        .map(|etag| [b"W/", etag.as_bytes()].concat());
    if let Some(weak) = strong.and_then(|weak| HeaderValue::from_bytes(&weak).ok()) {
        response.headers_mut().insert(header::ETAG, weak);
    }
    response
}
