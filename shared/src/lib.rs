//! The contract between Rampart's two tiers.
//!
//! The edge (a Cloudflare Worker compiled to wasm32) and the origin (an axum server) both link this
//! crate, so they compute byte-identical cache keys and identical caching decisions from the same
//! request. Everything here is pure: no I/O, no clocks (the current time is passed in as Unix
//! seconds), no async runtime, so it builds for `wasm32-unknown-unknown` and natively alike.
//!
//! | module | what it decides |
//! | --- | --- |
//! | [`key`] | the canonical cache key of a request, plus its negotiated variant |
//! | [`request_key`] | a request's key from its method, target and headers: which headers are keyed |
//! | [`policy`] | which route rule applies, and whether the request bypasses caches |
//! | [`cache_control`] | `Cache-Control` / `CDN-Cache-Control` parsing and emission (RFC 9111, 5861, 9213) |
//! | [`freshness`] | storability, freshness lifetime, current age, and reuse for a request's directives (RFC 9111) |
//! | [`http_date`] | HTTP dates in their three forms (RFC 9110 §5.6.7) |
//! | [`vary`] | secondary keys from `Vary` (RFC 9111 §4.1) |
//! | [`range`] | byte ranges served from a stored response (RFC 9110 §14) |
//! | [`validators`] | entity tags and conditional requests (RFC 9110 §8.8, §13) |
//! | [`cache_status`] | the `Cache-Status` response header (RFC 9211) |
//! | [`error_body`] | the error body clients get from either tier, and every stable error code |
//! | [`negotiate`] | image format from `Accept`, content coding from `Accept-Encoding` |
//! | [`security`] | the security response headers |
//! | [`image`] | `/cdn-cgi/image/<options>/<source>` URLs |
//! | [`rate_limit`] | the rate-limit tiers |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache_control;
pub mod cache_status;
pub mod duration;
pub mod error_body;
pub mod freshness;
pub mod http_date;
pub mod image;
pub mod image_signing;
pub mod key;
pub mod negotiate;
pub mod policy;
pub mod range;
pub mod rate_limit;
pub mod request_key;
pub mod security;
mod structured;
pub mod validators;
pub mod vary;
