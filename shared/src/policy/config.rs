//! The policy file format (TOML or JSON) and its validation.
//!
//! Every validation error names the rule and the field at fault, so an operator can fix a bad
//! deploy from the message alone.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::pattern::PathPattern;
use super::{Policy, Rule};
use crate::duration::Seconds;
use crate::key::KeyConfig;
use crate::rate_limit::RateLimitTier;
use crate::security::SecurityOverrides;

/// What the cache tiers do with requests matching one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutePolicy {
    /// How long shared caches (edge, origin) keep a response fresh.
    #[serde(default)]
    pub edge_ttl: Seconds,
    /// How long browsers keep a response fresh.
    #[serde(default)]
    pub browser_ttl: Seconds,
    /// After expiry, how long a stale copy is served while it is refreshed (RFC 5861).
    #[serde(default)]
    pub stale_while_revalidate: Seconds,
    /// After expiry, how long a stale copy is served when the origin fails (RFC 5861).
    #[serde(default)]
    pub stale_if_error: Seconds,
    /// The response never changes at its URL (content-hashed assets, RFC 8246).
    #[serde(default)]
    pub immutable: bool,
    /// Never cache: every request goes to the origin.
    #[serde(default)]
    pub bypass: bool,
    /// Cache tags for purging, with `{name}` placeholders filled from the pattern's captures.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Whether the edge may compress responses (off for already-compressed media).
    #[serde(default = "yes")]
    pub compress: bool,
    /// Whether the edge may transform images on this route.
    #[serde(default)]
    pub image_transform: bool,
    /// The rate-limit tier requests on this route draw from.
    #[serde(default)]
    pub rate_limit: RateLimitTier,
    /// The tier writes (methods other than `GET`, `HEAD` and `OPTIONS`) on this route draw
    /// from, where it differs from `rate_limit`: `crawler` for endpoints that fetch outside
    /// URLs on a client's behalf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_rate_limit: Option<RateLimitTier>,
    /// Requests skip the origin's admission control (concurrency limit, wait queue, request
    /// timeout): health checks, metrics and operators' calls must answer under any load.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exempt_from_admission: bool,
    /// Responses carry `Server-Timing` (where the time went: cache, application, database) for
    /// every client, not only for operators bearing the admin token. Off by default: it tells
    /// the public about the origin's internals.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub server_timing: bool,
    /// Changes to the default security headers.
    #[serde(default, skip_serializing_if = "SecurityOverrides::is_empty")]
    pub security_headers: SecurityOverrides,
    /// Whether caches may store responses that set cookies (off by default: a cookie is usually
    /// personal, and a stored one would be given to every visitor). RFC 9111 §3 allows it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub store_set_cookie: bool,
    /// Security headers whose policy value replaces the origin's own. The others are defaults:
    /// an origin that sends its own `Content-Security-Policy` keeps it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enforced_security_headers: Vec<String>,
}

fn yes() -> bool {
    true
}

/// The whole file. Rules stay maps until validation, so that each error can name its rule and
/// field (serde's `flatten` cannot be combined with `deny_unknown_fields`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyFile {
    #[serde(default)]
    keys: KeyConfig,
    #[serde(default = "default_session_cookies")]
    session_cookies: Vec<String>,
    #[serde(default)]
    client_cache_control: ClientCacheControl,
    rules: Vec<Map<String, Value>>,
}

/// What shared caches do with a request's own `Cache-Control` (`no-cache`, `max-age`,
/// `min-fresh`, `max-stale`, `only-if-cached`, `no-store`; RFC 9111 §5.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCacheControl {
    /// As the RFC describes for a shared cache (the default): `no-cache` revalidates with the
    /// origin (a conditional request when a validator is stored), `max-stale` accepts stale
    /// copies, `only-if-cached` never forwards.
    #[default]
    Honour,
    /// Ignored, as several CDNs do by default, so that no client can make the edge forward
    /// what it holds fresh.
    Ignore,
}

fn default_session_cookies() -> Vec<String> {
    [
        "session",
        "sid",
        "connect.sid",
        "__Host-session",
        "__Secure-session",
    ]
    .iter()
    .map(|name| (*name).to_owned())
    .collect()
}

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The file is not valid TOML/JSON for the policy schema (the message has the location).
    #[error("policy file: {0}")]
    Syntax(String),
    /// A value is well-formed but not acceptable.
    #[error("policy rule {rule:?}, field {field:?}: {reason}")]
    Invalid {
        /// The rule's name (or `(top level)`).
        rule: String,
        /// The field at fault.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(rule: &str, field: &str, reason: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        rule: rule.to_owned(),
        field: field.to_owned(),
        reason: reason.into(),
    }
}

impl PolicyFile {
    pub(super) fn from_toml(text: &str) -> Result<Self, PolicyError> {
        toml::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))
    }

    pub(super) fn from_json(text: &str) -> Result<Self, PolicyError> {
        serde_json::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))
    }

    pub(super) fn validate(self) -> Result<Policy, PolicyError> {
        const TOP: &str = "(top level)";
        if self
            .keys
            .ignored_params
            .iter()
            .any(|p| p.is_empty() || p == "*")
        {
            return Err(invalid(
                TOP,
                "keys.ignored_params",
                "entries must be names or prefixes ending in '*'",
            ));
        }
        if self.session_cookies.iter().any(String::is_empty) {
            return Err(invalid(
                TOP,
                "session_cookies",
                "cookie names cannot be empty",
            ));
        }
        if self.rules.is_empty() {
            return Err(invalid(TOP, "rules", "at least one rule is required"));
        }
        let mut rules: Vec<Rule> = Vec::with_capacity(self.rules.len());
        for (index, fields) in self.rules.into_iter().enumerate() {
            let rule = parse_rule(index, fields)?;
            if rules.iter().any(|existing| existing.name == rule.name) {
                return Err(invalid(&rule.name, "name", "rule names must be unique"));
            }
            rules.push(rule);
        }
        Ok(Policy {
            client_cache_control: self.client_cache_control,
            keys: self.keys,
            session_cookies: self.session_cookies,
            rules,
        })
    }
}

fn parse_rule(index: usize, mut fields: Map<String, Value>) -> Result<Rule, PolicyError> {
    let position = format!("#{}", index + 1);
    let mut take_string = |field: &str, rule: &str| match fields.remove(field) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text),
        Some(_) => Err(invalid(rule, field, "must be a non-empty string")),
        None => Err(invalid(rule, field, "is required")),
    };
    let name = take_string("name", &position)?;
    let pattern = take_string("pattern", &name)?;
    // Each field alone first, so that a bad value is reported under its own name.
    for (field, value) in &fields {
        let single = Map::from_iter([(field.clone(), value.clone())]);
        serde_json::from_value::<RoutePolicy>(Value::Object(single))
            .map_err(|e| invalid(&name, field, e.to_string()))?;
    }
    let policy: RoutePolicy = serde_json::from_value(Value::Object(fields))
        .map_err(|e| invalid(&name, "(rule)", e.to_string()))?;
    let pattern = PathPattern::parse(&pattern).map_err(|e| invalid(&name, "pattern", e))?;
    validate_route(&name, &pattern, &policy)?;
    Ok(Rule {
        name,
        pattern,
        policy,
    })
}

fn validate_route(
    rule: &str,
    pattern: &PathPattern,
    policy: &RoutePolicy,
) -> Result<(), PolicyError> {
    if policy.bypass {
        let cached = [
            ("edge_ttl", policy.edge_ttl),
            ("browser_ttl", policy.browser_ttl),
            ("stale_while_revalidate", policy.stale_while_revalidate),
            ("stale_if_error", policy.stale_if_error),
        ];
        if let Some((field, _)) = cached.iter().find(|(_, value)| !value.is_zero()) {
            return Err(invalid(
                rule,
                field,
                "a bypass rule cannot set cache lifetimes",
            ));
        }
        if policy.immutable {
            return Err(invalid(
                rule,
                "immutable",
                "a bypass rule cannot be immutable",
            ));
        }
    }
    if policy.immutable && (policy.edge_ttl.is_zero() || policy.browser_ttl.is_zero()) {
        return Err(invalid(
            rule,
            "immutable",
            "immutable responses need edge_ttl and browser_ttl",
        ));
    }
    for tag in &policy.tags {
        validate_tag(rule, pattern, tag)?;
    }
    let bad_headers = policy.security_headers.invalid_names();
    if !bad_headers.is_empty() {
        return Err(invalid(
            rule,
            "security_headers",
            format!("invalid header names {bad_headers:?}"),
        ));
    }
    let bad_enforced: Vec<&String> = policy
        .enforced_security_headers
        .iter()
        .filter(|name| name.is_empty() || !name.bytes().all(crate::cache_control::is_tchar))
        .collect();
    if !bad_enforced.is_empty() {
        return Err(invalid(
            rule,
            "enforced_security_headers",
            format!("invalid header names {bad_enforced:?}"),
        ));
    }
    Ok(())
}

fn validate_tag(rule: &str, pattern: &PathPattern, tag: &str) -> Result<(), PolicyError> {
    let bad = |reason: String| invalid(rule, "tags", reason);
    if tag.is_empty() || tag.contains([',', ' ']) {
        return Err(bad(format!(
            "tag {tag:?} must be non-empty without commas or spaces"
        )));
    }
    let mut rest = tag;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| bad(format!("tag {tag:?} has an unclosed '{{'")))?;
        let name = &rest[open + 1..open + close];
        if !pattern.capture_names().any(|captured| captured == name) {
            return Err(bad(format!(
                "placeholder {{{name}}} in {tag:?} is not captured by pattern {pattern}"
            )));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// Fills `{name}` placeholders of a validated tag template.
pub(super) fn render_tag(template: &str, captures: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in captures {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}
