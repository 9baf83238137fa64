//! The `Cache-Status` response header (RFC 9211).
//!
//! Each cache appends one list member: its name, then `hit` or `fwd=<reason>`, then optional
//! parameters. Rampart's caches are named `rampart-edge`, `rampart-origin` and, for the origin
//! in shield mode in front of another application, `rampart-shield`.

use std::fmt;

use crate::structured::{self, Item};

/// The edge tier's cache name.
pub const EDGE: &str = "rampart-edge";
/// The origin tier's cache name.
pub const ORIGIN: &str = "rampart-origin";
/// The origin tier's cache name in shield mode.
pub const SHIELD: &str = "rampart-shield";

/// Why a request went forward (RFC 9211 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardReason {
    /// The cache was configured not to handle this request.
    Bypass,
    /// The request method is not cacheable.
    Method,
    /// No stored response for the URI.
    UriMiss,
    /// Stored responses exist but none matches the request's variant.
    VaryMiss,
    /// A miss with no more specific reason.
    Miss,
    /// The request's own directives (e.g. `no-cache`) required forwarding.
    Request,
    /// A stale stored response was found (served or revalidated).
    Stale,
    /// Only part of the response was stored.
    Partial,
}

impl ForwardReason {
    /// The RFC 9211 token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bypass => "bypass",
            Self::Method => "method",
            Self::UriMiss => "uri-miss",
            Self::VaryMiss => "vary-miss",
            Self::Miss => "miss",
            Self::Request => "request",
            Self::Stale => "stale",
            Self::Partial => "partial",
        }
    }

    /// Parses an RFC 9211 token.
    pub fn parse(token: &str) -> Option<Self> {
        [
            Self::Bypass,
            Self::Method,
            Self::UriMiss,
            Self::VaryMiss,
            Self::Miss,
            Self::Request,
            Self::Stale,
            Self::Partial,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == token)
    }
}

/// One member of a `Cache-Status` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStatus {
    /// The cache's name (a token).
    pub cache: String,
    /// `hit`: served from cache without going forward.
    pub hit: bool,
    /// `fwd`: why the request went forward.
    pub fwd: Option<ForwardReason>,
    /// `fwd-status`: the status the next hop answered.
    pub fwd_status: Option<u16>,
    /// `ttl`: remaining freshness in seconds (negative when stale).
    pub ttl: Option<i64>,
    /// `stored`: the forwarded response was stored.
    pub stored: bool,
    /// `collapsed`: the request was collapsed with another one.
    pub collapsed: bool,
    /// `key`: the cache key (a string).
    pub key: Option<String>,
    /// `detail`: implementation-specific detail (emitted as a token when possible).
    pub detail: Option<String>,
}

impl CacheStatus {
    /// A hit in `cache`.
    pub fn hit(cache: &str) -> Self {
        Self::new(cache, true, None)
    }

    /// A forward from `cache` for `reason`.
    pub fn forward(cache: &str, reason: ForwardReason) -> Self {
        Self::new(cache, false, Some(reason))
    }

    fn new(cache: &str, hit: bool, fwd: Option<ForwardReason>) -> Self {
        Self {
            cache: cache.to_owned(),
            hit,
            fwd,
            fwd_status: None,
            ttl: None,
            stored: false,
            collapsed: false,
            key: None,
            detail: None,
        }
    }

    /// Sets `ttl`.
    #[must_use]
    pub fn with_ttl(mut self, ttl: i64) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets `stored`.
    #[must_use]
    pub fn stored(mut self, stored: bool) -> Self {
        self.stored = stored;
        self
    }

    /// Sets `collapsed`.
    #[must_use]
    pub fn collapsed(mut self, collapsed: bool) -> Self {
        self.collapsed = collapsed;
        self
    }

    /// Sets `fwd-status`.
    #[must_use]
    pub fn with_fwd_status(mut self, status: u16) -> Self {
        self.fwd_status = Some(status);
        self
    }

    /// Sets `detail`.
    #[must_use]
    pub fn with_detail(mut self, detail: &str) -> Self {
        self.detail = Some(detail.to_owned());
        self
    }

    /// Parses a `Cache-Status` field value, an RFC 8941 List. A value that fails to parse is
    /// ignored as a whole (empty result); unknown parameters are skipped.
    pub fn parse_list(value: &str) -> Vec<Self> {
        let Some(members) = structured::parse_list(value) else {
            return Vec::new();
        };
        members
            .into_iter()
            .filter_map(|(item, parameters)| {
                let cache = match item {
                    Item::Token(name) | Item::String(name) => name,
                    _ => return None,
                };
                let mut status = Self::new(&cache, false, None);
                for (name, value) in parameters {
                    status.apply(&name, value);
                }
                Some(status)
            })
            .collect()
    }

    fn apply(&mut self, name: &str, value: Item) {
        match (name, value) {
            ("hit", Item::Boolean(hit)) => self.hit = hit,
            ("fwd", Item::Token(reason)) => self.fwd = ForwardReason::parse(&reason),
            ("fwd-status", Item::Integer(code)) => self.fwd_status = u16::try_from(code).ok(),
            ("ttl", Item::Integer(ttl)) => self.ttl = Some(ttl),
            ("stored", Item::Boolean(stored)) => self.stored = stored,
            ("collapsed", Item::Boolean(collapsed)) => self.collapsed = collapsed,
            ("key", Item::String(key)) => self.key = Some(key),
            ("detail", Item::String(detail) | Item::Token(detail)) => self.detail = Some(detail),
            _ => {}
        }
    }
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cache)?;
        if self.hit {
            f.write_str("; hit")?;
        }
        if let Some(reason) = self.fwd {
            write!(f, "; fwd={}", reason.as_str())?;
        }
        if let Some(status) = self.fwd_status {
            write!(f, "; fwd-status={status}")?;
        }
        if let Some(ttl) = self.ttl {
            write!(f, "; ttl={ttl}")?;
        }
        if self.stored {
            f.write_str("; stored")?;
        }
        if self.collapsed {
            f.write_str("; collapsed")?;
        }
        if let Some(key) = &self.key {
            write!(f, "; key={}", structured::quote(key))?;
        }
        if let Some(detail) = &self.detail {
            let token = detail
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b));
            if token && detail.starts_with(|c: char| c.is_ascii_alphabetic()) {
                write!(f, "; detail={detail}")?;
            } else {
                write!(f, "; detail={}", structured::quote(detail))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_rfc9211_members() {
        assert_eq!(
            CacheStatus::hit(EDGE).with_ttl(42).to_string(),
            "rampart-edge; hit; ttl=42"
        );
        assert_eq!(
            CacheStatus::forward(EDGE, ForwardReason::UriMiss)
                .stored(true)
                .to_string(),
            "rampart-edge; fwd=uri-miss; stored"
        );
        assert_eq!(
            CacheStatus::forward(ORIGIN, ForwardReason::Stale)
                .with_fwd_status(503)
                .with_detail("origin error")
                .to_string(),
            "rampart-origin; fwd=stale; fwd-status=503; detail=\"origin error\""
        );
    }

    #[test]
    fn parses_the_rfc_examples() {
        // RFC 9211 §3 examples.
        let list = CacheStatus::parse_list(
            "OriginCache; hit; ttl=1100, \"CDN Company Here\"; hit; ttl=545",
        );
        assert_eq!(list.len(), 2);
        assert!(list[0].hit && list[1].hit);
        assert_eq!(list[0].ttl, Some(1100));
        assert_eq!(list[1].cache, "CDN Company Here");
        let fwd = CacheStatus::parse_list("ExampleCache; fwd=stale; fwd-status=304");
        assert_eq!(fwd[0].fwd, Some(ForwardReason::Stale));
        assert_eq!(fwd[0].fwd_status, Some(304));
        let mut round = CacheStatus::forward(EDGE, ForwardReason::Miss)
            .stored(true)
            .collapsed(true)
            .with_detail("a \"b\"");
        round.key = Some("GET https://a.com/x;y?a=1,2&b=\\".into());
        assert_eq!(CacheStatus::parse_list(&round.to_string()), vec![round]);
    }
}
