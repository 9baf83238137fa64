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
/// Brotli's quality (0–11), nginx's brotli module's default. On this product's pages and API
/// answers (6–16 KiB) it makes copies within 1.5% of quality 9's bytes for a twentieth of its
/// CPU, and for half of it on 300 KiB of JavaScript (README, "Compression at the edge"): the
/// Worker's CPU is what every miss pays, and a Worker's CPU time per request is limited.
const QUALITY: u32 = 6;
/// Brotli's largest window, 2^22 bytes: the format's default.
const MAX_WINDOW_BITS: u32 = 22;
/// Brotli's smallest window, 2^10 bytes.
const MIN_WINDOW_BITS: u32 = 10;

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
        lgwin: window_bits(body.len()) as i32,
        size_hint: body.len(),
        ..Default::default()
    };
    // Writing to a Vec cannot fail.
    let _ = brotli::BrotliCompress(&mut &body[..], &mut out, &params);
    out
}

/// The window for a body of `length` bytes: its size rounded up to a power of two, within
/// brotli's bounds. A window larger than the body finds no more matches, and its tables cost
/// time to clear: half of quality 6's time on a 16 KiB page.
fn window_bits(length: usize) -> u32 {
    let fits = usize::BITS - length.saturating_sub(1).leading_zeros();
    fits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
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

    #[test]
    fn the_window_covers_the_body_within_brotli_bounds() {
        assert_eq!(window_bits(0), MIN_WINDOW_BITS);
        assert_eq!(window_bits(1024), 10);
        assert_eq!(window_bits(1025), 11);
        assert_eq!(window_bits(16 * 1024), 14);
        assert_eq!(window_bits(16 * 1024 + 1), 15);
        assert_eq!(window_bits(4 << 20), 22);
        assert_eq!(window_bits(usize::MAX), MAX_WINDOW_BITS);
    }

    #[test]
    fn bodies_at_and_across_window_sizes_round_trip() {
        let line = b"<li class=\"task\"><a href=\"/tasks/17\">Fix the login form</a></li>\n";
        for length in [1024, 1025, 4096, 65_536, 65_537, (4 << 20) + 3] {
            let body: Vec<u8> = line
                .iter()
                .cycle()
                .zip(0u32..)
                .map(|(byte, i)| {
                    if i % 97 == 0 {
                        b'a' + (i % 26) as u8
                    } else {
                        *byte
                    }
                })
                .take(length)
                .collect();
            let compressed = brotli(&body);
            assert!(
                compressed.len() < body.len(),
                "{length} bytes did not shrink"
            );
            assert_eq!(decode(&compressed), Some(body), "{length} bytes");
        }
    }
}
