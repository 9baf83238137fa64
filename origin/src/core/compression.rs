//! Response compression by `Accept-Encoding` (brotli preferred, then gzip), for bodies of at
//! least 1 KiB that are not compressed already (images, archives, anything with a
//! `Content-Encoding`); tower-http's compression layer does the work.
//!
//! A compressed body is another representation of the resource, so a strong `ETag` becomes
//! weak (as nginx does): `If-None-Match` still matches it, since that comparison is weak.

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use tower_http::compression::predicate::{And, DefaultPredicate, Predicate, SizeAbove};
use tower_http::compression::{CompressionBody, CompressionLayer, CompressionLevel};

/// Bodies smaller than this are sent as they are.
pub const MIN_BYTES: u16 = 1024;

/// Which responses are compressed: the default predicate (not images, not already encoded, not
/// gRPC or event streams) and at least [`MIN_BYTES`].
pub type Compressible = And<DefaultPredicate, SizeAbove>;

/// The compression layer: brotli or gzip at a speed-minded level.
pub fn layer() -> CompressionLayer<Compressible> {
    CompressionLayer::new()
        .br(true)
        .gzip(true)
        .no_deflate()
        .no_zstd()
        // Level 4 compresses text nearly as well as the defaults at a fraction of the CPU.
        .quality(CompressionLevel::Precise(4))
        .compress_when(DefaultPredicate::new().and(SizeAbove::new(MIN_BYTES)))
}

/// Weakens the `ETag` of a compressed response and gives it axum's body type (for
/// `tower::util::MapResponse`, outside [`layer`]: a plain function, so the hot path gains no
/// boxed future).
pub fn weaken_etag(response: Response<CompressionBody<Body>>) -> Response {
    let mut response = response.map(Body::new);
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
