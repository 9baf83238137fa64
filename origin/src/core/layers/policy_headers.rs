//! Applies the shared route policy to every response: `Cache-Control`, `Cache-Tag` and the
//! security headers, exactly as the edge expects them.
//!
//! A handler that sets its own `Cache-Control` keeps it (it knows better, e.g. `no-store` on an
//! error); everything else is decided by [`shared::policy::Policy::decide`] from the same inputs
//! the edge uses, so both tiers agree on what is cacheable and under which tags.
//!
//! In front of another application ([`Stamping::Proxy`], shield mode) the upstream's headers
//! are its own: `Cache-Control` and `Cache-Tag` are sent only where a rule of the policy
//! matched, and the security headers only where the upstream sent none of that name.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use shared::freshness::heuristically_cacheable;
use shared::key::CacheKey;
use shared::policy::{BypassReason, Decision, Policy, RequestFacts, RoutePolicy};
use shared::rate_limit::RateLimitTier;
use shared::security::SecurityOverrides;

/// The response header carrying purge tags to the edge (Cloudflare's name).
pub const CACHE_TAG: &str = "cache-tag";

/// What the policy says about caching a request, for the layers inside this one (the origin's
/// response cache). Present only on cacheable requests.
#[derive(Debug, Clone)]
pub struct RouteCaching {
    /// The name of the policy rule that matched.
    pub rule: String,
    /// The shared canonical cache key.
    pub key: String,
    /// The route's shared-cache lifetime (`s-maxage`).
    pub ttl: Duration,
    /// The route's stale-while-revalidate window.
    pub stale_while_revalidate: Duration,
    /// After expiry, how long a stored copy may stand in for a failed load (stale-if-error).
    pub stale_if_error: Duration,
    /// The rendered cache tags.
    pub tags: Arc<[String]>,
    /// Lifetimes and tags come from each response's own headers, as RFC 9111 says for a
    /// shared cache (a shield's upstream paths); the fields above are unused.
    pub from_response: bool,
}

/// Whose responses the policy stamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stamping {
    /// The origin's own application: the policy decides every response's headers.
    #[default]
    Application,
    /// Another application's, proxied (shield mode): its headers win, the policy's fill in.
    Proxy,
}

/// Response headers a rule always sends, parsed once when the server starts.
#[derive(Debug, Clone)]
struct RuleHeaders {
    /// `Cache-Control` of a cacheable request.
    cache_control: HeaderValue,
    /// The security headers, with the rule's overrides applied.
    security: Vec<(HeaderName, HeaderValue)>,
}

impl RuleHeaders {
    fn new(cache_control: &str, overrides: &SecurityOverrides) -> Self {
        let security = shared::security::headers(overrides)
            .into_iter()
            .filter_map(|(name, value)| {
                Some((
                    HeaderName::try_from(name).ok()?,
                    HeaderValue::try_from(value).ok()?,
                ))
            })
            .collect();
        Self {
            cache_control: HeaderValue::from_str(cache_control)
                .unwrap_or(HeaderValue::from_static("no-store")),
            security,
        }
    }
}

/// The policy layer's state: the policy, and each rule's headers ready to send.
#[derive(Debug)]
pub struct PolicyHeaders {
    policy: Arc<Policy>,
    /// Each rule's name and headers, in the policy's order.
    rules: Vec<(String, RuleHeaders)>,
    unmatched: RuleHeaders,
    /// Decisions already taken for anonymous requests, by method, host and target: with no
    /// credentials, those alone decide, and the policy never changes while serving.
    memo: RwLock<HashMap<String, Prepared>>,
    stamping: Stamping,
}

/// Decisions remembered at most; the memo starts afresh when full, so that endless distinct
/// targets cost no more than deciding each request anew.
const MEMO_ENTRIES: usize = 4096;

impl PolicyHeaders {
    /// Prepares every rule's headers of `policy`, for responses stamped as `stamping` says.
    pub fn new(policy: Arc<Policy>, stamping: Stamping) -> Self {
        let rules = policy
            .rules()
            .iter()
            .map(|rule| {
                let decision = Decision {
                    rule: Some(rule),
                    bypass: None,
                    tags: Vec::new(),
                };
                let cache_control = decision.cache_control().to_string();
                let headers = RuleHeaders::new(&cache_control, &rule.policy.security_headers);
                (rule.name.clone(), headers)
            })
            .collect();
        Self {
            policy,
            rules,
            unmatched: RuleHeaders::new("no-store", &SecurityOverrides::default()),
            memo: RwLock::default(),
            stamping,
        }
    }
}

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const PRIVATE_NO_STORE: HeaderValue = HeaderValue::from_static("private, no-store");

/// What the policy decided for one request, carried until its response is stamped.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Index of the matched rule's headers in [`PolicyHeaders`], `None` when unmatched.
    rule: Option<usize>,
    cache_control: HeaderValue,
    tags: Option<HeaderValue>,
    /// Present when the response may be cached.
    pub caching: Option<Arc<RouteCaching>>,
    /// The rule's rate-limit tier for this method (the default tier when no rule matched).
    pub tier: RateLimitTier,
    /// The rule exempts the request from admission control.
    pub exempt: bool,
    /// The rule sends `Server-Timing` to everyone.
    pub server_timing: bool,
}

impl PolicyHeaders {
    /// The name of the rule `prepared` matched, if any.
    pub fn rule_name(&self, prepared: &Prepared) -> Option<&str> {
        prepared
            .rule
            .and_then(|index| self.rules.get(index))
            .map(|(name, _)| name.as_str())
    }

    /// Decides `request`'s policy, from the same inputs the edge uses.
    pub fn prepare(&self, request: &Request) -> Prepared {
        let headers = request.headers();
        if headers.contains_key(header::AUTHORIZATION) || headers.contains_key(header::COOKIE) {
            return self.decide(request);
        }
        let host = header_str(headers, header::HOST).unwrap_or("localhost");
        let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let key = [request.method().as_str(), " ", host, target].concat();
        let memo = self.memo.read().unwrap_or_else(|p| p.into_inner());
        if let Some(prepared) = memo.get(&key) {
            return prepared.clone();
        }
        drop(memo);
        let prepared = self.decide(request);
        let mut memo = self.memo.write().unwrap_or_else(|p| p.into_inner());
        if memo.len() >= MEMO_ENTRIES {
            memo.clear();
        }
        memo.insert(key, prepared.clone());
        prepared
    }

    fn decide(&self, request: &Request) -> Prepared {
        let headers = request.headers();
        let host = header_str(headers, header::HOST).unwrap_or("localhost");
        let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let method = request.method().as_str();
        let key = CacheKey::new(method, host, target, self.policy.keys()).ok();
        let path = key
            .as_ref()
            .map_or_else(|| request.uri().path(), |key| key.path());
        let facts = RequestFacts {
            method,
            path,
            has_authorization: headers.contains_key(header::AUTHORIZATION),
            cookie: header_str(headers, header::COOKIE),
        };
        let mut decision = self.policy.decide(&facts);
        // On a shield's upstream paths, Authorization does not bypass the cache: RFC 9111 §3.5
        // decides what may be stored, as at the edge.
        if self.stamping == Stamping::Proxy
            && decision.bypass == Some(BypassReason::Authorization)
            && decision.rule.is_none()
        {
            decision = self.policy.decide(&RequestFacts {
                has_authorization: false,
                ..facts
            });
        }
        let rule = decision
            .rule
            .and_then(|rule| self.rules.iter().position(|(name, _)| *name == rule.name));
        let cache_control = match decision.bypass {
            None => rule.map_or(NO_STORE, |index| self.rules[index].1.cache_control.clone()),
            Some(BypassReason::Authorization | BypassReason::SessionCookie) => PRIVATE_NO_STORE,
            Some(_) => NO_STORE,
        };
        let cacheable = decision.is_cacheable();
        let tags = (cacheable && !decision.tags.is_empty())
            .then(|| HeaderValue::from_str(&decision.tags.join(",")).ok())
            .flatten();
        // A shield caches the upstream's paths as their responses say.
        let upstream_path =
            self.stamping == Stamping::Proxy && decision.bypass == Some(BypassReason::NoRule);
        let caching = match (cacheable, decision.rule, key) {
            (true, Some(matched), Some(key)) => Some(Arc::new(RouteCaching {
                rule: matched.name.clone(),
                key: key.to_string(),
                ttl: Duration::from_secs(matched.policy.edge_ttl.get().into()),
                stale_while_revalidate: Duration::from_secs(
                    matched.policy.stale_while_revalidate.get().into(),
                ),
                stale_if_error: Duration::from_secs(matched.policy.stale_if_error.get().into()),
                tags: decision.tags.into(),
                // In front of an upstream, its response says whether it may be kept, with the
                // rule's lifetimes stamped where it said nothing.
                from_response: self.stamping == Stamping::Proxy,
            })),
            (false, None, Some(key)) if upstream_path => Some(Arc::new(RouteCaching {
                rule: "upstream".to_owned(),
                key: key.to_string(),
                ttl: Duration::ZERO,
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                tags: Arc::new([]),
                from_response: true,
            })),
            _ => None,
        };
        Prepared {
            rule,
            cache_control,
            tags,
            caching,
            tier: decision
                .rule
                .map_or(RateLimitTier::Default, |rule| tier(&rule.policy, method)),
            exempt: decision
                .rule
                .is_some_and(|rule| rule.policy.exempt_from_admission),
            server_timing: decision.rule.is_some_and(|rule| rule.policy.server_timing),
        }
    }

    /// Stamps the headers of a response with `status` with what `prepared` decided:
    /// `Cache-Control` (unless the handler set its own), `Cache-Tag` (beside an upstream's own)
    /// and the security headers;
    /// `Server` and `X-Powered-By` removed. In front of an upstream, a rule's `Cache-Control`
    /// goes only on statuses a cache may keep by default (RFC 9110 §15.1) short of a `5xx`, so
    /// that an upstream's failure or temporary redirect is never made cacheable by it.
    pub fn stamp(&self, prepared: Prepared, status: StatusCode, headers: &mut HeaderMap) {
        let proxied = self.stamping == Stamping::Proxy;
        let decided = !proxied || prepared.rule.is_some();
        let by_default = heuristically_cacheable(status.as_u16()) && !status.is_server_error();
        let lifetimes = decided && (!proxied || by_default);
        if lifetimes && !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, prepared.cache_control);
        }
        if let Some(tags) = prepared.tags.filter(|_| decided) {
            // In front of an upstream its own tags stay beside the rule's: a purge by either
            // finds the response.
            let name = HeaderName::from_static(CACHE_TAG);
            if proxied {
                headers.append(name, tags);
            } else {
                headers.insert(name, tags);
            }
        }
        let rule = prepared
            .rule
            .map_or(&self.unmatched, |index| &self.rules[index].1);
        for (name, value) in &rule.security {
            if !(proxied && headers.contains_key(name)) {
                headers.insert(name.clone(), value.clone());
            }
        }
        for name in shared::security::REMOVED {
            headers.remove(*name);
        }
    }
}

/// The tier a request with `method` draws from on a route with `policy`.
fn tier(policy: &RoutePolicy, method: &str) -> RateLimitTier {
    let reads = matches!(method, "GET" | "HEAD" | "OPTIONS");
    match policy.write_rate_limit {
        Some(tier) if !reads => tier,
        _ => policy.rate_limit,
    }
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}
