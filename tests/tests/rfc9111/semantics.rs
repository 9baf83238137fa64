//! RFC 9110: hop-by-hop fields (§7.6.1) and byte ranges from stored responses (§14).

use std::sync::Arc;

use rampart_tests::test_origin::{Framing, Reply};

use crate::support::{expect, expect_eq, Ctx, Outcome};

// ---- RFC 9110 §7.6.1: hop-by-hop fields --------------------------------------------------

pub(crate) async fn hop_by_hop_fields(c: Arc<Ctx>) -> Outcome {
    // The runtime consumes a request's `Connection` itself; the fields it defines as
    // hop-by-hop are the edge's to drop.
    let path = "/rfc9110-7.6.1/request";
    c.origin.script(path, vec![Reply::ok("x")]);
    c.get(
        path,
        &[
            ("proxy-authorization", "Basic eDp5"),
            ("te", "trailers"),
            ("x-kept", "2"),
        ],
    )
    .await?;
    let seen = c.origin.requests(path);
    let first = seen.first().ok_or("the origin saw the request")?;
    expect(
        first.header("proxy-authorization").is_none(),
        "Proxy-Authorization dropped",
    )?;
    expect_eq(
        first.header("x-kept"),
        Some("2".into()),
        "other fields forwarded",
    )?;

    let path = "/rfc9110-7.6.1/response";
    c.origin.script(
        path,
        vec![Reply::ok("x")
            .header("Cache-Control", "max-age=600")
            .header("Connection", "X-A")
            .header("X-A", "1")
            .header("X-B", "2")],
    );
    for round in ["miss", "hit"] {
        let got = c.get(path, &[]).await?;
        expect(
            got.header("x-a").is_none(),
            format!("{round}: X-A (named in Connection) dropped"),
        )?;
        expect_eq(
            got.header("x-b"),
            Some("2".into()),
            &format!("{round}: X-B kept"),
        )?;
    }

    let path = "/rfc9110-7.6.1/chunked";
    c.origin.script(
        path,
        vec![Reply::ok("chunked body")
            .header("Cache-Control", "max-age=600")
            .framing(Framing::Chunked)],
    );
    let miss = c.get(path, &[]).await?;
    expect_eq(miss.body.as_str(), "chunked body", "chunked miss")?;
    let hit = c.get(path, &[]).await?;
    expect_eq(hit.body.as_str(), "chunked body", "chunked hit")?;
    expect_eq(c.count(path), 1, "a chunked response is stored")?;

    let path = "/rfc9110-7.6.1/length";
    c.origin.script(
        path,
        vec![Reply::ok("0123456789").header("Cache-Control", "max-age=600")],
    );
    c.get(path, &[]).await?;
    let hit = c.get(path, &[]).await?;
    expect_eq(
        hit.header("content-length"),
        Some("10".into()),
        "Content-Length on a hit",
    )
}

// ---- RFC 9110 §14, RFC 9111 §3.4: ranges from stored responses -------------------------

pub(crate) async fn ranges_from_a_stored_response(c: Arc<Ctx>) -> Outcome {
    let path = "/rfc9110-14/range";
    c.origin.script(
        path,
        vec![Reply::ok("0123456789")
            .header("Cache-Control", "max-age=600")
            .header("ETag", "\"r\"")
            .header("A", "1")],
    );
    c.get(path, &[]).await?;
    for (range, status, body, content_range) in [
        ("bytes=0-1", 206, "01", "bytes 0-1/10"),
        ("bytes=5-", 206, "56789", "bytes 5-9/10"),
        ("bytes=-3", 206, "789", "bytes 7-9/10"),
        ("bytes=20-", 416, "", "bytes */10"),
    ] {
        let got = c.get(path, &[("range", range)]).await?;
        expect_eq(got.status, status, &format!("{range} status"))?;
        expect_eq(got.body.as_str(), body, &format!("{range} body"))?;
        expect_eq(
            got.header("content-range"),
            Some(content_range.to_owned()),
            &format!("{range} Content-Range"),
        )?;
        if status == 206 {
            expect_eq(got.header("a"), Some("1".into()), "stored headers on a 206")?;
        }
    }
    let stale_if_range = c
        .get(path, &[("range", "bytes=0-1"), ("if-range", "\"old\"")])
        .await?;
    expect_eq(stale_if_range.status, 200, "If-Range that does not match")?;
    expect_eq(c.count(path), 1, "all ranges from the stored response")
}
