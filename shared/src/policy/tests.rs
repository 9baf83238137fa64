//! Policy tests: the default rules, decisions, emission and validation errors.

use super::*;
use crate::duration::Seconds;
use crate::rate_limit::RateLimitTier;

fn get(path: &str) -> RequestFacts<'_> {
    RequestFacts {
        method: "GET",
        path,
        ..RequestFacts::default()
    }
}

#[test]
fn default_policy_has_the_seed_lifetimes() {
    let policy = Policy::default();
    let rule = |path: &str| {
        policy
            .route(path)
            .map(|(rule, _)| rule.policy.clone())
            .expect("a rule matches")
    };
    let assets = rule("/assets/app.3f2a.css");
    assert_eq!(
        (assets.edge_ttl, assets.browser_ttl, assets.immutable),
        (Seconds::YEAR, Seconds::YEAR, true)
    );
    let images = rule("/images/abc.jpg");
    assert_eq!(images.edge_ttl, Seconds::YEAR);
    assert!(images.image_transform && !images.compress);
    assert_eq!(rule("/api/tasks").edge_ttl, Seconds(300));
    let html = rule("/");
    assert_eq!(html.edge_ttl, Seconds(300));
    assert!(!html.stale_while_revalidate.is_zero());
    assert_eq!(
        rule("/api/admin/cache/invalidate").rate_limit,
        RateLimitTier::Aggressive
    );
    assert!(rule("/health").bypass && rule("/health/ready").bypass);
    // The operator's status page: live figures, never stored.
    for path in ["/status", "/status/style.css"] {
        let status = rule(path);
        assert!(status.bypass && status.exempt_from_admission, "{path}");
        assert_eq!(status.rate_limit, RateLimitTier::Aggressive, "{path}");
    }
    assert!(!rule("/statuses").bypass, "only the page's own paths");
}

#[test]
fn personal_and_unsafe_requests_bypass() {
    let policy = Policy::default();
    let post = RequestFacts {
        method: "POST",
        ..get("/api/tasks")
    };
    assert_eq!(policy.decide(&post).bypass, Some(BypassReason::Method));
    let authorized = RequestFacts {
        has_authorization: true,
        ..get("/api/tasks")
    };
    assert_eq!(
        policy.decide(&authorized).bypass,
        Some(BypassReason::Authorization)
    );
    let session = RequestFacts {
        cookie: Some("theme=dark; session=abc"),
        ..get("/")
    };
    assert_eq!(
        policy.decide(&session).bypass,
        Some(BypassReason::SessionCookie)
    );
    let harmless = RequestFacts {
        cookie: Some("theme=dark; sessionx=1"),
        ..get("/")
    };
    assert_eq!(policy.decide(&harmless).bypass, None);
    assert_eq!(
        policy.decide(&get("/metrics")).bypass,
        Some(BypassReason::Rule)
    );
    assert!(policy
        .decide(&RequestFacts {
            method: "HEAD",
            ..get("/")
        })
        .is_cacheable());
}

#[test]
fn tags_are_rendered_from_captures() {
    let policy = Policy::default();
    assert_eq!(policy.decide(&get("/api/tasks/42")).tags, vec!["task:42"]);
    assert_eq!(
        policy.decide(&get("/api/tasks/42/comments")).tags,
        vec!["comments:42"]
    );
    assert_eq!(
        policy.decide(&get("/api/tasks/popular")).tags,
        vec!["tasks"]
    );
    assert_eq!(
        policy.decide(&get("/tasks/7")).tags,
        vec!["html", "task:7", "comments:7"]
    );
}

#[test]
fn cache_control_emission() {
    let policy = Policy::default();
    let assets = policy
        .decide(&get("/assets/a.js"))
        .cache_control()
        .to_string();
    assert_eq!(
        assets,
        "public, max-age=31536000, s-maxage=31536000, immutable"
    );
    let api = policy
        .decide(&get("/api/tasks"))
        .cache_control()
        .to_string();
    assert_eq!(
        api,
        "public, max-age=60, s-maxage=300, stale-while-revalidate=60, stale-if-error=86400"
    );
    let personal = RequestFacts {
        has_authorization: true,
        ..get("/api/tasks")
    };
    assert_eq!(
        policy.decide(&personal).cache_control().to_string(),
        "private, no-store"
    );
    let write = RequestFacts {
        method: "POST",
        ..get("/api/tasks")
    };
    assert_eq!(
        policy.decide(&write).cache_control().to_string(),
        "no-store"
    );
}

#[test]
fn no_matching_rule_bypasses() {
    let policy = Policy::from_toml("[[rules]]\nname = \"a\"\npattern = \"/a\"\nedge_ttl = 5")
        .expect("valid");
    assert_eq!(policy.decide(&get("/b")).bypass, Some(BypassReason::NoRule));
    assert!(policy.decide(&get("/a")).is_cacheable());
}

fn error_of(toml: &str) -> (String, String) {
    match Policy::from_toml(toml) {
        Err(PolicyError::Invalid { rule, field, .. }) => (rule, field),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn validation_errors_name_the_rule_and_field() {
    let rule = |body: &str| format!("[[rules]]\nname = \"r\"\npattern = \"/r/{{id}}\"\n{body}");
    assert_eq!(
        error_of(&rule("edge_ttl = \"5 minutes\"")),
        ("r".into(), "edge_ttl".into())
    );
    assert_eq!(
        error_of(&rule("edge_tll = 5")),
        ("r".into(), "edge_tll".into())
    );
    assert_eq!(
        error_of(&rule("rate_limit = \"fast\"")),
        ("r".into(), "rate_limit".into())
    );
    assert_eq!(
        error_of(&rule("tags = [\"x:{slug}\"]")),
        ("r".into(), "tags".into())
    );
    assert_eq!(
        error_of(&rule("bypass = true\nedge_ttl = 5")),
        ("r".into(), "edge_ttl".into())
    );
    assert_eq!(
        error_of(&rule("immutable = true\nedge_ttl = 5")),
        ("r".into(), "immutable".into())
    );
    assert_eq!(
        error_of(&rule("security_headers = { \"bad name\" = \"x\" }")),
        ("r".into(), "security_headers".into())
    );
    assert_eq!(
        error_of("[[rules]]\nname = \"p\"\npattern = \"nope\""),
        ("p".into(), "pattern".into())
    );
    assert_eq!(
        error_of("[[rules]]\npattern = \"/\""),
        ("#1".into(), "name".into())
    );
    let twice =
        "[[rules]]\nname = \"a\"\npattern = \"/\"\n[[rules]]\nname = \"a\"\npattern = \"/b\"";
    assert_eq!(error_of(twice), ("a".into(), "name".into()));
    assert_eq!(
        error_of("rules = []"),
        ("(top level)".into(), "rules".into())
    );
    assert!(matches!(
        Policy::from_toml("rules = ["),
        Err(PolicyError::Syntax(_))
    ));
    assert!(matches!(
        Policy::from_toml("surprise = 1\nrules = []"),
        Err(PolicyError::Syntax(_))
    ));
}

#[test]
fn json_and_toml_load_the_same_policy() {
    let json = r#"{"keys": {"ignored_params": ["ref"]}, "rules": [
        {"name": "api", "pattern": "/api/*", "edge_ttl": "5m", "tags": ["api"], "rate_limit": "crawler"}
    ]}"#;
    let toml = "[keys]\nignored_params = [\"ref\"]\n[[rules]]\nname = \"api\"\npattern = \"/api/*\"\nedge_ttl = 300\ntags = [\"api\"]\nrate_limit = \"crawler\"";
    assert_eq!(
        Policy::from_json(json).expect("valid json"),
        Policy::from_toml(toml).expect("valid toml")
    );
}

#[test]
fn cookies_and_client_directives_are_opt_in_and_opt_out() {
    let policy = Policy::default();
    assert!(policy.honours_client_directives());
    assert!(policy
        .rules()
        .iter()
        .all(|rule| !rule.policy.store_set_cookie));
    let custom = Policy::from_toml(
        "client_cache_control = \"ignore\"\n\
         [[rules]]\nname = \"r\"\npattern = \"/*\"\nedge_ttl = \"1m\"\n\
         store_set_cookie = true\nenforced_security_headers = [\"x-frame-options\"]\n",
    )
    .expect("valid policy");
    assert!(!custom.honours_client_directives());
    let rule = &custom.rules()[0].policy;
    assert!(rule.store_set_cookie);
    assert_eq!(rule.enforced_security_headers, vec!["x-frame-options"]);
    assert!(Policy::from_toml(
        "client_cache_control = \"sometimes\"\n[[rules]]\nname = \"r\"\npattern = \"/*\"\n"
    )
    .is_err());
    let (rule, field) = error_of(
        "[[rules]]\nname = \"r\"\npattern = \"/*\"\nenforced_security_headers = [\"bad name\"]\n",
    );
    assert_eq!(
        (rule.as_str(), field.as_str()),
        ("r", "enforced_security_headers")
    );
}

#[test]
fn the_shield_policy_names_only_the_shields_own_routes() {
    let policy = Policy::shield();
    let decide = |path: &str| {
        policy.decide(&RequestFacts {
            method: "GET",
            path,
            ..RequestFacts::default()
        })
    };
    assert_eq!(decide("/health/ready").bypass, Some(BypassReason::Rule));
    assert_eq!(decide("/metrics").bypass, Some(BypassReason::Rule));
    let application = decide("/api/tasks/1");
    assert!(application.rule.is_none(), "the upstream's path");
    assert_eq!(application.bypass, Some(BypassReason::NoRule));
}
