//! Canonical cache keys.
//!
//! A key is built from the method, the host and the path-and-query of a request and nothing else:
//! no request header can reach it, so `X-Forwarded-Host`, `X-Original-URL` and friends can never
//! poison a cache entry. Canonicalization follows RFC 3986 §6.2.2:
//!
//! 1. the host is lower-cased, a trailing dot and a default port (80, 443) are dropped;
//! 2. percent-encodings are normalized: hex digits upper-cased, unreserved characters decoded,
//!    characters that are not allowed raw encoded, reserved characters never decoded (`%2F` stays);
//! 3. dot-segments are removed (§5.2.4);
//! 4. query parameters named in [`KeyConfig::ignored_params`] (tracking parameters) are dropped,
//!    the rest sorted by name (stable, so repeated parameters keep their order), and an empty query
//!    is removed; the fragment is dropped.
//!
//! Variant dimensions (the negotiated image format and content coding) are appended explicitly
//! with [`CacheKey::with_image_format`] and [`CacheKey::with_encoding`];
//! [`crate::request_key`] derives a whole request's key, variant included, from its headers.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::image::ImageFormat;
use crate::negotiate::ContentEncoding;

/// Separates variant dimensions from the URL part of a key. Canonical URLs always carry `|` as
/// `%7C`, so a variant suffix can never collide with a request's own query.
const VARIANT_SEPARATOR: char = '|';

/// Which query parameters never reach the cache key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Parameter names dropped from keys, compared case-insensitively. A trailing `*` makes the
    /// entry a prefix (`utm_*`).
    pub ignored_params: Vec<String>,
}

impl Default for KeyConfig {
    fn default() -> Self {
        let names = [
            "utm_*", "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "mc_cid", "mc_eid",
            "_ga", "_gl", "yclid", "igshid", "twclid", "ttclid",
        ];
        Self {
            ignored_params: names.iter().map(|name| (*name).to_owned()).collect(),
        }
    }
}

impl KeyConfig {
    /// Whether the parameter `name` (already percent-normalized) is left out of keys.
    pub fn ignores(&self, name: &str) -> bool {
        self.ignored_params
            .iter()
            .any(|entry| match entry.strip_suffix('*') {
                Some(prefix) => {
                    name.len() >= prefix.len()
                        && name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
                }
                None => name.eq_ignore_ascii_case(entry),
            })
    }
}

/// Why a request has no cache key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The host is empty or holds characters a host name cannot hold.
    #[error("invalid host {0:?}")]
    InvalidHost(String),
    /// The request target is not in origin-form (it must start with `/`).
    #[error("request target must start with '/': {0:?}")]
    InvalidTarget(String),
}

/// The canonical identity of a cached response.
///
/// `Display` gives the full key (`GET https://host/path?query|fmt=avif|enc=br`); [`Self::cache_url`]
/// gives the same without the method, as the URL under which the Workers Cache API stores it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    method: String,
    host: String,
    path: String,
    query: Option<String>,
    image_format: Option<ImageFormat>,
    encoding: Option<ContentEncoding>,
}

impl CacheKey {
    /// The key of a request. `host` comes from the request URL or `Host` header, never from a
    /// forwarding header; `target` is the path and query (a fragment is ignored). `HEAD` shares
    /// the key of `GET`, since a cached `GET` response answers both.
    pub fn new(
        method: &str,
        host: &str,
        target: &str,
        config: &KeyConfig,
    ) -> Result<Self, KeyError> {
        let host = canonical_host(host)?;
        let target = target.split('#').next().unwrap_or_default();
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        if !path.starts_with('/') {
            return Err(KeyError::InvalidTarget(target.to_owned()));
        }
        let method = method.to_ascii_uppercase();
        Ok(Self {
            method: if method == "HEAD" {
                "GET".into()
            } else {
                method
            },
            host,
            path: remove_dot_segments(&normalize_percent(path, is_path_char)),
            query: query.and_then(|query| canonical_query(query, config)),
            image_format: None,
            encoding: None,
        })
    }

    /// The same key for the variant encoded as `format`.
    #[must_use]
    pub fn with_image_format(mut self, format: ImageFormat) -> Self {
        self.image_format = Some(format);
        self
    }

    /// The same key for the variant compressed with `encoding`.
    #[must_use]
    pub fn with_encoding(mut self, encoding: ContentEncoding) -> Self {
        self.encoding = Some(encoding);
        self
    }

    /// The method the key was made for (`HEAD` appears as `GET`).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The canonical host (lower case, no default port).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The canonical path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The negotiated image format the key is for, if any.
    pub fn image_format(&self) -> Option<ImageFormat> {
        self.image_format
    }

    /// The canonical query, if any parameter survived.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The canonical path and query, as forwarded to an origin.
    pub fn target(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }

    /// The key as an `https` URL, variants appended after `|` in the query part.
    pub fn cache_url(&self) -> String {
        let mut url = format!("https://{}{}", self.host, self.target());
        let variants = self.variant_suffix();
        if !variants.is_empty() {
            if self.query.is_none() {
                url.push('?');
            }
            url.push_str(&variants);
        }
        url
    }

    fn variant_suffix(&self) -> String {
        let mut suffix = String::new();
        if let Some(format) = self.image_format {
            suffix.push(VARIANT_SEPARATOR);
            suffix.push_str("fmt=");
            suffix.push_str(format.as_str());
        }
        if let Some(encoding) = self.encoding {
            suffix.push(VARIANT_SEPARATOR);
            suffix.push_str("enc=");
            suffix.push_str(encoding.as_str());
        }
        suffix
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.cache_url())
    }
}

fn canonical_host(host: &str) -> Result<String, KeyError> {
    let lower = host.trim().to_ascii_lowercase();
    let lower = lower.trim_end_matches('.');
    let (name, port) = split_port(lower);
    let name = name.trim_end_matches('.');
    // A colon is only allowed inside a bracketed IPv6 literal.
    let valid_name = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => {
            !v6.is_empty()
                && v6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        None => {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        }
    };
    let valid_port = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !valid_name || !valid_port {
        return Err(KeyError::InvalidHost(host.to_owned()));
    }
    Ok(match port {
        Some("80" | "443") | None => name.to_owned(),
        Some(port) => format!("{name}:{port}"),
    })
}

/// Splits `host:port`, leaving IPv6 literals (`[::1]`) whole.
fn split_port(host: &str) -> (&str, Option<&str>) {
    let port_start = match host.rfind(']') {
        Some(end) => host[end..].find(':').map(|i| end + i),
        None => host.rfind(':'),
    };
    match port_start {
        Some(i) => (&host[..i], Some(&host[i + 1..])),
        None => (host, None),
    }
}

fn canonical_query(query: &str, config: &KeyConfig) -> Option<String> {
    let mut params: Vec<(String, Option<String>)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (
                normalize_percent(name, is_query_char),
                Some(normalize_percent(value, is_query_char)),
            ),
            None => (normalize_percent(pair, is_query_char), None),
        })
        .filter(|(name, _)| !config.ignores(name))
        .collect();
    if params.is_empty() {
        return None;
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let pairs: Vec<String> = params
        .into_iter()
        .map(|(name, value)| match value {
            Some(value) => format!("{name}={value}"),
            None => name,
        })
        .collect();
    Some(pairs.join("&"))
}

/// RFC 3986 `unreserved`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `pchar` plus `/`: what a path may hold without percent-encoding.
fn is_path_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

/// What a query parameter name or value may hold raw (`&` never reaches here: it separates pairs).
fn is_query_char(b: u8) -> bool {
    is_path_char(b) || b == b'?'
}

/// Normalizes percent-encoding (RFC 3986 §6.2.2.2): `%xx` of an unreserved character is decoded,
/// other `%xx` get upper-case hex, a stray `%` becomes `%25`, and any byte not allowed raw is
/// encoded. Reserved characters are never decoded, so the meaning of the component is preserved.
pub fn normalize_percent(input: &str, allowed_raw: fn(u8) -> bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let push_encoded = |out: &mut String, b: u8| {
        out.push('%');
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xF)] as char);
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escaped = (b == b'%')
            .then(|| {
                Some((
                    hex_value(*bytes.get(i + 1)?)?,
                    hex_value(*bytes.get(i + 2)?)?,
                ))
            })
            .flatten();
        match escaped {
            Some((high, low)) => {
                let decoded = high << 4 | low;
                if is_unreserved(decoded) {
                    out.push(decoded as char);
                } else {
                    push_encoded(&mut out, decoded);
                }
                i += 3;
            }
            None => {
                if b != b'%' && allowed_raw(b) {
                    out.push(b as char);
                } else {
                    push_encoded(&mut out, b);
                }
                i += 1;
            }
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// RFC 3986 §5.2.4 `remove_dot_segments` for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let last = segments.len() - 1;
    let mut output: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.into_iter().enumerate() {
        match segment {
            "." => {}
            ".." => {
                output.pop();
            }
            other => {
                output.push(other);
                continue;
            }
        }
        // A path ending in `.` or `..` names a directory: keep its trailing slash.
        if i == last {
            output.push("");
        }
    }
    format!("/{}", output.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(target: &str) -> String {
        CacheKey::new("GET", "Example.COM", target, &KeyConfig::default())
            .expect("valid request")
            .to_string()
    }

    #[test]
    fn fixed_vectors_are_stable_across_targets() {
        // These strings are the contract between wasm32 and native builds: never change them
        // without bumping every cached entry.
        let vectors = [
            ("/", "GET https://example.com/"),
            ("/a?b=2&a=1", "GET https://example.com/a?a=1&b=2"),
            (
                "/a?utm_source=x&fbclid=y&gclid=z&q=1",
                "GET https://example.com/a?q=1",
            ),
            ("/a?UTM_Campaign=x", "GET https://example.com/a"),
            ("/a?", "GET https://example.com/a"),
            ("/a?&&", "GET https://example.com/a"),
            ("/%7euser/%2fx", "GET https://example.com/~user/%2Fx"),
            ("/a/b/../c/./d", "GET https://example.com/a/c/d"),
            ("/a/%2E%2E/b", "GET https://example.com/b"),
            ("/caf\u{e9}", "GET https://example.com/caf%C3%A9"),
            ("/a b|c", "GET https://example.com/a%20b%7Cc"),
            ("/100%", "GET https://example.com/100%25"),
            ("/x?a=2&a=1", "GET https://example.com/x?a=2&a=1"),
            ("/x?k=a=b", "GET https://example.com/x?k=a=b"),
            ("/x#frag", "GET https://example.com/x"),
            ("", "GET https://example.com/"),
        ];
        for (target, expected) in vectors {
            assert_eq!(key(target), expected, "target {target:?}");
        }
    }

    #[test]
    fn rfc3986_dot_segment_examples() {
        // RFC 3986 §5.4 normal examples, resolved paths only.
        assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
        assert_eq!(remove_dot_segments("/mid/content=5/../6"), "/mid/6");
        assert_eq!(remove_dot_segments("/a/b/.."), "/a/");
        assert_eq!(remove_dot_segments("/a/b/."), "/a/b/");
        assert_eq!(remove_dot_segments("/../../g"), "/g");
        assert_eq!(remove_dot_segments("/a//b"), "/a//b");
        assert_eq!(remove_dot_segments("/..//"), "//");
        assert_eq!(remove_dot_segments("//x"), "//x");
    }

    #[test]
    fn host_is_canonical() {
        let config = KeyConfig::default();
        let a = CacheKey::new("GET", "EXAMPLE.com.:443", "/", &config).expect("valid");
        let b = CacheKey::new("GET", "example.com", "/", &config).expect("valid");
        assert_eq!(a, b);
        let port = CacheKey::new("GET", "example.com:8443", "/", &config).expect("valid");
        assert_eq!(port.host(), "example.com:8443");
        let v6 = CacheKey::new("GET", "[::1]:8080", "/", &config).expect("valid");
        assert_eq!(v6.host(), "[::1]:8080");
        assert!(CacheKey::new("GET", "evil.com/x", "/", &config).is_err());
        assert!(CacheKey::new("GET", "", "/", &config).is_err());
        assert!(CacheKey::new("GET", "a.com:x", "/", &config).is_err());
        // Found by fuzzing: an unbracketed colon made a host that did not re-parse.
        assert!(CacheKey::new("GET", "::80", "/", &config).is_err());
        assert!(CacheKey::new("GET", "[::1", "/", &config).is_err());
        assert!(CacheKey::new("GET", "[]", "/", &config).is_err());
    }

    #[test]
    fn head_shares_the_get_key_and_target_must_be_origin_form() {
        let config = KeyConfig::default();
        let head = CacheKey::new("head", "a.com", "/x", &config).expect("valid");
        let get = CacheKey::new("GET", "a.com", "/x", &config).expect("valid");
        assert_eq!(head, get);
        let err = CacheKey::new("GET", "a.com", "http://b.com/x", &config);
        assert!(matches!(err, Err(KeyError::InvalidTarget(_))));
    }

    #[test]
    fn variants_are_appended_in_a_fixed_order() {
        let config = KeyConfig::default();
        let base = CacheKey::new("GET", "a.com", "/i.jpg", &config).expect("valid");
        let one = base
            .clone()
            .with_encoding(ContentEncoding::Brotli)
            .with_image_format(ImageFormat::Avif);
        let two = base
            .clone()
            .with_image_format(ImageFormat::Avif)
            .with_encoding(ContentEncoding::Brotli);
        assert_eq!(one, two);
        assert_eq!(one.cache_url(), "https://a.com/i.jpg?|fmt=avif|enc=br");
        let with_query = CacheKey::new("GET", "a.com", "/i.jpg?w=1", &config)
            .expect("valid")
            .with_image_format(ImageFormat::Webp);
        assert_eq!(with_query.cache_url(), "https://a.com/i.jpg?w=1|fmt=webp");
        // A request cannot forge a variant: its own `|` is encoded.
        let forged = CacheKey::new("GET", "a.com", "/i.jpg?w=1|fmt=webp", &config).expect("valid");
        assert_ne!(forged.cache_url(), with_query.cache_url());
    }

    #[test]
    fn custom_ignored_params() {
        let config = KeyConfig {
            ignored_params: vec!["ref".into(), "session_*".into()],
        };
        let k = CacheKey::new("GET", "a.com", "/?ref=x&session_id=1&utm_source=y", &config)
            .expect("valid");
        assert_eq!(k.query(), Some("utm_source=y"));
    }
}
