//! The request id: the edge's `X-Request-Id` (or any client's) when it is a sane token, else a
//! new one. Every log line about the request carries it, and the response sends it back, so an
//! operator can follow one request from the edge's log to the origin's.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};

/// The header carrying the id, in requests and responses.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's `X-Request-Id`: the edge's (or any client's) when it is a sane token, else a
/// new one, written back into the request so that the application sees it too.
pub fn take_or_make(request: &mut Request) -> HeaderValue {
    let given = request.headers().get(&REQUEST_ID).filter(|id| {
        let bytes = id.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 128
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    });
    if let Some(id) = given {
        return id.clone();
    }
    let id = new_id();
    request.headers_mut().insert(REQUEST_ID.clone(), id.clone());
    id
}

/// 16 random hex digits.
fn new_id() -> HeaderValue {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let random = fastrand::u64(..);
    let mut text = [0u8; 16];
    for (i, digit) in text.iter_mut().enumerate() {
        *digit = DIGITS[((random >> (60 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("0"))
}
