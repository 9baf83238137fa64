//! Responses that vary (RFC 9111 §4.1): a URL whose responses carry `Vary` holds, under its
//! own key, a marker naming the request fields they vary on; each response is stored under a
//! secondary key made of those fields' values in the request that selected it.
//!
//! A request for such a URL finds the marker first, then looks for its own variant. A write
//! that drops the URL's key drops the marker, and the next marker has a new generation, so
//! every variant stored before it is out of reach at once (they expire on their own). The
//! variant's key holds the SHA-256 of the normalised values (each byte of them kept), so that
//! no request can be served another's variant by a collision and no credential sent in a
//! varying field is written in a key.

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::time::Duration;

use crate::core::cache::{CacheOptions, Loaded};
use crate::core::layers::response_freshness::KEEP_FOR_VALIDATION;

/// The first byte of a stored marker.
pub const FORMAT: u8 = 4;

/// How long a marker is kept: a URL's fields rarely change, and a response that names other
/// fields replaces the marker at once.
const MARKER_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The fields a URL's responses vary on, and the generation of its variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variants {
    /// Lower-cased field names, sorted (`shared::vary::fields`).
    pub fields: Vec<String>,
    /// Changes whenever the marker is made anew.
    pub generation: u64,
}

/// The fields a response's `Vary` names, beyond the content coding the cache negotiates
/// itself; `None` for `Vary: *` (a response no other request may reuse). A body the upstream
/// encoded itself varies on `Accept-Encoding` too: it is only for clients that accept it.
pub fn fields_of(headers: &HeaderMap) -> Option<Vec<String>> {
    let vary = crate::core::http::header_values::joined(headers, header::VARY);
    let mut fields = match vary {
        Some(vary) => shared::vary::fields(&vary)?,
        None => Vec::new(),
    };
    let encoded = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|coding| !coding.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        fields.push("accept-encoding".to_owned());
        fields.sort();
    }
    Some(fields)
}

impl Variants {
    /// A marker for `fields`, keeping `previous`'s generation when it names the same fields.
    pub fn new(fields: Vec<String>, previous: Option<&Variants>) -> Self {
        let generation = previous
            .filter(|previous| previous.fields == fields)
            .map_or_else(|| fastrand::u64(..), |previous| previous.generation);
        Self { fields, generation }
    }

    /// The key of the variant `headers` select, under the URL's key `primary`: the secondary
    /// key's SHA-256, so that values such as credentials never appear in keys.
    pub fn key_for(&self, primary: &str, headers: &HeaderMap) -> String {
        let secondary = shared::vary::secondary_key(&self.fields, |name| raw_joined(headers, name));
        let digest = hex::encode(Sha256::digest(secondary.as_bytes()));
        format!("{primary} vary={:016x} {digest}", self.generation)
    }

    /// The marker as a value to store under the URL's key, purged by `tags`.
    pub fn loaded(&self, tags: Arc<[String]>) -> Loaded {
        Loaded {
            options: Some(CacheOptions {
                ttl: MARKER_LIFETIME,
                // Kept as long as its variants may be: a new marker keeps its generation, and
                // the variants stay found when the upstream cannot be reached.
                keep: KEEP_FOR_VALIDATION,
                stale_if_unreachable: true,
                tags,
                ..CacheOptions::default()
            }),
            ..Loaded::from(self.encode())
        }
    }

    fn encode(&self) -> Bytes {
        let mut out = vec![FORMAT];
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(self.fields.join(",").as_bytes());
        Bytes::from(out)
    }

    /// Reads what [`Self::loaded`] stored; `None` for anything else.
    pub fn decode(value: &[u8]) -> Option<Self> {
        let rest = value.strip_prefix(&[FORMAT])?;
        let generation = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        let fields = std::str::from_utf8(&rest[8..]).ok()?;
        let fields = fields
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect();
        Some(Self { fields, generation })
    }
}

/// Every field line of `name`, joined with `", "`, each byte outside visible ASCII (and `%`)
/// percent-escaped: two requests whose values differ in any byte never share a variant.
fn raw_joined(headers: &HeaderMap, name: &str) -> Option<String> {
    use std::fmt::Write;
    let mut joined: Option<String> = None;
    for value in headers.get_all(name) {
        let out = match &mut joined {
            Some(out) => {
                out.push_str(", ");
                out
            }
            None => joined.insert(String::new()),
        };
        for &b in value.as_bytes() {
            match b {
                b'%' | 0..=0x1f | 0x7f.. => {
                    let _ = write!(out, "%{b:02X}");
                }
                _ => out.push(char::from(b)),
            }
        }
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn a_marker_round_trips_and_keeps_its_generation_for_the_same_fields() {
        let first = Variants::new(vec!["accept-language".into(), "x-tenant".into()], None);
        assert_eq!(Variants::decode(&first.encode()), Some(first.clone()));
        let same = Variants::new(first.fields.clone(), Some(&first));
        assert_eq!(same.generation, first.generation);
        let other = Variants::new(vec!["x-tenant".into()], Some(&first));
        assert_ne!(other.generation, first.generation, "a new set of variants");
        assert_eq!(Variants::decode(b"\x03not a marker"), None);
    }

    #[test]
    fn a_marker_outlives_its_freshness_as_long_as_its_variants_may() {
        let marker = Variants::new(vec!["accept-language".into()], None);
        let options = marker
            .loaded(Arc::new([]))
            .options
            .expect("its own options");
        assert_eq!(options.keep, KEEP_FOR_VALIDATION);
        assert!(
            options.stale_if_unreachable,
            "its variants decide for themselves"
        );
    }

    #[test]
    fn requests_alike_in_the_named_fields_share_a_key_and_others_do_not() {
        let variants = Variants::new(vec!["accept-language".into()], None);
        let key = |pairs| variants.key_for("GET https://a/p", &headers(pairs));
        let french = key(&[("accept-language", "fr, en;q=0.5")]);
        assert_eq!(french, key(&[("accept-language", "en;q=0.5 , FR")]));
        assert_eq!(
            french,
            key(&[("accept-language", "fr"), ("accept-language", "en;q=0.5")]),
            "field lines combine"
        );
        assert_ne!(french, key(&[("accept-language", "de")]));
        assert_ne!(french, key(&[]), "absent matches only absent");
        assert_eq!(
            key(&[("user-agent", "x")]),
            key(&[]),
            "other fields do not count"
        );
        assert!(french.starts_with("GET https://a/p vary="));
        assert_eq!(french.matches(' ').count(), 3, "one line: {french}");
        let odd = HeaderValue::from_bytes(b"fr\xff").expect("obs-text");
        let other = HeaderValue::from_bytes(b"fr\xfe").expect("obs-text");
        let mut a = HeaderMap::new();
        a.insert("accept-language", odd);
        let mut b = HeaderMap::new();
        b.insert("accept-language", other);
        let (a, b) = (variants.key_for("P", &a), variants.key_for("P", &b));
        assert_ne!(a, b, "bytes beyond ASCII tell variants apart");
        assert_ne!(
            a,
            variants.key_for("P", &HeaderMap::new()),
            "and are not absence"
        );
    }

    #[test]
    fn vary_star_names_no_reusable_field_and_the_coding_is_left_out() {
        assert_eq!(fields_of(&headers(&[("vary", "*")])), None);
        assert_eq!(
            fields_of(&headers(&[
                ("vary", "X-Tenant"),
                ("content-encoding", "gzip")
            ])),
            Some(vec!["accept-encoding".to_owned(), "x-tenant".to_owned()]),
            "an encoded body is only for clients that accept its coding"
        );
        assert_eq!(
            fields_of(&headers(&[
                ("vary", "Accept-Encoding, X-Tenant"),
                ("vary", "accept")
            ])),
            Some(vec!["accept".to_owned(), "x-tenant".to_owned()])
        );
        assert_eq!(fields_of(&headers(&[])), Some(Vec::new()));
    }
}
