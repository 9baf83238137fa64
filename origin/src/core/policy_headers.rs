//! Applies the shared route policy to every response: `Cache-Control`, `Cache-Tag` and the
//! security headers, exactly as the edge expects them.
//!
//! A handler that sets its own `Cache-Control` keeps it (it knows better, e.g. `no-store` on an
//! error); everything else is decided by [`shared::policy::Policy::decide`] from the same inputs
//! the edge uses, so both tiers agree on what is cacheable and under which tags.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use shared::key::CacheKey;
use shared::policy::{BypassReason, Decision, Policy, RequestFacts};
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
    /// The rendered cache tags.
    pub tags: Vec<String>,
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
    rules: HashMap<String, RuleHeaders>,
    unmatched: RuleHeaders,
}

impl PolicyHeaders {
    /// Prepares every rule's headers of `policy`.
    pub fn new(policy: Arc<Policy>) -> Self {
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
        }
    }
}

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const PRIVATE_NO_STORE: HeaderValue = HeaderValue::from_static("private, no-store");

/// Middleware: decides the request's policy and stamps the response headers.
pub async fn apply(
    State(state): State<Arc<PolicyHeaders>>,
    mut request: Request,
    next: Next,
) -> Response {
    let policy = &state.policy;
    let headers = request.headers();
    let host = header_str(headers, header::HOST).unwrap_or("localhost");
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let key = CacheKey::new(request.method().as_str(), host, target, policy.keys()).ok();
    let path = key.as_ref().map_or_else(
        || request.uri().path().to_owned(),
        |key| key.path().to_owned(),
    );
    let facts = RequestFacts {
        method: request.method().as_str(),
        path: &path,
        has_authorization: headers.contains_key(header::AUTHORIZATION),
        cookie: header_str(headers, header::COOKIE),
    };
    let decision = policy.decide(&facts);
    let rule = decision
        .rule
        .and_then(|rule| state.rules.get(&rule.name))
        .unwrap_or(&state.unmatched);
    let cache_control = match decision.bypass {
        None if decision.rule.is_some() => rule.cache_control.clone(),
        Some(BypassReason::Authorization | BypassReason::SessionCookie) => PRIVATE_NO_STORE,
        _ => NO_STORE,
    };
    let cacheable = decision.is_cacheable();
    let tags = (cacheable && !decision.tags.is_empty()).then(|| decision.tags.join(","));
    let caching = match (cacheable, decision.policy(), key) {
        (true, Some(route), Some(key)) => Some(RouteCaching {
            rule: decision
                .rule
                .map(|rule| rule.name.clone())
                .unwrap_or_default(),
            key: key.to_string(),
            ttl: Duration::from_secs(route.edge_ttl.get().into()),
            stale_while_revalidate: Duration::from_secs(route.stale_while_revalidate.get().into()),
            tags: decision.tags.clone(),
        }),
        _ => None,
    };
    if let Some(caching) = caching {
        request.extensions_mut().insert(caching);
    }

    let mut response = next.run(request).await;
    let out = response.headers_mut();
    if !out.contains_key(header::CACHE_CONTROL) {
        out.insert(header::CACHE_CONTROL, cache_control);
    }
    if let Some(tags) = tags {
        insert(out, HeaderName::from_static(CACHE_TAG), &tags);
    }
    for (name, value) in &rule.security {
        out.insert(name.clone(), value.clone());
    }
    for name in shared::security::REMOVED {
        out.remove(*name);
    }
    response
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}
