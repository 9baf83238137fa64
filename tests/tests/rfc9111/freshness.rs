//! RFC 9111 §4.2: freshness, age and dates, and serving stale (§4.2.4, RFC 5861).

use std::sync::Arc;
use std::time::Duration;

use rampart_tests::test_origin::{Framing, Reply};

use crate::support::{
    expect, expect_eq, fetched_twice, http_date, not_reused, reused, Ctx, Outcome,
};

// ---- §4.2: freshness and age -----------------------------------------------------------------

pub(crate) async fn upstream_age_counts(c: Arc<Ctx>) -> Outcome {
    let stale = Reply::ok("x")
        .header("Cache-Control", "max-age=3600")
        .header("Age", "7200");
    not_reused(&c, "/s4.2.3/age-stale", stale).await?;
    let path = "/s4.2.3/age-sent";
    let aged = Reply::ok("x")
        .header("Cache-Control", "max-age=3600")
        .header("Age", "100");
    c.origin.script(path, vec![aged]);
    let miss = c.get(path, &[]).await?;
    expect_eq(
        miss.header("age"),
        Some("100".into()),
        "Age passed on as sent",
    )?;
    let hit = c.get(path, &[]).await?;
    let age: u64 = hit
        .header("age")
        .and_then(|a| a.parse().ok())
        .ok_or("a hit carries Age")?;
    expect(
        age >= 100,
        format!("Age on the hit includes the upstream age: {age}"),
    )
}

pub(crate) async fn age_values_are_parsed_as_section_5_1_says(c: Arc<Ctx>) -> Outcome {
    for (name, age, reuse) in [
        ("nonnumeric", "abc", true),
        ("negative", "-7200", true),
        ("float", "7200.0", true),
        ("large", "2147483648", false),
        ("suffix", "7200, 0", false),
        ("prefix", "0, 7200", true),
    ] {
        let path = format!("/s5.1/age-{name}");
        let reply = Reply::ok("x")
            .header("Cache-Control", "max-age=3600")
            .header("Age", age);
        let count = fetched_twice(&c, &path, reply, Duration::ZERO).await?;
        expect_eq(count == 1, reuse, &format!("Age: {age} reused"))?;
    }
    Ok(())
}

pub(crate) async fn expires_against_date(c: Arc<Ctx>) -> Outcome {
    let slow = Reply::ok("x")
        .header("Date", &http_date(-10))
        .header("Expires", &http_date(10))
        .header("Age", "25");
    not_reused(&c, "/s4.2.1/expires-slow-date", slow).await?;
    let old = Reply::ok("x")
        .header("Date", &http_date(400))
        .header("Expires", &http_date(300));
    not_reused(&c, "/s4.2.1/expires-old-date", old).await?;
    let invalid = Reply::ok("x").header("Expires", "0");
    not_reused(&c, "/s5.3/expires-invalid", invalid).await?;
    let future = Reply::ok("x")
        .header("Date", &http_date(0))
        .header("Expires", &http_date(3600));
    reused(&c, "/s4.2.1/expires-future", future).await?;
    let rfc850 = Reply::ok("x").header("Expires", "Thursday, 18-Aug-50 02:01:18 GMT");
    reused(&c, "/s5.6.7/expires-rfc850", rfc850).await?;
    let shouting = Reply::ok("x").header("Expires", "THU, 18 AUG 2050 02:01:18 gmt");
    reused(&c, "/s5.6.7/expires-case", shouting).await?;
    let utc = Reply::ok("x").header("Expires", "Thu, 18 Aug 2050 02:01:18 UTC");
    not_reused(&c, "/s5.6.7/expires-utc", utc).await
}

pub(crate) async fn shared_cache_lifetimes(c: Arc<Ctx>) -> Outcome {
    reused(
        &c,
        "/s5.2.2.10/s-maxage",
        Reply::ok("x").header("Cache-Control", "s-maxage=3600"),
    )
    .await?;
    let path = "/s5.2.2.10/s-maxage-shorter";
    let reply = Reply::ok("x").header("Cache-Control", "max-age=3600, s-maxage=1");
    let count = fetched_twice(&c, path, reply, Duration::from_millis(2100)).await?;
    expect_eq(count, 2, "s-maxage beats max-age")?;
    reused(
        &c,
        "/s5.2/quoted-extension",
        Reply::ok("x").header("Cache-Control", "extension=\"max-age=1\", max-age=3600"),
    )
    .await?;
    not_reused(
        &c,
        "/s5.2/single-quoted",
        Reply::ok("x").header("Cache-Control", "max-age='3600'"),
    )
    .await
}

pub(crate) async fn cdn_cache_control_targets_the_edge(c: Arc<Ctx>) -> Outcome {
    let targeted = Reply::ok("x")
        .header("Cache-Control", "no-store")
        .header("CDN-Cache-Control", "max-age=600");
    reused(&c, "/rfc9213/targeted", targeted).await?;
    let invalid = Reply::ok("x")
        .header("Cache-Control", "no-store")
        .header("CDN-Cache-Control", "max-age=600, &&&&");
    not_reused(&c, "/rfc9213/invalid", invalid).await?;
    let aged = Reply::ok("x")
        .header("CDN-Cache-Control", "max-age=3600")
        .header("Age", "7200");
    not_reused(&c, "/rfc9213/age", aged).await
}

pub(crate) async fn heuristic_freshness_for_heuristic_statuses_only(c: Arc<Ctx>) -> Outcome {
    let modified = http_date(-86_400);
    reused(
        &c,
        "/s4.2.2/heuristic-200",
        Reply::ok("x").header("Last-Modified", &modified),
    )
    .await?;
    reused(
        &c,
        "/s4.2.2/heuristic-404",
        Reply::status(404)
            .body("x")
            .header("Last-Modified", &modified),
    )
    .await?;
    reused(
        &c,
        "/s4.2.2/heuristic-public-599",
        Reply::status(599)
            .body("x")
            .header("Cache-Control", "public")
            .header("Last-Modified", &modified),
    )
    .await?;
    for code in [201u16, 403, 502, 599] {
        let reply = Reply::status(code)
            .body("x")
            .header("Last-Modified", &modified);
        not_reused(&c, &format!("/s4.2.2/heuristic-{code}"), reply).await?;
    }
    not_reused(&c, "/s4.2.2/none", Reply::ok("x")).await
}

// ---- §4.2.4: serving stale -------------------------------------------------------------------

pub(crate) async fn stale_if_error_on_5xx(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.2.4/stale-if-error";
    c.origin.script(
        path,
        vec![
            Reply::ok("kept").header("Cache-Control", "max-age=1, stale-if-error=600"),
            Reply::status(503).body("down"),
        ],
    );
    c.get(path, &[]).await?;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let got = c.get(path, &[]).await?;
    expect_eq(got.status, 200, "status")?;
    expect_eq(got.body.as_str(), "kept", "body")?;
    expect(
        got.cache_status().contains("stale-if-error"),
        format!("Cache-Status names stale-if-error: {}", got.cache_status()),
    )
}

pub(crate) async fn disconnected_cache_serves_stale_unless_forbidden(c: Arc<Ctx>) -> Outcome {
    for (name, cc, serves) in [
        ("plain", "max-age=1", true),
        ("must-revalidate", "max-age=1, must-revalidate", false),
        ("no-cache", "max-age=1, no-cache", false),
        ("s-maxage", "max-age=1, s-maxage=1", false),
    ] {
        let path = format!("/s4.2.4/disconnect-{name}");
        c.origin.script(
            &path,
            vec![
                Reply::ok("kept")
                    .header("Cache-Control", cc)
                    .header("ETag", "\"e\""),
                Reply::ok("never")
                    .framing(Framing::Reset)
                    .body("x".repeat(64)),
            ],
        );
        c.get(&path, &[]).await?;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let got = c.get(&path, &[]).await?;
        if serves {
            expect_eq(got.status, 200, &format!("{cc}: stale served"))?;
            expect_eq(got.body.as_str(), "kept", &format!("{cc}: stale body"))?;
        } else {
            expect(
                got.status >= 500 && got.header("x-origin-count").is_none(),
                format!(
                    "{cc}: the cache's own error, got {} {:?}",
                    got.status, got.body
                ),
            )?;
        }
    }
    Ok(())
}

pub(crate) async fn stale_while_revalidate_window(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.2.4/swr";
    c.origin.script(
        path,
        vec![
            Reply::ok("one").header("Cache-Control", "max-age=1, stale-while-revalidate=600"),
            Reply::ok("two").header("Cache-Control", "max-age=600"),
        ],
    );
    c.get(path, &[]).await?;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let stale = c.get(path, &[]).await?;
    expect_eq(stale.body.as_str(), "one", "served stale at once")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refreshed = c.get(path, &[]).await?;
    expect_eq(
        refreshed.body.as_str(),
        "two",
        "refreshed in the background",
    )?;
    expect_eq(c.count(path), 2, "one background refresh")
}
