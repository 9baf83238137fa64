//! Brotli copies of text, made once when an entry is stored ([`crate::prepare`]) and served to
//! every later hit.
//!
//! A response marked `Content-Encoding: br` and built with `encodeBody: "manual"` reaches
//! clients that accept br byte for byte (README, "Compression at the edge"). So the edge stores
//! one brotli copy per key, and a hit costs no compression at all for the browsers that make
//! most requests. Other clients get the copy decoded here, which the runtime then compresses as
//! they accept (gzip) or not at all: the runtime would pass br on to a client that sent no
//! `Accept-Encoding`, which `curl` and many API clients do not expect.
//!
//! The Worker's `Accept-Encoding` is the runtime's own (`br, gzip`); the client's is in
//! `request.cf.clientAcceptEncoding` (empty when it sent none).

use shared::negotiate::{content_encoding, ContentEncoding};
use worker::js_sys::Reflect;
use worker::wasm_bindgen::JsValue;
use worker::{EncodeBody, Headers, Request, Response, Result};

/// Marks a stored copy the edge compressed itself: it is served as it is (`manual`).
pub const MARKER: &str = "x-rampart-precompressed";
/// Bodies smaller than this are not worth compressing.
const MIN_BYTES: usize = 1024;
/// Bodies larger than this are stored as they are: compressing them would take too much of
/// one request's CPU.
const MAX_BYTES: usize = 4 << 20;
/// Brotli's quality (0–11). A copy is compressed once and served many times, so well above
/// the 4 a response compressed on the fly affords; 11 takes several times 9's CPU for a few
/// percent fewer bytes.
const QUALITY: u32 = 9;
/// Brotli's window, 2^22 bytes: the format's default.
const WINDOW_BITS: u32 = 22;

/// Whether a body of `length` bytes with `content_type` is text worth compressing: between
/// 1 KiB and 4 MiB. Whether the edge may change it at all is [`crate::prepare`]'s to decide.
pub fn worthwhile(content_type: &str, length: usize) -> bool {
    (MIN_BYTES..=MAX_BYTES).contains(&length) && textual(content_type)
}

/// Whether a content type is text that compresses (HTML, CSS, JavaScript, JSON, XML, SVG...).
fn textual(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/javascript"
                | "application/xml"
                | "application/x-ndjson"
                | "image/svg+xml"
        )
}

/// Whether the client prefers br (its own `Accept-Encoding`, not the runtime's). A client that
/// sent none is served identity, as nginx and Varnish do.
fn client_takes_brotli(request: &Request) -> Result<bool> {
    let original = match client_accept_encoding(request) {
        Some(original) => original,
        // Outside Cloudflare's runtime (no `cf`), the header is the client's own.
        None => request
            .headers()
            .get("accept-encoding")?
            .unwrap_or_default(),
    };
    Ok(!original.trim().is_empty()
        && content_encoding(Some(&original)) == Some(ContentEncoding::Brotli))
}

/// `request.cf.clientAcceptEncoding`, where the runtime keeps the client's `Accept-Encoding`.
fn client_accept_encoding(request: &Request) -> Option<String> {
    let cf = Reflect::get(request.inner(), &JsValue::from_str("cf")).ok()?;
    if cf.is_undefined() || cf.is_null() {
        return None;
    }
    Reflect::get(&cf, &JsValue::from_str("clientAcceptEncoding"))
        .ok()?
        .as_string()
}

/// The stored brotli copy made ready for `request`'s client: as it is (`manual`) for a client
/// that takes br, decoded for any other or when `identity` is asked (byte ranges are ranges of
/// the identity body); `None` if it does not decode.
pub async fn for_client(
    mut copy: Response,
    request: &Request,
    identity: bool,
) -> Result<Option<Response>> {
    if !identity && client_takes_brotli(request)? {
        return Ok(Some(copy.with_encode_body(EncodeBody::Manual)));
    }
    let Some(decoded) = decode(&copy.bytes().await?) else {
        return Ok(None);
    };
    let headers = copy.headers().clone();
    headers.delete("content-encoding")?;
    let response = Response::from_bytes(decoded)?
        .with_status(copy.status_code())
        .with_headers(headers);
    Ok(Some(response))
}

/// A stored copy decoded for a client that does not take br, or `None` if it is not valid
/// brotli.
fn decode(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() * 4);
    brotli::BrotliDecompress(&mut &body[..], &mut out).ok()?;
    Some(out)
}

/// `body` compressed with brotli.
pub fn brotli(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() / 4);
    let params = brotli::enc::BrotliEncoderParams {
        quality: QUALITY as i32,
        lgwin: WINDOW_BITS as i32,
        ..Default::default()
    };
    // Writing to a Vec cannot fail.
    let _ = brotli::BrotliCompress(&mut &body[..], &mut out, &params);
    out
}

/// The headers of the compressed copy: `Content-Encoding: br`, `Vary: Accept-Encoding`, the
/// `ETag` weakened (the bytes differ from the origin's), no `Content-Length`, and the marker.
pub fn mark(headers: &Headers) -> Result<()> {
    headers.set("content-encoding", "br")?;
    headers.set(MARKER, "br")?;
    crate::respond::add_vary(headers, "Accept-Encoding")?;
    crate::respond::body_changed(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_types_compress_and_binary_ones_do_not() {
        for text in [
            "text/html; charset=utf-8",
            "application/json",
            "application/problem+json",
            "image/svg+xml",
            "Text/CSS",
        ] {
            assert!(textual(text), "{text}");
        }
        for binary in ["image/png", "application/octet-stream", "video/mp4", ""] {
            assert!(!textual(binary), "{binary}");
        }
    }

    #[test]
    fn brotli_round_trips() {
        let body = br#"{"tasks":[{"id":1,"title":"a task"},{"id":2,"title":"a task"}]}"#.repeat(40);
        let compressed = brotli(&body);
        assert!(compressed.len() * 10 < body.len());
        assert_eq!(decode(&compressed), Some(body));
        assert_eq!(decode(b"not brotli at all"), None);
    }
}
