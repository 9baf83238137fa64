//! The key a request's response is stored under, from the whole request: which of its headers
//! reach the key, and how.
//!
//! Two request fields are keyed ([`KEYED_HEADERS`]):
//!
//! | header | what it adds |
//! | --- | --- |
//! | `Host` | the key's host, canonical ([`crate::key`]); a runtime that gives the request's URL passes its authority |
//! | `Accept` | on a path whose images are negotiated, the format it selects ([`crate::negotiate::preferred_image_format`]), as the key's variant |
//!
//! No other header reaches a key, so none can poison an entry or split one: not forwarding
//! headers (`X-Forwarded-Host`, `X-Original-URL`), not cookies or `Authorization` (the policy
//! decides whether they bypass caches, never which entry is used), not `User-Agent`, and not
//! `Accept-Encoding` (one stored copy serves every coding: a brotli copy is decoded for clients
//! that do not take br). Responses that vary on other headers say so with `Vary`, which selects
//! among variants stored under one key ([`crate::vary`]).

use crate::image::{FormatChoice, ImageFormat, ImageRequest, PREFIX};
use crate::key::{CacheKey, KeyError};
use crate::negotiate::preferred_image_format;
use crate::policy::Policy;

/// The request headers a key depends on, lower-case.
pub const KEYED_HEADERS: [&str; 2] = ["host", "accept"];

/// The key of a request with `method` and `target` (path and query), whose headers `header`
/// looks up by lower-case name. Reads (`GET`, `HEAD`) of a negotiated image carry the format
/// their `Accept` selects; nothing else is read from the headers but the `Host`.
pub fn request_key(
    method: &str,
    target: &str,
    header: impl Fn(&str) -> Option<String>,
    policy: &Policy,
) -> Result<CacheKey, KeyError> {
    let host = header("host").unwrap_or_default();
    let key = CacheKey::new(method, &host, target, policy.keys())?;
    if key.method() != "GET" {
        return Ok(key);
    }
    let accept = header("accept");
    Ok(
        match negotiated_format(key.path(), accept.as_deref(), policy) {
            Some(format) => key.with_image_format(format),
            None => key,
        },
    )
}

/// The format a read of `path` is served in to a client with `accept`, when the path's images
/// are negotiated: a `/cdn-cgi/image/` URL with `format=auto` (or no format), or a path whose
/// route transforms images (its originals re-encoded for clients that take a modern format).
pub fn negotiated_format(path: &str, accept: Option<&str>, policy: &Policy) -> Option<ImageFormat> {
    let format = preferred_image_format(accept)?;
    let negotiated = if path.starts_with(PREFIX) {
        ImageRequest::parse(path).is_ok_and(|ask| ask.format == FormatChoice::Auto)
    } else {
        policy
            .route(path)
            .is_some_and(|(rule, _)| rule.policy.image_transform)
    };
    negotiated.then_some(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";

    fn key(method: &str, target: &str, headers: &[(&str, &str)]) -> String {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| (*v).to_owned())
        };
        request_key(method, target, header, &Policy::default())
            .expect("a valid request")
            .to_string()
    }

    #[test]
    fn fixed_vectors() {
        let host = ("host", "Example.COM");
        let cases = [
            ("/tasks/1", CHROME, "GET https://example.com/tasks/1"),
            (
                "/images/a.jpg",
                CHROME,
                "GET https://example.com/images/a.jpg?|fmt=avif",
            ),
            (
                "/images/a.jpg",
                "image/webp,*/*",
                "GET https://example.com/images/a.jpg?|fmt=webp",
            ),
            (
                "/images/a.jpg",
                "*/*",
                "GET https://example.com/images/a.jpg",
            ),
            (
                "/cdn-cgi/image/w=100/images/a.jpg",
                CHROME,
                "GET https://example.com/cdn-cgi/image/w=100/images/a.jpg?|fmt=avif",
            ),
            (
                "/cdn-cgi/image/w=100,format=webp/images/a.jpg",
                CHROME,
                "GET https://example.com/cdn-cgi/image/w=100,format=webp/images/a.jpg",
            ),
            (
                "/cdn-cgi/image/zoom=2/images/a.jpg",
                CHROME,
                "GET https://example.com/cdn-cgi/image/zoom=2/images/a.jpg",
            ),
        ];
        for (target, accept, expected) in cases {
            assert_eq!(
                key("GET", target, &[host, ("accept", accept)]),
                expected,
                "{target} with {accept}"
            );
        }
    }

    #[test]
    fn head_shares_the_variant_and_writes_have_none() {
        let headers = [("host", "a.com"), ("accept", CHROME)];
        assert_eq!(
            key("HEAD", "/images/a.jpg", &headers),
            key("GET", "/images/a.jpg", &headers)
        );
        assert_eq!(
            key("PUT", "/images/a.jpg", &headers),
            "PUT https://a.com/images/a.jpg"
        );
    }

    #[test]
    fn a_request_without_a_host_has_no_key() {
        let header = |_: &str| None;
        let key = request_key("GET", "/", header, &Policy::default());
        assert!(matches!(key, Err(KeyError::InvalidHost(_))));
    }
}
