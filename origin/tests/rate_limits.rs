//! Rate limits per client and tier, on one origin with its in-process limiter.

mod common;

use common::start;
use origin::config::{Config, ResilienceConfig};
use origin::core::http::client::EdgeTrust;
use origin::core::layers::rate_limit::Budgets;
use serde_json::Value;
use shared::rate_limit::RateLimit;

fn budgets(default: u32, crawler: u32) -> Budgets {
    let per_minute = |max_requests| RateLimit {
        max_requests,
        window_seconds: 60,
    };
    Budgets {
        default: per_minute(default),
        crawler: per_minute(crawler),
        aggressive: per_minute(2),
    }
}

/// The default configuration with `budgets`.
fn limited(budgets: Budgets) -> Config {
    Config {
        resilience: ResilienceConfig {
            rate_limits: Some(budgets),
            ..ResilienceConfig::default()
        },
        ..Config::default()
    }
}

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("reachable")
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().expect("ascii").to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_spent_budget_answers_429_with_retry_after() {
    let origin = start(limited(budgets(3, 1))).await;
    let url = format!("{}/api/tasks/1", origin.base);
    for left in ["2", "1", "0"] {
        let response = get(&url, &[]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-limit"), "3");
        assert_eq!(header(&response, "x-ratelimit-remaining"), left);
        let reset: u64 = header(&response, "x-ratelimit-reset")
            .parse()
            .expect("seconds");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        assert!(reset > now && reset <= now + 61, "reset {reset} at {now}");
    }
    let refused = get(&url, &[]).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = header(&refused, "retry-after").parse().expect("seconds");
    assert!(
        (1..=20).contains(&retry),
        "one request refills in 20 s: {retry}"
    );
    assert_eq!(header(&refused, "cache-control"), "no-store");
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["code"], "RATE_LIMITED");
    assert_eq!(body["statusCode"], 429);
    assert_eq!(body["metadata"]["tier"], "default");

    // Health checks are never limited and carry no limit headers.
    let health = get(&format!("{}/health", origin.base), &[]).await;
    assert_eq!(health.status(), 200);
    assert_eq!(header(&health, "x-ratelimit-limit"), "");
    let metrics = reqwest::get(format!("{}/metrics", origin.base))
        .await
        .expect("reachable")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("rate_limited_total{tier=\"default\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn spoofed_forwarding_headers_gain_no_quota() {
    let mut config = limited(budgets(2, 1));
    config.resilience.edge_trust = EdgeTrust {
        token: Some("edge-secret".into()),
        proxies: Vec::new(),
    };
    let origin = start(config).await;
    let url = format!("{}/api/tasks/2", origin.base);
    let mut statuses = Vec::new();
    for n in 0..4 {
        let ip = format!("198.51.100.{n}");
        let response = get(&url, &[("x-forwarded-for", &ip), ("cf-connecting-ip", &ip)]).await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 429], "one client, one budget");

    // Through the edge (the shared secret), each visitor has a budget of their own.
    for n in 0..3 {
        let ip = format!("203.0.113.{n}");
        let response = get(
            &url,
            &[
                ("cf-connecting-ip", &ip),
                ("x-rampart-origin-auth", "edge-secret"),
            ],
        )
        .await;
        assert_eq!(response.status(), 200, "visitor {ip}");
        assert_eq!(header(&response, "x-ratelimit-remaining"), "1");
    }
    let wrong_secret = get(
        &url,
        &[
            ("cf-connecting-ip", "203.0.113.50"),
            ("x-rampart-origin-auth", "guess"),
        ],
    )
    .await;
    assert_eq!(
        wrong_secret.status(),
        429,
        "a wrong secret is the peer itself"
    );
}

#[tokio::test]
async fn the_crawler_tier_is_for_endpoints_that_fetch_urls_not_for_user_agents() {
    let mut config = limited(budgets(50, 1));
    config.application.admin_token = Some("admin".into());
    let origin = start(config).await;
    let url = format!("{}/api/tasks/3", origin.base);
    for agent in [
        "curl/8.5.0",
        "python-requests/2.31.0",
        "Go-http-client/1.1",
        "Wget/1.21",
        "Mozilla/5.0 (compatible; Googlebot/2.1)",
    ] {
        let response = get(&url, &[("user-agent", agent)]).await;
        assert_eq!(response.status(), 200, "{agent}");
        assert_eq!(header(&response, "x-ratelimit-limit"), "50", "{agent}");
    }
    let links = format!("{}/api/tasks/3/links", origin.base);
    let add = || async {
        reqwest::Client::new()
            .post(&links)
            .header("x-actor", "tester")
            .json(&serde_json::json!({ "url": "http://127.0.0.1:9/" }))
            .send()
            .await
            .expect("reachable")
    };
    let first = add().await;
    assert_ne!(first.status(), 429);
    assert_eq!(header(&first, "x-ratelimit-limit"), "1");
    let second = add().await;
    assert_eq!(second.status(), 429);
    let body: Value = second.json().await.expect("json");
    assert_eq!(body["metadata"]["tier"], "crawler");
    let read = get(&links, &[]).await;
    assert_eq!(read.status(), 200, "reading links is an ordinary read");
    assert_eq!(header(&read, "x-ratelimit-limit"), "50");
}

#[tokio::test]
async fn sensitive_routes_have_their_own_tier() {
    let mut config = limited(budgets(50, 1));
    config.application.admin_token = Some("admin".into());
    let origin = start(config).await;
    let stats = format!("{}/api/cache/stats", origin.base);
    let auth = [("authorization", "Bearer admin")];
    let first = get(&stats, &auth).await;
    assert_eq!(header(&first, "x-ratelimit-limit"), "2");
    assert_eq!(get(&stats, &auth).await.status(), 200);
    assert_eq!(get(&stats, &auth).await.status(), 429);
}
