//! Route policy: ordered rules from path patterns to caching behaviour.
//!
//! The first rule whose pattern matches the canonical path decides. On top of the rules, three
//! request properties always bypass caches, as every CDN does: a method other than `GET`/`HEAD`,
//! an `Authorization` header, and a session cookie. The default policy ([`Policy::default`]) is
//! `shared/policy.toml`, embedded at build time so both tiers carry the same file.

mod config;
mod pattern;

pub use config::{ClientCacheControl, PolicyError, RoutePolicy};
pub use pattern::{PathPattern, PatternSegment};

use crate::cache_control::CacheControl;
use crate::key::KeyConfig;

/// The policy compiled into both tiers.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../../policy.toml");

/// The origin's policy in shield mode: its own routes alone (`shared/shield-policy.toml`).
pub const SHIELD_POLICY_TOML: &str = include_str!("../../shield-policy.toml");

/// A named rule: pattern and policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Unique name, used in errors, logs and generated Terraform.
    pub name: String,
    /// The path pattern.
    pub pattern: PathPattern,
    /// What happens to matching requests.
    pub policy: RoutePolicy,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    client_cache_control: ClientCacheControl,
    keys: KeyConfig,
    session_cookies: Vec<String>,
    rules: Vec<Rule>,
}

/// The request properties a caching decision depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    /// The method.
    pub method: &'a str,
    /// The canonical path (see [`crate::key::CacheKey::path`]).
    pub path: &'a str,
    /// Whether the request has an `Authorization` header.
    pub has_authorization: bool,
    /// The `Cookie` header, if any.
    pub cookie: Option<&'a str>,
}

/// Why a request is not served from or stored in a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassReason {
    /// Not `GET` or `HEAD`.
    Method,
    /// The request carries `Authorization`.
    Authorization,
    /// The request carries a session cookie.
    SessionCookie,
    /// The matching rule says `bypass`.
    Rule,
    /// No rule matches the path.
    NoRule,
}

impl BypassReason {
    /// A stable name for headers, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::Authorization => "authorization",
            Self::SessionCookie => "session-cookie",
            Self::Rule => "rule",
            Self::NoRule => "no-rule",
        }
    }
}

/// The outcome of [`Policy::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'p> {
    /// The matching rule, if any (its rate-limit tier and security headers apply even when the
    /// request bypasses caches).
    pub rule: Option<&'p Rule>,
    /// Rendered cache tags.
    pub tags: Vec<String>,
    /// Set when the request must bypass caches.
    pub bypass: Option<BypassReason>,
}

impl Decision<'_> {
    /// Whether caches may serve and store this request.
    pub fn is_cacheable(&self) -> bool {
        self.bypass.is_none()
    }

    /// The route policy, if a rule matched.
    pub fn policy(&self) -> Option<&RoutePolicy> {
        self.rule.map(|rule| &rule.policy)
    }

    /// The `Cache-Control` an origin sends with its response.
    ///
    /// Cacheable: `public, max-age=<browser>, s-maxage=<edge>` plus the stale windows and
    /// `immutable`. Personal (authorization, session): `private, no-store`. Other bypasses:
    /// `no-store`.
    pub fn cache_control(&self) -> CacheControl {
        match (self.bypass, self.policy()) {
            (None, Some(policy)) => {
                let seconds = |s: crate::duration::Seconds| (!s.is_zero()).then_some(s.get());
                CacheControl {
                    public: true,
                    max_age: Some(policy.browser_ttl.get()),
                    s_maxage: Some(policy.edge_ttl.get()),
                    stale_while_revalidate: seconds(policy.stale_while_revalidate),
                    stale_if_error: seconds(policy.stale_if_error),
                    immutable: policy.immutable,
                    ..CacheControl::default()
                }
            }
            (Some(BypassReason::Authorization | BypassReason::SessionCookie), _) => CacheControl {
                private: Some(Vec::new()),
                no_store: true,
                ..CacheControl::default()
            },
            _ => CacheControl {
                no_store: true,
                ..CacheControl::default()
            },
        }
    }
}

impl Policy {
    /// Parses and validates a TOML policy.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        config::PolicyFile::from_toml(text)?.validate()
    }

    /// Parses and validates a JSON policy.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        config::PolicyFile::from_json(text)?.validate()
    }

    /// The cache-key configuration.
    pub fn keys(&self) -> &KeyConfig {
        &self.keys
    }

    /// The rules, in matching order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether caches follow a request's own `Cache-Control` (the policy's
    /// `client_cache_control`).
    pub fn honours_client_directives(&self) -> bool {
        self.client_cache_control == ClientCacheControl::Honour
    }

    /// Cookie names that mark a personal session.
    pub fn session_cookies(&self) -> &[String] {
        &self.session_cookies
    }

    /// The first rule matching `path`, with its rendered tags.
    pub fn route(&self, path: &str) -> Option<(&Rule, Vec<String>)> {
        let parts = pattern::split_path(path)?;
        self.rules.iter().find_map(|rule| {
            let captures = rule.pattern.matches_segments(&parts)?;
            let tags = rule
                .policy
                .tags
                .iter()
                .map(|template| config::render_tag(template, &captures))
                .collect();
            Some((rule, tags))
        })
    }

    /// Decides how caches treat a request.
    pub fn decide(&self, request: &RequestFacts<'_>) -> Decision<'_> {
        let (rule, tags) = match self.route(request.path) {
            Some((rule, tags)) => (Some(rule), tags),
            None => (None, Vec::new()),
        };
        let bypass = if !matches!(request.method, "GET" | "HEAD") {
            Some(BypassReason::Method)
        } else if request.has_authorization {
            Some(BypassReason::Authorization)
        } else if request
            .cookie
            .is_some_and(|cookie| self.has_session_cookie(cookie))
        {
            Some(BypassReason::SessionCookie)
        } else if rule.is_none() {
            Some(BypassReason::NoRule)
        } else if rule.is_some_and(|rule| rule.policy.bypass) {
            Some(BypassReason::Rule)
        } else {
            None
        };
        Decision { rule, tags, bypass }
    }

    /// Whether a `Cookie` header holds one of the session cookies (names are case-sensitive,
    /// RFC 6265 §5.4).
    pub fn has_session_cookie(&self, cookie: &str) -> bool {
        cookie.split(';').any(|pair| {
            let name = pair.split('=').next().unwrap_or_default().trim();
            self.session_cookies.iter().any(|session| session == name)
        })
    }
}

impl Policy {
    /// The policy of the origin in shield mode, in `shared/shield-policy.toml`.
    pub fn shield() -> Self {
        match Self::from_toml(SHIELD_POLICY_TOML) {
            Ok(policy) => policy,
            // The embedded file is validated by this crate's tests; reaching this is a build bug.
            Err(error) => panic!("the embedded shield policy is invalid: {error}"),
        }
    }
}

impl Default for Policy {
    /// The policy in `shared/policy.toml`.
    fn default() -> Self {
        match Self::from_toml(DEFAULT_POLICY_TOML) {
            Ok(policy) => policy,
            // The embedded file is validated by this crate's tests; reaching this is a build bug.
            Err(error) => panic!("the embedded default policy is invalid: {error}"),
        }
    }
}

#[cfg(test)]
mod tests;
