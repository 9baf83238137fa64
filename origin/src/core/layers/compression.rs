//! Response compression by `Accept-Encoding` (brotli preferred, then gzip), for bodies of at
//! least 1 KiB that are not compressed already (images, archives, anything with a
//! `Content-Encoding`); tower-http's compression layer does the work.
//!
//! [`Compress`] asks tower-http's own predicate first and hands a response to the layer only
//! when the layer would change it: the layer's body type is nearly 6 KB (every encoder's state
//! inline), and moving it costs a cache hit of a small body more than serving it.
//!
//! The response cache serves its entries' compressed forms itself ([`Coding`], [`negotiate`],
//! [`compressible`]): each entry is compressed once per coding, then served many times, as
//! Varnish does, rather than compressed again on every hit.
//!
//! A compressed body is another representation of the resource, so a strong `ETag` becomes
//! weak (as nginx does): `If-None-Match` still matches it, since that comparison is weak.

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::io::Write;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use futures::future::BoxFuture;
use shared::negotiate::{content_encoding, ContentEncoding};
use tower::{Layer, Service, ServiceExt};
use tower_http::compression::predicate::{And, DefaultPredicate, Predicate, SizeAbove};
use tower_http::compression::{CompressionBody, CompressionLayer, CompressionLevel};

use crate::core::service::Inner;

/// Bodies smaller than this are sent as they are.
pub const MIN_BYTES: u16 = 1024;

/// Which responses are compressed: the default predicate (not images, not already encoded, not
/// gRPC or event streams) and at least [`MIN_BYTES`].
pub type Compressible = And<DefaultPredicate, SizeAbove>;

/// tower-http's compression layer: brotli or gzip at a speed-minded level.
fn layer() -> CompressionLayer<Compressible> {
    CompressionLayer::new()
        .br(true)
        .gzip(true)
        .no_deflate()
        .no_zstd()
        .quality(CompressionLevel::Precise(LEVEL))
        .compress_when(predicate())
}

fn predicate() -> Compressible {
    DefaultPredicate::new().and(SizeAbove::new(MIN_BYTES))
}

static LAYER: LazyLock<CompressionLayer<Compressible>> = LazyLock::new(layer);
static PREDICATE: LazyLock<Compressible> = LazyLock::new(predicate);

/// Whether [`layer`] would touch `response` (tower-http's own test): else it passes the
/// response through unchanged, whatever the request accepts. The size comes first: it is the
/// cheapest test and the one most hits of small bodies fail.
fn layer_would_touch(response: &Response) -> bool {
    let headers = response.headers();
    SizeAbove::new(MIN_BYTES).should_compress(response)
        && !headers.contains_key(header::CONTENT_ENCODING)
        && !headers.contains_key(header::CONTENT_RANGE)
        && PREDICATE.should_compress(response)
}

/// Whether [`layer`] would compress a response with `headers` and `body`: what the response
/// cache asks once per entry before it serves the entry compressed itself.
pub fn compressible(headers: &HeaderMap, body: &Bytes) -> bool {
    let mut response = Response::new(Body::from(body.clone()));
    *response.headers_mut() = headers.clone();
    layer_would_touch(&response)
}

/// A content coding the origin compresses with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Coding {
    /// `gzip`.
    Gzip,
    /// `br` (brotli), preferred over gzip at equal weight.
    Brotli,
}

impl Coding {
    /// The coding's `Content-Encoding` token.
    pub fn token(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Gzip => "gzip",
            Self::Brotli => "br",
        })
    }

    /// `body` compressed, at the level [`layer`] uses; `None` if the encoder failed.
    pub fn encode(self, body: &[u8]) -> Option<Bytes> {
        let mut out = Vec::with_capacity(body.len() / 4 + 64);
        match self {
            Self::Brotli => {
                let params = brotli::enc::BrotliEncoderParams {
                    quality: LEVEL,
                    ..Default::default()
                };
                brotli::BrotliCompress(&mut &body[..], &mut out, &params).ok()?;
            }
            Self::Gzip => {
                let level = flate2::Compression::new(LEVEL.unsigned_abs());
                let mut encoder = flate2::write::GzEncoder::new(&mut out, level);
                encoder.write_all(body).ok()?;
                encoder.finish().ok()?;
            }
        }
        Some(out.into())
    }
}

/// The compression level: 4 compresses text nearly as well as the defaults at a fraction of
/// the CPU.
const LEVEL: i32 = 4;

/// The coding a request's `Accept-Encoding` values prefer, negotiated as the edge does
/// ([`shared::negotiate::content_encoding`], RFC 9110 §12.5.3): the highest q-value wins,
/// brotli before gzip before identity at equal weight, `q=0` refuses; `None` means the body
/// goes as it is.
pub fn negotiate<'a>(accepted: impl IntoIterator<Item = &'a HeaderValue>) -> Option<Coding> {
    let mut values = accepted.into_iter().filter_map(|v| v.to_str().ok());
    let first = values.next()?;
    let coding = match values.next() {
        None => content_encoding(Some(first)),
        // Several header lines are one list (RFC 9110 §5.3).
        Some(second) => {
            let joined = [first, second]
                .into_iter()
                .chain(values)
                .collect::<Vec<_>>();
            content_encoding(Some(&joined.join(",")))
        }
    };
    match coding? {
        ContentEncoding::Brotli => Some(Coding::Brotli),
        ContentEncoding::Gzip => Some(Coding::Gzip),
        ContentEncoding::Identity => None,
    }
}

/// Wraps a service in [`Compress`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CompressLayer;

impl<S> Layer<S> for CompressLayer {
    type Service = Compress<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Compress { inner }
    }
}

/// [`layer`] around `S`, skipped for responses it would leave unchanged.
#[derive(Debug, Clone)]
pub struct Compress<S> {
    inner: S,
}

impl<S: Inner> Service<Request> for Compress<S> {
    type Response = Response;
    type Error = Infallible;
    type Future = CompressFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let accepted = request
            .headers()
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .cloned()
            .collect();
        CompressFuture::Serving {
            inner: self.inner.call(request),
            accepted,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of the service inside, compressed when the layer would compress it.
    #[project = Step]
    pub enum CompressFuture<F> {
        /// The service inside is answering; the request's `Accept-Encoding` values are kept.
        Serving { #[pin] inner: F, accepted: Vec<HeaderValue> },
        /// The layer is compressing the answer.
        Compressing { compressed: BoxFuture<'static, Response> },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for CompressFuture<F> {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let compressed = match self.as_mut().project() {
                Step::Serving { inner, accepted } => {
                    let Ok(response) = futures::ready!(inner.poll(cx));
                    if !layer_would_touch(&response) {
                        return Poll::Ready(Ok(response));
                    }
                    compress(response, std::mem::take(accepted))
                }
                Step::Compressing { compressed } => return compressed.as_mut().poll(cx).map(Ok),
            };
            self.set(CompressFuture::Compressing { compressed });
        }
    }
}

/// `response` through [`layer`], as negotiated by `accepted` (the request's
/// `Accept-Encoding` values).
fn compress(response: Response, accepted: Vec<HeaderValue>) -> BoxFuture<'static, Response> {
    let mut request = Request::new(Body::empty());
    for value in accepted {
        request.headers_mut().append(header::ACCEPT_ENCODING, value);
    }
    let service = LAYER.layer(Answered(Some(response)));
    Box::pin(async move {
        let Ok(response) = service.oneshot(request).await;
        finish(response)
    })
}

/// A service whose one answer is already made.
struct Answered(Option<Response>);

impl Service<Request> for Answered {
    type Response = Response;
    type Error = Infallible;
    type Future = Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request) -> Self::Future {
        ready(Ok(self.0.take().unwrap_or_default()))
    }
}

/// A compressed response from [`layer`] with axum's body type, its `ETag` weakened.
fn finish(response: Response<CompressionBody<Body>>) -> Response {
    let mut response = response.map(Body::new);
    if response.headers().contains_key(header::CONTENT_ENCODING) {
        weaken_etag(response.headers_mut());
    }
    response
}

/// Makes a strong `ETag` weak: a compressed body is another representation of the resource.
pub fn weaken_etag(headers: &mut HeaderMap) {
    let weak = headers
        .get(header::ETAG)
        .filter(|etag| etag.as_bytes().starts_with(b"\""))
        .and_then(|etag| HeaderValue::from_bytes(&[b"W/", etag.as_bytes()].concat()).ok());
    if let Some(weak) = weak {
        headers.insert(header::ETAG, weak);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    /// What [`Compress`] answers for a request accepting `accept` when the service inside
    /// answers `bytes` bytes of `content_type` with a strong ETag and `extra` headers.
    async fn answer(
        accept: Option<&str>,
        content_type: &'static str,
        bytes: usize,
        extra: &[(header::HeaderName, &'static str)],
    ) -> (HeaderMap, usize) {
        let extra: Vec<_> = extra.to_vec();
        let inner = tower::service_fn(move |_request: Request| {
            let mut response = Response::new(Body::from("a".repeat(bytes)));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
            for (name, value) in &extra {
                headers.insert(name.clone(), HeaderValue::from_static(value));
            }
            ready(Ok::<_, Infallible>(response))
        });
        let mut request = Request::new(Body::empty());
        if let Some(accept) = accept {
            let value = HeaderValue::from_str(accept).expect("ascii");
            request.headers_mut().insert(header::ACCEPT_ENCODING, value);
        }
        let Ok(response) = CompressLayer.layer(inner).oneshot(request).await;
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        (parts.headers, body.len())
    }

    #[test]
    fn negotiation_follows_q_values_and_prefers_brotli() {
        let cases = [
            ("gzip, deflate, br", Some(Coding::Brotli)),
            ("gzip", Some(Coding::Gzip)),
            ("x-gzip;q=0.8, identity;q=0.5", Some(Coding::Gzip)),
            ("br;q=0.5, gzip;q=0.6", Some(Coding::Gzip)),
            ("BR;Q=1", Some(Coding::Brotli)),
            ("identity", None),
            ("identity;q=1, br;q=0.9", None),
            ("br;q=0, gzip;q=0", None),
            ("br;q=2, gzip;q=0.1", Some(Coding::Gzip)),
            ("br;q=0.0001", None),
            ("deflate, zstd", None),
            ("", None),
        ];
        for (accept, expected) in cases {
            let value = HeaderValue::from_static(accept);
            assert_eq!(negotiate([&value]), expected, "{accept}");
        }
        let values = [
            HeaderValue::from_static("gzip;q=0.5"),
            HeaderValue::from_static("br;q=0.4"),
        ];
        assert_eq!(negotiate(&values), Some(Coding::Gzip));
    }

    #[test]
    fn encoded_bodies_decode_to_the_original() {
        let text = "task tracker ".repeat(500);
        let brotli = Coding::Brotli.encode(text.as_bytes()).expect("encodes");
        let mut decoded = Vec::new();
        brotli::BrotliDecompress(&mut &brotli[..], &mut decoded).expect("decodes");
        assert_eq!(decoded, text.as_bytes());
        let gzip = Coding::Gzip.encode(text.as_bytes()).expect("encodes");
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut decoded)
            .expect("decodes");
        assert_eq!(decoded, text.as_bytes());
        assert!(brotli.len() * 10 < text.len() && gzip.len() * 10 < text.len());
    }

    #[tokio::test]
    async fn large_text_is_compressed_with_a_weak_etag() {
        let (headers, len) = answer(Some("gzip, br"), "application/json", 4096, &[]).await;
        assert_eq!(headers[header::CONTENT_ENCODING], "br");
        assert_eq!(headers[header::VARY], "accept-encoding");
        assert_eq!(headers[header::ETAG], "W/\"v1\"");
        assert!(len < 100, "{len} bytes");
    }

    #[tokio::test]
    async fn large_text_for_a_client_without_encodings_still_varies() {
        let (headers, len) = answer(None, "text/html", 4096, &[]).await;
        assert!(headers.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(headers[header::VARY], "accept-encoding");
        assert_eq!(headers[header::ETAG], "\"v1\"");
        assert_eq!(len, 4096);
    }

    #[tokio::test]
    async fn small_bodies_images_and_encoded_bodies_pass_unchanged() {
        let encoded = [(header::CONTENT_ENCODING, "gzip")];
        for (content_type, bytes, extra) in [
            ("application/json", 1000, &[][..]),
            ("image/png", 4096, &[][..]),
            ("application/json", 4096, &encoded[..]),
        ] {
            let (headers, len) = answer(Some("br"), content_type, bytes, extra).await;
            assert!(
                headers.get(header::VARY).is_none(),
                "{content_type} {bytes}"
            );
            assert_eq!(headers[header::ETAG], "\"v1\"", "{content_type} {bytes}");
            assert_eq!(len, bytes);
        }
    }
}
