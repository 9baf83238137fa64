//! Entity tags and conditional requests (RFC 9110 §8.8.3, §13.1.2, §13.1.3, §13.2.2).

use std::fmt;

use crate::freshness::parse_http_date;

/// An entity tag: `"opaque"` or `W/"opaque"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityTag {
    /// Whether the tag is weak (`W/` prefix).
    pub weak: bool,
    /// The opaque tag, without quotes.
    pub tag: String,
}

impl EntityTag {
    /// A strong tag.
    pub fn strong(tag: impl Into<String>) -> Self {
        Self {
            weak: false,
            tag: tag.into(),
        }
    }

    /// A weak tag.
    pub fn weak(tag: impl Into<String>) -> Self {
        Self {
            weak: true,
            tag: tag.into(),
        }
    }

    /// A strong tag derived from the bytes of a representation (64-bit FNV-1a, hex): stable
    /// across tiers, platforms and restarts.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        Self::strong(format!("{hash:016x}"))
    }

    /// Parses one entity tag (§8.8.3). `etagc` excludes `"`, spaces and controls.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (weak, quoted) = match text.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let tag = quoted.strip_prefix('"')?.strip_suffix('"')?;
        let valid = tag
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80);
        valid.then(|| Self {
            weak,
            tag: tag.to_owned(),
        })
    }

    /// Strong comparison (§8.8.3.2): both strong and identical.
    pub fn strong_eq(&self, other: &Self) -> bool {
        !self.weak && !other.weak && self.tag == other.tag
    }

    /// Weak comparison (§8.8.3.2): identical opaque tags, weakness ignored.
    pub fn weak_eq(&self, other: &Self) -> bool {
        self.tag == other.tag
    }
}

impl fmt::Display for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weak {
            f.write_str("W/")?;
        }
        write!(f, "\"{}\"", self.tag)
    }
}

/// Whether an `If-None-Match` field value matches `current` (§13.1.2, weak comparison). `*`
/// matches any current representation. An unparseable member never matches.
pub fn if_none_match_matches(if_none_match: &str, current: Option<&EntityTag>) -> bool {
    let Some(current) = current else {
        return false;
    };
    if if_none_match.trim() == "*" {
        return true;
    }
    split_tags(if_none_match)
        .filter_map(EntityTag::parse)
        .any(|candidate| candidate.weak_eq(current))
}

/// Splits a list of entity tags on commas outside quotes.
fn split_tags(list: &str) -> impl Iterator<Item = &str> {
    let mut rest = list;
    std::iter::from_fn(move || loop {
        if rest.trim().is_empty() {
            return None;
        }
        let mut in_quotes = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    in_quotes = !in_quotes;
                }
                c == ',' && !in_quotes
            })
            .map_or(rest.len(), |(i, _)| i);
        let item = rest[..end].trim();
        rest = rest.get(end + 1..).unwrap_or_default();
        if !item.is_empty() {
            return Some(item);
        }
    })
}

/// The request's conditional headers, as read by a cache answering from a stored response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a str>,
}

impl Conditions<'_> {
    /// Whether a `GET`/`HEAD` should be answered `304 Not Modified` from a representation with
    /// these validators (§13.2.2 steps 3–4). `If-Modified-Since` is only evaluated when
    /// `If-None-Match` is absent, and an invalid date is ignored (§13.1.3).
    pub fn not_modified(&self, etag: Option<&EntityTag>, last_modified: Option<&str>) -> bool {
        if let Some(if_none_match) = self.if_none_match {
            return if_none_match_matches(if_none_match, etag);
        }
        let since = self.if_modified_since.and_then(parse_http_date);
        let modified = last_modified.and_then(parse_http_date);
        matches!((since, modified), (Some(since), Some(modified)) if modified <= since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9110_comparison_table() {
        // §8.8.3.2 example table.
        let w1 = EntityTag::parse("W/\"1\"").expect("valid");
        let w2 = EntityTag::parse("W/\"2\"").expect("valid");
        let s1 = EntityTag::parse("\"1\"").expect("valid");
        assert!(!w1.strong_eq(&w1) && w1.weak_eq(&w1));
        assert!(!w1.strong_eq(&w2) && !w1.weak_eq(&w2));
        assert!(!w1.strong_eq(&s1) && w1.weak_eq(&s1));
        assert!(s1.strong_eq(&s1) && s1.weak_eq(&s1));
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(
            EntityTag::parse("\"xyzzy\""),
            Some(EntityTag::strong("xyzzy"))
        );
        assert_eq!(
            EntityTag::parse("W/\"xyzzy\""),
            Some(EntityTag::weak("xyzzy"))
        );
        assert_eq!(EntityTag::parse("\"\""), Some(EntityTag::strong("")));
        assert_eq!(EntityTag::parse("xyzzy"), None);
        assert_eq!(EntityTag::parse("\"a b\""), None);
        assert_eq!(EntityTag::weak("v1").to_string(), "W/\"v1\"");
        let hashed = EntityTag::from_bytes(b"hello");
        assert_eq!(hashed, EntityTag::from_bytes(b"hello"));
        assert_ne!(hashed, EntityTag::from_bytes(b"hellp"));
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let current = EntityTag::strong("abc");
        assert!(if_none_match_matches("W/\"abc\"", Some(&current)));
        assert!(if_none_match_matches("\"x\", \"abc\"", Some(&current)));
        assert!(if_none_match_matches("\"a,b\", \"abc\"", Some(&current)));
        assert!(if_none_match_matches("*", Some(&current)));
        assert!(!if_none_match_matches("*", None));
        assert!(!if_none_match_matches("\"abd\"", Some(&current)));
        assert!(!if_none_match_matches("abc", Some(&current)));
    }

    #[test]
    fn if_modified_since_only_without_if_none_match() {
        let etag = EntityTag::strong("1");
        let modified = "Sun, 06 Nov 1994 08:49:37 GMT";
        let later = Conditions {
            if_modified_since: Some("Mon, 07 Nov 1994 08:49:37 GMT"),
            ..Conditions::default()
        };
        assert!(later.not_modified(Some(&etag), Some(modified)));
        let earlier = Conditions {
            if_modified_since: Some("Sat, 05 Nov 1994 08:49:37 GMT"),
            ..Conditions::default()
        };
        assert!(!earlier.not_modified(Some(&etag), Some(modified)));
        let invalid = Conditions {
            if_modified_since: Some("soon"),
            ..Conditions::default()
        };
        assert!(!invalid.not_modified(Some(&etag), Some(modified)));
        // If-None-Match takes precedence even when If-Modified-Since would match.
        let both = Conditions {
            if_none_match: Some("\"2\""),
            ..later
        };
        assert!(!both.not_modified(Some(&etag), Some(modified)));
    }
}
