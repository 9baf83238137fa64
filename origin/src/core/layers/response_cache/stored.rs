//! How a response is stored: its status, route, head and body in one buffer, sliced (not
//! copied) when read, so a hit costs no allocation per header. A URL whose responses vary holds
//! a [`Variants`] marker instead.

use std::sync::{Arc, OnceLock};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use bytes::Bytes;

use super::variants::Variants;
use crate::core::layers::compression::{self, Coding};
use crate::core::route::RouteTemplate;

/// The first byte of a stored response, naming its layout.
const FORMAT: u8 = 3;

/// The head line carrying the route template.
const ROUTE_LINE: &[u8] = b":route: ";
/// The head line carrying the upstream's `Surrogate-Control` (never sent on).
const SURROGATE_LINE: &[u8] = b":surrogate-control: ";

/// What a stored response keeps beside its head and body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    /// The route template that answered.
    pub route: Option<&'a RouteTemplate>,
    /// The upstream's `Surrogate-Control`, to judge the response again after a `304`.
    pub surrogate: Option<&'a str>,
}

/// Marks a response whose headers the policy already stamped.
#[derive(Debug, Clone, Copy)]
pub struct Stamped;

/// What a cache entry holds.
pub enum Value {
    /// A response.
    Response(Box<Stored>),
    /// The marker of a URL whose responses vary.
    Variants(Variants),
}

/// A stored response, decoded.
pub struct Stored {
    pub status: StatusCode,
    pub route: Option<RouteTemplate>,
    /// The upstream's `Surrogate-Control`.
    pub surrogate: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Whether the compression layer would compress the body.
    pub compressible: bool,
    /// The body in each [`Coding`], made when first asked for (`None`: the encoder failed, or
    /// its output was no smaller than the body, which then goes as it is).
    encoded: [OnceLock<Option<Bytes>>; 2],
}

impl Stored {
    /// The body in `coding`, compressed on the first request for it.
    pub fn encoded(&self, coding: Coding) -> Option<&Bytes> {
        let slot = &self.encoded[coding as usize];
        slot.get_or_init(|| {
            coding
                .encode(&self.body)
                .filter(|encoded| encoded.len() < self.body.len())
        })
        .as_ref()
    }
}

/// A stored response: the format byte, the status (2 bytes), the length of the head (4 bytes),
/// the head as `name: value\r\n` lines, then the body.
pub fn encode(
    status: StatusCode,
    extras: Extras<'_>,
    headers: &[(&HeaderName, &HeaderValue)],
    body: &[u8],
) -> Bytes {
    let mut head = Vec::with_capacity(headers.len() * 48);
    // Pseudo-headers no real header name can collide with.
    let pseudo = [
        (ROUTE_LINE, extras.route.map(|route| route.0.as_bytes())),
        (SURROGATE_LINE, extras.surrogate.map(str::as_bytes)),
    ];
    for (line, value) in pseudo {
        if let Some(value) = value.filter(|v| !v.contains(&b'\n')) {
            head.extend_from_slice(line);
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
    }
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    let mut out = Vec::with_capacity(7 + head.len() + body.len());
    out.push(FORMAT);
    out.extend_from_slice(&status.as_u16().to_be_bytes());
    out.extend_from_slice(&u32::try_from(head.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(body);
    Bytes::from(out)
}

/// Reads a cache entry: a response, or a marker of variants.
pub fn decode(value: &Bytes) -> Option<Value> {
    match value.first() {
        Some(&FORMAT) => decode_response(value).map(|stored| Value::Response(Box::new(stored))),
        Some(&super::variants::FORMAT) => Variants::decode(value).map(Value::Variants),
        _ => None,
    }
}

fn decode_response(value: &Bytes) -> Option<Stored> {
    // Decoded once per cache entry (see `Cached::decoded`), so plainness beats speed here.
    let status =
        StatusCode::from_u16(u16::from_be_bytes(value.get(1..3)?.try_into().ok()?)).ok()?;
    let length = u32::from_be_bytes(value.get(3..7)?.try_into().ok()?) as usize;
    let head = value.slice(7..7usize.checked_add(length)?.min(value.len()));
    let body = value.slice(7 + head.len()..);
    let mut headers = HeaderMap::with_capacity(16);
    let (mut route, mut surrogate) = (None, None);
    let mut rest = &head[..];
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let line = &rest[..end];
        if let Some(template) = line.strip_prefix(ROUTE_LINE) {
            let template = std::str::from_utf8(template).ok()?;
            route = Some(RouteTemplate(Arc::from(template)));
            rest = &rest[end + 2..];
            continue;
        }
        if let Some(directives) = line.strip_prefix(SURROGATE_LINE) {
            surrogate = Some(String::from_utf8_lossy(directives).into_owned());
            rest = &rest[end + 2..];
            continue;
        }
        let colon = line.iter().position(|b| *b == b':')?;
        let name = HeaderName::from_bytes(&line[..colon]).ok()?;
        let start = head.len() - rest.len() + colon + 2;
        let value = head.slice(start..start + (end - colon - 2));
        headers.append(name, HeaderValue::from_maybe_shared(value).ok()?);
        rest = &rest[end + 2..];
    }
    Some(Stored {
        status,
        route,
        surrogate,
        compressible: compression::compressible(&headers, &body),
        headers,
        body,
        encoded: Default::default(),
    })
}
