//! The Cloudflare rulesets that come from the shared policy: cache rules, compression rules and
//! rate-limiting rules, as `cloudflare_ruleset` resources (provider v5).
//!
//! Cloudflare runs every matching rule of a phase in order, later settings overriding earlier
//! ones, where the policy stops at its first matching rule. The cache rules are therefore
//! emitted in reverse policy order, each setting every parameter, so the last rule that matches
//! (the policy's first) decides; the bypass rule for authenticated traffic comes last of all.

use hcl::expr::Expression;
use hcl::{Block, Body};
use shared::policy::{Policy, Rule};
use shared::rate_limit::{RateLimit, RateLimitTier};

use crate::expression::{disjoint, quote, Condition, UnsupportedPattern};
use crate::hcl_text::{list, raw, reference, ObjectBuilder};

/// Status codes the zone never caches, whatever the rule's TTL.
const UNCACHED_STATUSES: (u16, u16) = (500, 599);

/// The periods Cloudflare's rate limiting accepts, in seconds.
pub const RATE_LIMIT_PERIODS: [u32; 6] = [10, 60, 120, 300, 600, 3600];

/// `resource "cloudflare_ruleset" "cache_rules"` (phase `http_request_cache_settings`), after
/// the cache key every cacheable rule shares (`local.rampart_cache_key`).
pub fn cache_rules(policy: &Policy) -> Result<Body, UnsupportedPattern> {
    let mut rules = Vec::with_capacity(policy.rules().len() + 1);
    for rule in policy.rules().iter().rev() {
        rules.push(cache_rule(rule)?);
    }
    rules.push(authenticated_bypass(policy));
    let locals = Block::builder("locals")
        .add_attribute(("rampart_cache_key", cache_key(policy)))
        .build();
    let resource = ruleset(
        "cache_rules",
        "Rampart cache rules",
        "http_request_cache_settings",
        list(rules),
    );
    Ok(Body::builder()
        .add_block(locals)
        .add_block(resource)
        .build())
}

fn cache_rule(rule: &Rule) -> Result<Expression, UnsupportedPattern> {
    let route = &rule.policy;
    let parameters = if route.bypass {
        ObjectBuilder::new().set("cache", false)
    } else {
        let edge_ttl = ObjectBuilder::new()
            .set("mode", "override_origin")
            .set("default", route.edge_ttl.get())
            .set("status_code_ttl", list([uncached_errors()]));
        let browser_ttl = ObjectBuilder::new()
            .set("mode", "override_origin")
            .set("default", route.browser_ttl.get());
        let serve_stale = ObjectBuilder::new().set(
            "disable_stale_while_updating",
            route.stale_while_revalidate.get() == 0,
        );
        ObjectBuilder::new()
            .set("cache", true)
            .set("edge_ttl", edge_ttl.build())
            .set("browser_ttl", browser_ttl.build())
            .set("serve_stale", serve_stale.build())
            .set("respect_strong_etags", true)
            .set("cache_key", reference("local.rampart_cache_key"))
    };
    Ok(rule_object(
        &format!("rampart_cache_{}", rule.name.replace('-', "_")),
        &describe(rule),
        Condition::for_pattern(&rule.pattern)?,
        "set_cache_settings",
        parameters.build(),
    ))
}

fn describe(rule: &Rule) -> String {
    let route = &rule.policy;
    if route.bypass {
        return format!("{} ({}): bypass", rule.name, rule.pattern);
    }
    format!(
        "{} ({}): edge {}, browser {}, stale-while-revalidate {}",
        rule.name, rule.pattern, route.edge_ttl, route.browser_ttl, route.stale_while_revalidate
    )
}

fn uncached_errors() -> Expression {
    let (from, to) = UNCACHED_STATUSES;
    ObjectBuilder::new()
        .set(
            "status_code_range",
            ObjectBuilder::new().set("from", from).set("to", to).build(),
        )
        .set("value", -1)
        .build()
}

/// The zone's cache key: the query without tracking parameters, in any order, with cache
/// deception armor. Cloudflare's list takes exact names, so a prefix entry (`utm_*`) becomes
/// the parameters it is known for.
fn cache_key(policy: &Policy) -> Expression {
    let excluded: Vec<Expression> = excluded_params(policy)
        .into_iter()
        .map(Expression::from)
        .collect();
    let query_string = ObjectBuilder::new().set(
        "exclude",
        ObjectBuilder::new().set("list", list(excluded)).build(),
    );
    ObjectBuilder::new()
        .set("ignore_query_strings_order", true)
        .set("cache_deception_armor", true)
        .set(
            "custom_key",
            ObjectBuilder::new()
                .set("query_string", query_string.build())
                .build(),
        )
        .build()
}

/// Exact parameter names for the policy's ignored parameters.
pub fn excluded_params(policy: &Policy) -> Vec<String> {
    const UTM: [&str; 7] = [
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
        "utm_id",
        "utm_source_platform",
    ];
    let mut names = Vec::new();
    for entry in &policy.keys().ignored_params {
        match entry.strip_suffix('*') {
            Some(prefix) => names.extend(
                UTM.iter()
                    .filter(|name| name.starts_with(prefix))
                    .map(|name| (*name).to_owned()),
            ),
            None => names.push(entry.clone()),
        }
    }
    names
}

/// Never cache what the policy never caches: other methods, `Authorization`, session cookies.
fn authenticated_bypass(policy: &Policy) -> Expression {
    let mut any = vec![
        Condition::Raw(r#"not http.request.method in {"GET" "HEAD"}"#.to_owned()),
        Condition::Raw(
            r#"any(lower(http.request.headers.names[*])[*] eq "authorization")"#.to_owned(),
        ),
    ];
    any.extend(policy.session_cookies().iter().map(|name| {
        Condition::Raw(format!(
            "http.cookie contains {}",
            quote(&format!("{name}="))
        ))
    }));
    rule_object(
        "rampart_cache_bypass_authenticated",
        "authenticated or non-GET requests are never cached",
        Condition::Any(any),
        "set_cache_settings",
        ObjectBuilder::new().set("cache", false).build(),
    )
}

/// `resource "cloudflare_ruleset" "compression_rules"` (phase `http_response_compression`):
/// brotli, then gzip, except on routes the policy marks `compress = false`.
pub fn compression_rules(policy: &Policy) -> Result<Block, UnsupportedPattern> {
    let uncompressed = decided_by(policy, |rule| !rule.policy.compress)?;
    let algorithms = |names: &[&str]| {
        let names = names
            .iter()
            .map(|name| ObjectBuilder::new().set("name", *name).build());
        ObjectBuilder::new().set("algorithms", list(names)).build()
    };
    let rules = list([
        rule_object(
            "rampart_compress_off",
            "routes with compress = false (already-compressed media, health)",
            uncompressed.clone(),
            "compress_response",
            algorithms(&["none"]),
        ),
        rule_object(
            "rampart_compress",
            "everything else: brotli, else gzip",
            uncompressed.negate(),
            "compress_response",
            algorithms(&["brotli", "gzip"]),
        ),
    ]);
    Ok(ruleset(
        "compression_rules",
        "Rampart response compression",
        "http_response_compression",
        rules,
    ))
}

/// `resource "cloudflare_ruleset" "rate_limits"` (phase `http_ratelimit`), one rule per tier,
/// the tier's budget scaled to the longest period the plan allows (`var.rate_limit_max_period`)
/// and the first `var.rate_limit_rules` rules kept (Free allows one).
pub fn rate_limits(policy: &Policy) -> Result<Body, UnsupportedPattern> {
    let tier_paths =
        |tier: RateLimitTier| decided_by(policy, move |rule| rule.policy.rate_limit == tier);
    let aggressive = tier_paths(RateLimitTier::Aggressive)?;
    let ordinary = tier_paths(RateLimitTier::Default)?;
    // The crawler tier: writes to the routes that fetch outside URLs (`write_rate_limit`).
    let crawler_routes = decided_by(policy, |rule| {
        rule.policy.write_rate_limit == Some(RateLimitTier::Crawler)
    })?;
    let writes =
        Condition::Raw(r#"not http.request.method in {"GET" "HEAD" "OPTIONS"}"#.to_owned());
    let rules = [
        (RateLimitTier::Aggressive, aggressive, false),
        (RateLimitTier::Default, ordinary, true),
        (
            RateLimitTier::Crawler,
            Condition::all(vec![crawler_routes, writes]),
            true,
        ),
    ];
    let count = rules.len();
    let rules: Vec<Expression> = rules
        .into_iter()
        .filter_map(|(tier, condition, origin_only)| {
            tier.limit()
                .map(|limit| rate_limit_rule(tier, limit, condition, origin_only))
        })
        .collect();
    let locals = Block::builder("locals")
        .add_attribute(("rate_limit_rules", list(rules)))
        .build();
    let resource = ruleset(
        "rate_limits",
        "Rampart rate limits",
        "http_ratelimit",
        raw(format!(
            "slice(local.rate_limit_rules, 0, min(var.rate_limit_rules, {count}))"
        )),
    );
    Ok(Body::builder()
        .add_block(locals)
        .add_block(resource)
        .build())
}

fn rate_limit_rule(
    tier: RateLimitTier,
    limit: RateLimit,
    condition: Condition,
    origin_only: bool,
) -> Expression {
    let window = limit.window_seconds;
    let period = RATE_LIMIT_PERIODS
        .iter()
        .rev()
        .copied()
        .find(|&p| p <= window)
        .unwrap_or(RATE_LIMIT_PERIODS[0]);
    let clamped = format!("min({period}, var.rate_limit_max_period)");
    let ratelimit = ObjectBuilder::new()
        .set(
            "characteristics",
            list(["cf.colo.id".into(), "ip.src".into()]),
        )
        .set("period", raw(clamped.clone()))
        .set(
            "requests_per_period",
            raw(format!(
                "max(1, floor({} * {clamped} / {window}))",
                limit.max_requests
            )),
        )
        .set("mitigation_timeout", raw(clamped))
        .set_some("requests_to_origin", origin_only.then_some(true));
    let description = format!(
        "{} tier: {} requests per {} s per client{}",
        tier.as_str(),
        limit.max_requests,
        window,
        if origin_only {
            ", counting only requests that reach the origin"
        } else {
            ""
        }
    );
    ObjectBuilder::new()
        .set("ref", format!("rampart_rate_limit_{}", tier.as_str()))
        .set("description", description)
        .set("expression", condition.to_string())
        .set("action", "block")
        .set("ratelimit", ratelimit.build())
        .set("enabled", true)
        .build()
}

/// The paths whose deciding rule (the policy's first match) satisfies `pick`, written directly
/// or as the negation of the rest, whichever is shorter.
pub fn decided_by(
    policy: &Policy,
    pick: impl Fn(&Rule) -> bool,
) -> Result<Condition, UnsupportedPattern> {
    let direct = first_match(policy, &pick)?;
    let total = policy
        .rules()
        .iter()
        .any(|rule| rule.pattern.is_prefix() && rule.pattern.segments().next().is_none());
    if !total {
        return Ok(direct);
    }
    let complement = first_match(policy, &|rule: &Rule| !pick(rule))?.negate();
    Ok(if complement.to_string().len() < direct.to_string().len() {
        complement
    } else {
        direct
    })
}

/// Paths matched by a picked rule and by no earlier rule that could also match them.
fn first_match(
    policy: &Policy,
    pick: &dyn Fn(&Rule) -> bool,
) -> Result<Condition, UnsupportedPattern> {
    let rules = policy.rules();
    let mut picked = Vec::new();
    for (index, rule) in rules.iter().enumerate().filter(|(_, rule)| pick(rule)) {
        let mut shadows = Vec::new();
        for earlier in &rules[..index] {
            if !disjoint(&earlier.pattern, &rule.pattern) {
                shadows.push(Condition::for_pattern(&earlier.pattern)?);
            }
        }
        let own = Condition::for_pattern(&rule.pattern)?;
        picked.push(match Condition::any(shadows) {
            Some(shadow) => Condition::all(vec![own, shadow.negate()]),
            None => own,
        });
    }
    Ok(Condition::any(picked).unwrap_or_else(|| Condition::True.negate()))
}

fn rule_object(
    reference_name: &str,
    description: &str,
    condition: Condition,
    action: &str,
    parameters: Expression,
) -> Expression {
    ObjectBuilder::new()
        .set("ref", reference_name)
        .set("description", description)
        .set("expression", condition.to_string())
        .set("action", action)
        .set("action_parameters", parameters)
        .set("enabled", true)
        .build()
}

fn ruleset(label: &str, name: &str, phase: &str, rules: Expression) -> Block {
    Block::builder("resource")
        .add_label("cloudflare_ruleset")
        .add_label(label)
        .add_attribute(("zone_id", reference("var.zone_id")))
        .add_attribute(("name", name))
        .add_attribute(("description", "Generated from shared/policy.toml"))
        .add_attribute(("kind", "zone"))
        .add_attribute(("phase", phase))
        .add_attribute(("rules", rules))
        .build()
}

/// One body per generated file.
pub fn body(block: Block) -> Body {
    Body::builder().add_block(block).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policys_first_matching_rule_decides_the_cache_settings() {
        let policy = Policy::default();
        let text =
            hcl::format::to_string(&cache_rules(&policy).expect("translates")).expect("formats");
        let popular = text.find("rampart_cache_popular_tasks").expect("rule");
        let task = text.find("\"rampart_cache_task\"").expect("rule");
        let html = text.find("rampart_cache_html").expect("rule");
        assert!(html < task && task < popular, "reverse policy order");
        assert!(text.trim_end().ends_with('}'));
        let bypass = text
            .find("rampart_cache_bypass_authenticated")
            .expect("rule");
        assert!(bypass > popular, "the authenticated bypass comes last");
    }

    #[test]
    fn tier_and_compression_conditions_follow_the_first_matching_rule() {
        let policy = Policy::default();
        let paths = [
            "/",
            "/tasks/7",
            "/tasks/7/x",
            "/assets/app.css",
            "/images/a.jpg",
            "/cdn-cgi/image/width=100/images/a.jpg",
            "/api/admin/cache/invalidate",
            "/api/cache/stats",
            "/api/auth/login",
            "/api/events/export",
            "/api/tasks",
            "/api/tasks/1",
            "/api/tasks/1/comments",
            "/api/tasks/popular",
            "/api/stats",
            "/api/other/thing",
            "/health",
            "/health/ready",
            "/metrics",
            "/about",
        ];
        for tier in RateLimitTier::ALL {
            let condition =
                decided_by(&policy, |rule| rule.policy.rate_limit == tier).expect("translates");
            for path in paths {
                let (rule, _) = policy.route(path).expect("the policy is total");
                assert_eq!(
                    condition.holds_for_path(path, false),
                    rule.policy.rate_limit == tier,
                    "{tier:?} on {path}: {condition}"
                );
            }
        }
        let uncompressed = decided_by(&policy, |rule| !rule.policy.compress).expect("translates");
        for path in paths {
            let (rule, _) = policy.route(path).expect("the policy is total");
            assert_eq!(
                uncompressed.holds_for_path(path, false),
                !rule.policy.compress,
                "{path}"
            );
        }
    }

    #[test]
    fn tracking_prefixes_become_exact_names() {
        let names = excluded_params(&Policy::default());
        assert!(names.contains(&"utm_source".to_owned()));
        assert!(names.contains(&"fbclid".to_owned()));
        assert!(!names.iter().any(|name| name.contains('*')));
    }

    #[test]
    fn tiers_scale_to_an_allowed_period() {
        let text = hcl::format::to_string(&rate_limits(&Policy::default()).expect("translates"))
            .expect("formats");
        assert!(
            text.contains("min(600, var.rate_limit_max_period)"),
            "{text}"
        );
        assert!(text.contains("max(1, floor(100 * min(600, var.rate_limit_max_period) / 900))"));
        assert!(text.contains("min(60, var.rate_limit_max_period)"));
        assert!(text.contains("/api/admin"));
    }
}
