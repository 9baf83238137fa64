//! The operator's status page over real HTTP: who may open it (the admin token, or a TCP peer
//! in `STATUS_ALLOW_NETWORKS`, never forwarding headers), that no cache stores it, that slow
//! requests are listed; and, in a real browser (Debian's Chromium driven by playwright-core),
//! that it renders within the site's Content Security Policy with its charts, breakers and
//! queues, leaving a screenshot for a person to look at.
//!
//! The browser test fails when Node, playwright-core (`npm ci`) or Chromium is missing, since
//! `scripts/test.sh` installs them; `RAMPART_SKIP_BROWSER=1` skips it on a machine without them.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{cache_status, start};
use origin::config::{ApplicationConfig, Config, StatusConfig};
use serde_json::Value;

const TOKEN: &str = "status-s3cret";

/// A configuration with `token`, `networks` allowed, and samples every second.
fn config(token: Option<&str>, networks: &str, slow_ms: u64) -> Config {
    Config {
        application: ApplicationConfig {
            admin_token: token.map(str::to_owned),
            ..ApplicationConfig::default()
        },
        status: StatusConfig {
            allow_networks: networks
                .split(',')
                .filter(|net| !net.is_empty())
                .map(|net| net.parse().expect("a CIDR range"))
                .collect(),
            slow_request: Duration::from_millis(slow_ms),
            sample_interval: Duration::from_secs(1),
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

#[tokio::test]
async fn the_admin_token_opens_it_and_nothing_else_does() {
    let origin = start(config(Some(TOKEN), "", 500)).await;
    let page = format!("{}/status", origin.base);
    let missing = get(&page, &[]).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let spoofed = [
        ("authorization", "Bearer status-s3cre"),
        ("x-forwarded-for", "127.0.0.1"),
    ];
    assert_eq!(get(&page, &spoofed).await.status(), 401);
    let bearer = format!("Bearer {TOKEN}");
    let right = get(&page, &[("authorization", &bearer)]).await;
    assert_eq!(right.status(), 200);
    let headers = right.headers();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-store");
    let csp = headers["content-security-policy"].to_str().expect("ascii");
    assert!(csp.contains("style-src 'self'") && csp.contains("script-src 'self'"));
    let html = right.text().await.expect("body");
    assert!(html.contains("<svg class=\"chart\" data-series=\"rate\""));
    let style = get(&format!("{page}/style.css"), &[]).await;
    assert_eq!(style.status(), 200, "the stylesheet holds no secret");
    assert_eq!(style.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(style.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn an_allowed_network_opens_it_without_the_token() {
    let allowed = start(config(None, "127.0.0.0/8", 500)).await;
    let page = format!("{}/status", allowed.base);
    let first = get(&page, &[]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "no-store");
    let second = get(&page, &[]).await;
    assert_eq!(second.status(), 200);
    assert!(
        !cache_status(&second).contains("hit"),
        "never from the cache: {}",
        cache_status(&second)
    );
    assert!(!second.headers().contains_key("cache-tag"));

    let elsewhere = start(config(None, "10.0.0.0/8", 500)).await;
    let forwarded = [
        ("x-forwarded-for", "10.1.2.3"),
        ("cf-connecting-ip", "10.1.2.3"),
    ];
    let refused = get(&format!("{}/status", elsewhere.base), &forwarded).await;
    assert_eq!(
        refused.status(),
        403,
        "the TCP peer decides, not its headers"
    );
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["code"], "ADMIN_DISABLED");
}

#[tokio::test]
async fn slow_requests_are_listed_with_their_route_and_id() {
    // Every request of at least 1 ms is slow: a page rendered from the database is.
    let origin = start(config(Some(TOKEN), "", 1)).await;
    let id = "slow-probe-1";
    let slow = get(
        &format!("{}/?probe=1", origin.base),
        &[("x-request-id", id)],
    )
    .await;
    assert_eq!(slow.status(), 200);
    let bearer = format!("Bearer {TOKEN}");
    let html = get(
        &format!("{}/status", origin.base),
        &[("authorization", &bearer)],
    )
    .await
    .text()
    .await
    .expect("body");
    let listed = html
        .split("<tr>")
        .find(|row| row.contains(id))
        .unwrap_or_else(|| panic!("{id} listed among the slow requests"));
    assert!(listed.contains("<td class=\"route\">/</td>"), "{listed}");
    assert!(listed.contains("<td>GET</td>"), "{listed}");
}

/// The repository's root.
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("origin/ has a parent")
        .to_path_buf()
}

/// Chromium's path (`CHROMIUM`, else Debian's).
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// What the browser test needs and is missing, if anything.
fn missing_browser_tools() -> Option<String> {
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|out| out.status.success()) {
        return Some("node (scripts/lib.sh: ensure_node)".to_owned());
    }
    if !repository().join("node_modules/playwright-core").is_dir() {
        return Some("playwright-core (npm ci at the repository's root)".to_owned());
    }
    if !Path::new(&chromium()).exists() {
        return Some(format!(
            "Chromium at {} (apt-get install chromium; scripts/lib.sh: ensure_chromium)",
            chromium()
        ));
    }
    None
}

/// Sends a mix of cache misses (new query strings) and hits (repeated URLs), several times a
/// second for `span`.
async fn traffic(base: &str, span: Duration) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < span {
        round += 1;
        let urls = [
            format!("{base}/api/tasks?limit=5&round={round}"),
            format!("{base}/api/tasks?limit=5"),
            format!("{base}/api/stats"),
            format!("{base}/?round={round}"),
            format!("{base}/"),
        ];
        for url in urls {
            let response = client.get(url).send().await.expect("reachable");
            assert!(response.status().is_success(), "{}", response.status());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// The circles of the chart showing `series` in `html`.
fn points(html: &str, series: &str) -> usize {
    let start = format!("<svg class=\"chart\" data-series=\"{series}\"");
    html.split_once(&start)
        .and_then(|(_, rest)| rest.split_once("</svg>"))
        .map_or(0, |(chart, _)| chart.matches("<circle").count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_renders_in_a_browser_within_the_content_security_policy() {
    if let Some(missing) = missing_browser_tools() {
        if std::env::var("RAMPART_SKIP_BROWSER").is_ok_and(|v| v == "1") {
            eprintln!("skipped (RAMPART_SKIP_BROWSER=1): {missing} is missing");
            return;
        }
        panic!("the browser test needs {missing}; set RAMPART_SKIP_BROWSER=1 to skip it");
    }
    let origin = start(config(Some(TOKEN), "", 1)).await;
    let base = origin.base.clone();
    let bearer = format!("Bearer {TOKEN}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        traffic(&base, Duration::from_millis(1200)).await;
        let html = get(&format!("{base}/status"), &[("authorization", &bearer)])
            .await
            .text()
            .await
            .expect("body");
        if ["rate", "latency", "hit-ratio"]
            .iter()
            .all(|series| points(&html, series) >= 3)
        {
            break;
        }
        assert!(Instant::now() < deadline, "no samples after 30 s");
    }
    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let output = tokio::process::Command::new("node")
        .arg(repository().join("tests/browser/status.cjs"))
        .args([&base, TOKEN])
        .arg(&screenshot)
        .env("CHROMIUM", chromium())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("the browser finishes within 2 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser check failed:\n{stdout}\n{stderr}"
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("a JSON report");
    for series in ["rate", "latency", "hit-ratio"] {
        let count = report["points"][series].as_u64().unwrap_or(0);
        assert!(count >= 2, "{series}: {count} points in the browser");
    }
    assert_eq!(report["breakers"], 3, "{report}");
    assert_eq!(report["queues"], 5, "{report}");
    assert_eq!(report["violations"], serde_json::json!([]), "{report}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert!(
        screenshot.is_file(),
        "a screenshot at {}",
        screenshot.display()
    );
    println!("status page screenshot: {}", screenshot.display());
}
