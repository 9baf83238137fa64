//! Security response headers: a strict default set, overridable per route.
//!
//! The defaults follow current guidance (OWASP Secure Headers, MDN): HTTPS pinned for two years,
//! a same-origin Content Security Policy that also forbids framing, no MIME sniffing, a
//! privacy-preserving referrer policy, powerful features disabled, and cross-origin isolation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The header in which the edge sends its shared secret (`ORIGIN_AUTH_TOKEN`) to the origin,
/// which then believes the edge's forwarding headers.
pub const ORIGIN_AUTH_HEADER: &str = "x-rampart-origin-auth";

/// Sent by an origin on every response while it drains before shutting down: whoever routes
/// to several origins (the edge) sends new requests elsewhere. Never passed on to clients.
pub const DRAINING_HEADER: &str = "rampart-draining";

/// The default header set, in emission order.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("strict-transport-security", "max-age=63072000; includeSubDomains; preload"),
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'; \
         upgrade-insecure-requests",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "permissions-policy",
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), microphone=(), payment=(), usb=()",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// Response headers that reveal implementation details and are removed.
pub const REMOVED: &[&str] = &[
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
];

/// Per-route changes to the default set: a header name (any case) maps to a replacement value,
/// or to `""` to drop the header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecurityOverrides(pub BTreeMap<String, String>);

impl SecurityOverrides {
    /// Whether there is nothing to override.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Names that are not valid header field names.
    pub fn invalid_names(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter(|name| name.is_empty() || !name.bytes().all(crate::cache_control::is_tchar))
            .map(String::as_str)
            .collect()
    }
}

/// The headers to set on a response: the defaults with `overrides` applied, names lower-case.
pub fn headers(overrides: &SecurityOverrides) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = DEFAULTS
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    for (name, value) in &overrides.0 {
        let name = name.to_ascii_lowercase();
        out.retain(|(existing, _)| *existing != name);
        if !value.is_empty() {
            out.push((name, value.clone()));
        }
    }
    out
}

/// The security headers to add to a response: each header of `set` the response lacks
/// (`present` says which it has), and those named in `enforced` whatever the response says.
pub fn to_apply<'a>(
    set: &'a [(String, String)],
    enforced: &'a [String],
    present: impl Fn(&str) -> bool + 'a,
) -> impl Iterator<Item = &'a (String, String)> + 'a {
    set.iter().filter(move |(name, _)| {
        enforced.iter().any(|e| e.eq_ignore_ascii_case(name)) || !present(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_strict() {
        let set = headers(&SecurityOverrides::default());
        let get = |name: &str| set.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert!(get("strict-transport-security").is_some_and(|v| v.contains("max-age=63072000")));
        assert!(
            get("content-security-policy").is_some_and(|v| v.contains("frame-ancestors 'none'"))
        );
        assert_eq!(get("x-content-type-options"), Some("nosniff"));
        assert_eq!(get("cross-origin-opener-policy"), Some("same-origin"));
        assert_eq!(get("cross-origin-resource-policy"), Some("same-origin"));
        assert!(get("permissions-policy").is_some_and(|v| v.contains("camera=()")));
        assert!(get("referrer-policy").is_some());
    }

    #[test]
    fn the_origins_own_headers_win_unless_enforced() {
        let set = headers(&SecurityOverrides::default());
        let origin_has =
            |name: &str| name == "content-security-policy" || name == "x-frame-options";
        let applied: Vec<&str> = to_apply(&set, &[], origin_has)
            .map(|(n, _)| n.as_str())
            .collect();
        assert!(!applied.contains(&"content-security-policy"));
        assert!(!applied.contains(&"x-frame-options"));
        assert!(applied.contains(&"x-content-type-options"));
        let enforced = ["X-Frame-Options".to_owned()];
        let applied: Vec<&str> = to_apply(&set, &enforced, origin_has)
            .map(|(n, _)| n.as_str())
            .collect();
        assert!(applied.contains(&"x-frame-options"));
        assert!(!applied.contains(&"content-security-policy"));
    }

    #[test]
    fn overrides_replace_and_remove() {
        let mut map = BTreeMap::new();
        map.insert(
            "Cross-Origin-Resource-Policy".to_owned(),
            "cross-origin".to_owned(),
        );
        map.insert("x-frame-options".to_owned(), String::new());
        let set = headers(&SecurityOverrides(map));
        assert!(set.contains(&("cross-origin-resource-policy".into(), "cross-origin".into())));
        assert!(!set.iter().any(|(n, _)| n == "x-frame-options"));
        assert_eq!(set.len(), DEFAULTS.len() - 1);
        let bad = SecurityOverrides(BTreeMap::from([("bad header".to_owned(), "x".to_owned())]));
        assert_eq!(bad.invalid_names(), vec!["bad header"]);
    }
}
