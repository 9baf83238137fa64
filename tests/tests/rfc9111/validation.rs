//! RFC 9111 §4.3: validation, freshening with 304 and HEAD, and conditional requests answered from the cache.

use std::sync::Arc;
use std::time::Duration;

use rampart_tests::test_origin::Reply;

use crate::support::{expect_eq, http_date, Ctx, Outcome};

// ---- §3.2, §4.3.3–4.3.4: freshening with 304 ------------------------------------------------

pub(crate) async fn not_modified_freshens_the_stored_response(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.3.4/freshen";
    c.origin.script(
        path,
        vec![
            Reply::ok("stored body")
                .header("Cache-Control", "max-age=1")
                .header("ETag", "\"v1\"")
                .header("X-Test", "a"),
            Reply::status(304)
                .header("Cache-Control", "max-age=600")
                .header("ETag", "\"v1\"")
                .header("X-Test", "b"),
        ],
    );
    c.get(path, &[]).await?;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let validated = c.get(path, &[("if-none-match", "\"other\"")]).await?;
    let seen = c.origin.requests(path);
    expect_eq(
        seen.get(1).and_then(|r| r.header("if-none-match")),
        Some("\"v1\"".to_owned()),
        "the validation carries the stored ETag verbatim",
    )?;
    expect_eq(validated.status, 200, "status after a 304")?;
    expect_eq(validated.body.as_str(), "stored body", "body after a 304")?;
    expect_eq(
        validated.header("x-test"),
        Some("b".to_owned()),
        "X-Test updated",
    )?;
    let hit = c.get(path, &[]).await?;
    expect_eq(c.count(path), 2, "the freshened response is fresh again")?;
    expect_eq(
        hit.header("x-test"),
        Some("b".to_owned()),
        "X-Test on the hit",
    )?;
    expect_eq(
        hit.header("cache-control"),
        Some("max-age=600".to_owned()),
        "Cache-Control updated",
    )?;
    expect_eq(hit.body.as_str(), "stored body", "body on the hit")
}

pub(crate) async fn last_modified_validates_too(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.3.4/last-modified";
    let modified = "Wed, 01 Jan 2020 00:00:00 GMT";
    c.origin.script(
        path,
        vec![
            Reply::ok("lm body")
                .header("Cache-Control", "max-age=1")
                .header("Last-Modified", modified),
            Reply::status(304).header("Cache-Control", "max-age=600"),
        ],
    );
    c.get(path, &[]).await?;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let validated = c.get(path, &[]).await?;
    let seen = c.origin.requests(path);
    expect_eq(
        seen.get(1).and_then(|r| r.header("if-modified-since")),
        Some(modified.to_owned()),
        "If-Modified-Since is the stored Last-Modified",
    )?;
    expect_eq(validated.body.as_str(), "lm body", "body after a 304")
}

// ---- §4.3.1–4.3.2, RFC 9110 §13: conditional requests ------------------------------------

pub(crate) async fn conditional_requests_answered_from_fresh_responses(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.3.2/inm";
    let modified = http_date(-3000);
    c.origin.script(
        path,
        vec![Reply::ok("x")
            .header("Cache-Control", "max-age=600")
            .header("ETag", "\"abc\"")
            .header("Last-Modified", &modified)],
    );
    c.get(path, &[]).await?;
    let weak = c.get(path, &[("if-none-match", "W/\"abc\"")]).await?;
    expect_eq(weak.status, 304, "weak comparison matches")?;
    expect_eq(
        weak.header("etag"),
        Some("\"abc\"".into()),
        "a 304 carries ETag",
    )?;
    let list = c
        .get(path, &[("if-none-match", "\"x\", \"abc\", \"y\"")])
        .await?;
    expect_eq(list.status, 304, "a member of a list matches")?;
    let other = c.get(path, &[("if-none-match", "\"zzz\"")]).await?;
    expect_eq(other.status, 200, "another tag")?;
    let since = c
        .get(path, &[("if-modified-since", &http_date(-10))])
        .await?;
    expect_eq(since.status, 304, "If-Modified-Since after Last-Modified")?;
    let before = c
        .get(path, &[("if-modified-since", &http_date(-5000))])
        .await?;
    expect_eq(before.status, 200, "If-Modified-Since before Last-Modified")?;
    let precedence = c
        .get(
            path,
            &[
                ("if-none-match", "\"zzz\""),
                ("if-modified-since", &http_date(-10)),
            ],
        )
        .await?;
    expect_eq(precedence.status, 200, "If-None-Match takes precedence")?;
    expect_eq(c.count(path), 1, "all answered by the edge")
}

pub(crate) async fn if_modified_since_falls_back_on_date(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.3.2/date";
    c.origin.script(
        path,
        vec![Reply::ok("x")
            .header("Cache-Control", "max-age=600")
            .header("Date", &http_date(-100))],
    );
    c.get(path, &[]).await?;
    let got = c
        .get(path, &[("if-modified-since", &http_date(-10))])
        .await?;
    expect_eq(got.status, 304, "Date stands in for Last-Modified")
}

pub(crate) async fn a_miss_forwards_the_clients_conditions(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.3.1/forward";
    c.origin
        .script(path, vec![Reply::status(304).header("ETag", "\"abc\"")]);
    let got = c.get(path, &[("if-none-match", "\"abc\"")]).await?;
    let seen = c.origin.requests(path);
    expect_eq(
        seen.first().and_then(|r| r.header("if-none-match")),
        Some("\"abc\"".into()),
        "the origin sees the client's If-None-Match",
    )?;
    expect_eq(got.status, 304, "the origin's 304 passed on")
}

// ---- §4.3.5: HEAD ----------------------------------------------------------------------------

pub(crate) async fn head_requests(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.3.5/head";
    c.origin.script(
        path,
        vec![Reply::ok("body").header("Cache-Control", "max-age=600")],
    );
    let head = c.send("HEAD", path, &[], None).await?;
    expect_eq(head.status, 200, "HEAD status")?;
    expect_eq(
        c.origin.requests(path).first().map(|r| r.method.clone()),
        Some("HEAD".into()),
        "HEAD reaches the origin as HEAD",
    )?;
    c.get(path, &[]).await?;
    let from_cache = c.send("HEAD", path, &[], None).await?;
    expect_eq(from_cache.body.as_str(), "", "HEAD has no body")?;
    expect_eq(
        c.count(path),
        2,
        "HEAD then GET then HEAD from the stored GET",
    )
}

pub(crate) async fn head_freshens_the_stored_get(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.3.5/head-update";
    c.origin.script(
        path,
        vec![
            Reply::ok("body")
                .header("Cache-Control", "max-age=1")
                .header("ETag", "\"h\"")
                .header("X-A", "1"),
            Reply::ok("")
                .header("Cache-Control", "max-age=600")
                .header("ETag", "\"h\"")
                .header("X-A", "2"),
        ],
    );
    c.get(path, &[]).await?;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    c.send("HEAD", path, &[], None).await?;
    let got = c.get(path, &[]).await?;
    expect_eq(c.count(path), 2, "the GET after the HEAD is a hit")?;
    expect_eq(got.header("x-a"), Some("2".into()), "headers from the HEAD")?;
    expect_eq(got.body.as_str(), "body", "the stored body")
}
