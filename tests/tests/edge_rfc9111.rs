//! The edge's HTTP caching conformance suite: the Worker in workerd in front of a generic origin
//! (`TestOrigin`, which answers whatever each case scripts), one case per behaviour, organised by
//! the section of RFC 9111 (caching) or RFC 9110 (semantics) it checks. Cases run concurrently
//! on their own paths; the test prints a table of results by section and fails if any case does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rampart_tests::test_origin::{Framing, Reply, TestOrigin};
use rampart_tests::Edge;

/// One case's outcome: `Err` says what went wrong.
type Outcome = Result<(), String>;
type Case = fn(Arc<Ctx>) -> Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// What every case uses.
struct Ctx {
    edge: String,
    origin: TestOrigin,
    /// A second origin the edge must never reach.
    elsewhere: TestOrigin,
    client: reqwest::Client,
}

/// A response as a case sees it.
#[derive(Debug)]
struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    fn cache_status(&self) -> String {
        self.header("cache-status").unwrap_or_default()
    }
}

impl Ctx {
    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Got, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = self.client.request(method, format!("{}{path}", self.edge));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{path}: request failed: {e}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(|e| {
            let status_line = headers.get("cache-status").and_then(|v| v.to_str().ok());
            format!("{path}: {status}, Cache-Status {status_line:?}: body failed: {e:?}")
        })?;
        Ok(Got {
            status,
            headers,
            body,
        })
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Got, String> {
        self.send("GET", path, headers, None).await
    }

    /// How many requests the origin has had for `path`.
    fn count(&self, path: &str) -> usize {
        self.origin.count(path)
    }
}

fn http_date(offset_seconds: i64) -> String {
    let now = SystemTime::now();
    let time = if offset_seconds >= 0 {
        now + Duration::from_secs(offset_seconds as u64)
    } else {
        now - Duration::from_secs(offset_seconds.unsigned_abs())
    };
    httpdate::fmt_http_date(time)
}

fn expect(condition: bool, what: impl Into<String>) -> Outcome {
    if condition {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn expect_eq<T: PartialEq + std::fmt::Debug>(actual: T, expected: T, what: &str) -> Outcome {
    expect(
        actual == expected,
        format!("{what}: expected {expected:?}, got {actual:?}"),
    )
}

/// Two GETs of a scripted path; the origin's request count after them.
async fn fetched_twice(
    c: &Ctx,
    path: &str,
    reply: Reply,
    pause: Duration,
) -> Result<usize, String> {
    c.origin.script(path, vec![reply]);
    c.get(path, &[]).await?;
    tokio::time::sleep(pause).await;
    c.get(path, &[]).await?;
    Ok(c.count(path))
}

async fn reused(c: &Ctx, path: &str, reply: Reply) -> Outcome {
    let count = fetched_twice(c, path, reply, Duration::ZERO).await?;
    expect_eq(count, 1, "origin requests (the second GET should be a hit)")
}

async fn not_reused(c: &Ctx, path: &str, reply: Reply) -> Outcome {
    let count = fetched_twice(c, path, reply, Duration::ZERO).await?;
    expect_eq(
        count,
        2,
        "origin requests (the second GET must not be a hit)",
    )
}

// ---- RFC 9111 §3: storing responses ---------------------------------------------------------

async fn no_store_is_not_stored(c: Arc<Ctx>) -> Outcome {
    not_reused(
        &c,
        "/s3/no-store",
        Reply::ok("x").header("Cache-Control", "No-Store"),
    )
    .await
}

async fn private_is_not_stored(c: Arc<Ctx>) -> Outcome {
    let reply = Reply::ok("x").header("Cache-Control", "private, max-age=600");
    not_reused(&c, "/s3/private", reply).await
}

async fn explicit_freshness_stores_any_final_status(c: Arc<Ctx>) -> Outcome {
    for code in [204u16, 299, 404, 410, 500, 503] {
        let path = format!("/s3/status-{code}");
        let body = if code == 204 { "" } else { "status body" };
        let reply = Reply::status(code)
            .body(body)
            .header("Cache-Control", "max-age=600");
        c.origin.script(&path, vec![reply]);
        c.get(&path, &[]).await?;
        let second = c.get(&path, &[]).await?;
        expect_eq(
            second.status,
            code,
            &format!("status of the hit for {code}"),
        )?;
        expect_eq(c.count(&path), 1, &format!("origin requests for {code}"))?;
        expect_eq(
            second.body.as_str(),
            body,
            &format!("body of the hit for {code}"),
        )?;
    }
    Ok(())
}

async fn must_understand_overrides_no_store_for_known_statuses(c: Arc<Ctx>) -> Outcome {
    let cc = "max-age=600, no-store, must-understand";
    reused(&c, "/s3/mu-200", Reply::ok("x").header("Cache-Control", cc)).await?;
    not_reused(
        &c,
        "/s3/mu-599",
        Reply::status(599).body("x").header("Cache-Control", cc),
    )
    .await
}

async fn set_cookie_is_not_stored_by_default(c: Arc<Ctx>) -> Outcome {
    let reply = Reply::ok("x")
        .header("Cache-Control", "max-age=600")
        .header("Set-Cookie", "a=b");
    not_reused(&c, "/s3/set-cookie", reply).await
}

async fn authorization_needs_explicit_permission(c: Arc<Ctx>) -> Outcome {
    let auth = [("authorization", "Bearer x")];
    let plain = "/s3/auth-plain";
    c.origin.script(
        plain,
        vec![Reply::ok("x").header("Cache-Control", "max-age=600")],
    );
    c.get(plain, &auth).await?;
    c.get(plain, &[]).await?;
    expect_eq(
        c.count(plain),
        2,
        "max-age alone must not store an authorized response",
    )?;
    for (name, cc) in [
        ("public", "public, max-age=600"),
        ("s-maxage", "s-maxage=600"),
        ("must-revalidate", "max-age=600, must-revalidate"),
    ] {
        let path = format!("/s3/auth-{name}");
        c.origin
            .script(&path, vec![Reply::ok("x").header("Cache-Control", cc)]);
        c.get(&path, &auth).await?;
        c.get(&path, &[]).await?;
        c.get(&path, &auth).await?;
        expect_eq(c.count(&path), 1, &format!("origin requests with {cc}"))?;
        let seen = c.origin.requests(&path);
        expect(
            seen[0].header("authorization").is_some(),
            "the origin must see Authorization",
        )?;
    }
    Ok(())
}

// ---- §3.2, §4.3.3–4.3.4: freshening with 304 ------------------------------------------------

async fn not_modified_freshens_the_stored_response(c: Arc<Ctx>) -> Outcome {
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

async fn last_modified_validates_too(c: Arc<Ctx>) -> Outcome {
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

// ---- §4.1: Vary ------------------------------------------------------------------------------

async fn vary_keeps_variants_side_by_side(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.1/variants";
    c.origin.script(
        path,
        vec![
            Reply::ok("english")
                .header("Cache-Control", "max-age=600")
                .header("Vary", "Accept-Language"),
            Reply::ok("deutsch")
                .header("Cache-Control", "max-age=600")
                .header("Vary", "Accept-Language"),
        ],
    );
    let en = [("accept-language", "en")];
    let de = [("accept-language", "de")];
    expect_eq(c.get(path, &en).await?.body, "english".into(), "first en")?;
    expect_eq(c.get(path, &de).await?.body, "deutsch".into(), "first de")?;
    expect_eq(c.get(path, &en).await?.body, "english".into(), "en hit")?;
    expect_eq(c.get(path, &de).await?.body, "deutsch".into(), "de hit")?;
    expect_eq(c.count(path), 2, "origin requests")
}

async fn vary_absent_matches_only_absent(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.1/absent";
    let reply = Reply::ok("x")
        .header("Cache-Control", "max-age=600")
        .header("Vary", "X-Tenant");
    c.origin.script(path, vec![reply]);
    c.get(path, &[]).await?;
    c.get(path, &[("x-tenant", "acme")]).await?;
    expect_eq(c.count(path), 2, "present after absent is a miss")?;
    c.get(path, &[]).await?;
    c.get(path, &[("x-tenant", "acme")]).await?;
    expect_eq(c.count(path), 2, "both variants are then hits")
}

async fn vary_star_is_never_reused(c: Arc<Ctx>) -> Outcome {
    for (name, vary) in [("star", "*"), ("foo-star", "Foo, *"), ("empty-star", ", *")] {
        let path = format!("/s4.1/vary-{name}");
        let reply = Reply::ok("x")
            .header("Cache-Control", "max-age=600")
            .header("Vary", vary);
        not_reused(&c, &path, reply).await?;
    }
    Ok(())
}

async fn vary_normalises_values(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.1/normalise";
    let reply = Reply::ok("x")
        .header("Cache-Control", "max-age=600")
        .header("Vary", "Accept-Language, Foo");
    c.origin.script(path, vec![reply]);
    c.get(path, &[("accept-language", "en, de"), ("foo", "1,2")])
        .await?;
    c.get(
        path,
        &[("accept-language", " DE ,   en"), ("foo", " 1, 2 ")],
    )
    .await?;
    expect_eq(c.count(path), 1, "equivalent values share a variant")?;
    c.get(path, &[("accept-language", "en, de"), ("foo", "2,1")])
        .await?;
    expect_eq(c.count(path), 2, "a custom field keeps its order")
}

async fn vary_on_several_fields_in_any_order(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.1/three";
    let reply = Reply::ok("x")
        .header("Cache-Control", "max-age=600")
        .header("Vary", "Foo, Bar")
        .header("Vary", "Baz");
    c.origin.script(path, vec![reply]);
    let all = [("foo", "1"), ("bar", "abc"), ("baz", "789")];
    c.get(path, &all).await?;
    c.get(path, &[("baz", "789"), ("foo", "1"), ("bar", "abc")])
        .await?;
    expect_eq(c.count(path), 1, "same values in another order")?;
    c.get(path, &[("foo", "1"), ("bar", "abcde"), ("baz", "789")])
        .await?;
    expect_eq(c.count(path), 2, "one value differs")
}

// ---- §4.2: freshness and age -----------------------------------------------------------------

async fn upstream_age_counts(c: Arc<Ctx>) -> Outcome {
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

async fn age_values_are_parsed_as_section_5_1_says(c: Arc<Ctx>) -> Outcome {
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

async fn expires_against_date(c: Arc<Ctx>) -> Outcome {
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

async fn shared_cache_lifetimes(c: Arc<Ctx>) -> Outcome {
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

async fn cdn_cache_control_targets_the_edge(c: Arc<Ctx>) -> Outcome {
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

async fn heuristic_freshness_for_heuristic_statuses_only(c: Arc<Ctx>) -> Outcome {
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

async fn stale_if_error_on_5xx(c: Arc<Ctx>) -> Outcome {
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

async fn disconnected_cache_serves_stale_unless_forbidden(c: Arc<Ctx>) -> Outcome {
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
                    "{cc}: the edge's own error, got {} {:?}",
                    got.status, got.body
                ),
            )?;
        }
    }
    Ok(())
}

async fn stale_while_revalidate_window(c: Arc<Ctx>) -> Outcome {
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

// ---- §4.3.1–4.3.2, RFC 9110 §13: conditional requests ------------------------------------

async fn conditional_requests_answered_from_fresh_responses(c: Arc<Ctx>) -> Outcome {
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

async fn if_modified_since_falls_back_on_date(c: Arc<Ctx>) -> Outcome {
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

async fn a_miss_forwards_the_clients_conditions(c: Arc<Ctx>) -> Outcome {
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

async fn head_requests(c: Arc<Ctx>) -> Outcome {
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

async fn head_freshens_the_stored_get(c: Arc<Ctx>) -> Outcome {
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

// ---- §4.4: invalidation ----------------------------------------------------------------------

async fn unsafe_methods_invalidate(c: Arc<Ctx>) -> Outcome {
    // Methods the edge does not know are forwarded as they are (workerd's own HTTP parser
    // refuses a few, such as M-SEARCH, before the Worker runs).
    for method in ["POST", "PUT", "DELETE", "PROPFIND"] {
        let path = format!("/s4.4/{}", method.to_ascii_lowercase());
        c.origin.script(
            &path,
            vec![Reply::ok("x").header("Cache-Control", "max-age=600")],
        );
        c.get(&path, &[]).await?;
        let write = c.send(method, &path, &[], Some("abc")).await?;
        expect_eq(write.status, 200, &format!("{method} status"))?;
        let seen = c.origin.requests(&path);
        expect_eq(
            seen.get(1).map(|r| (r.method.clone(), r.body.clone())),
            Some((method.to_owned(), b"abc".to_vec())),
            &format!("{method} forwarded with its body"),
        )?;
        c.get(&path, &[]).await?;
        expect_eq(
            c.count(&path),
            3,
            &format!("GET after {method} goes to the origin"),
        )?;
    }
    Ok(())
}

async fn failed_writes_do_not_invalidate(c: Arc<Ctx>) -> Outcome {
    let path = "/s4.4/failed";
    c.origin.script(
        path,
        vec![
            Reply::ok("x").header("Cache-Control", "max-age=600"),
            Reply::status(500).body("no"),
        ],
    );
    c.get(path, &[]).await?;
    c.send("POST", path, &[], Some("abc")).await?;
    c.get(path, &[]).await?;
    expect_eq(
        c.count(path),
        2,
        "the stored response survives a failed POST",
    )
}

async fn location_and_content_location_are_invalidated(c: Arc<Ctx>) -> Outcome {
    let (target, location, content) = ("/s4.4/loc", "/s4.4/loc/location", "/s4.4/loc/content");
    for path in [location, content] {
        c.origin.script(
            path,
            vec![Reply::ok("x").header("Cache-Control", "max-age=600")],
        );
        c.get(path, &[]).await?;
    }
    c.origin.script(
        target,
        vec![Reply::ok("done")
            .header("Location", location)
            .header("Content-Location", &format!("{}{content}", c.edge))],
    );
    c.send("POST", target, &[], Some("abc")).await?;
    for path in [location, content] {
        c.get(path, &[]).await?;
        expect_eq(c.count(path), 2, &format!("{path} invalidated"))?;
    }
    Ok(())
}

// ---- §5.2.1: request directives --------------------------------------------------------------

async fn request_directives(c: Arc<Ctx>) -> Outcome {
    let path = "/s5.2.1/no-cache";
    c.origin.script(
        path,
        vec![
            Reply::ok("x")
                .header("Cache-Control", "max-age=600")
                .header("ETag", "\"n\""),
            Reply::status(304).header("ETag", "\"n\""),
        ],
    );
    c.get(path, &[]).await?;
    let validated = c.get(path, &[("cache-control", "no-cache")]).await?;
    expect_eq(
        c.origin
            .requests(path)
            .get(1)
            .and_then(|r| r.header("if-none-match")),
        Some("\"n\"".into()),
        "no-cache validates with the stored ETag",
    )?;
    expect_eq(validated.body.as_str(), "x", "body after validation")?;

    let path = "/s5.2.1/max-age";
    c.origin.script(
        path,
        vec![Reply::ok("x").header("Cache-Control", "max-age=600")],
    );
    c.get(path, &[]).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.get(path, &[("cache-control", "max-age=0")]).await?;
    expect_eq(c.count(path), 2, "max-age=0 forwards")?;

    let path = "/s5.2.1/max-stale";
    c.origin.script(
        path,
        vec![Reply::ok("x").header("Cache-Control", "max-age=1")],
    );
    c.get(path, &[]).await?;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    c.get(path, &[("cache-control", "max-stale=1000")]).await?;
    expect_eq(c.count(path), 1, "max-stale accepts the stale response")?;

    let path = "/s5.2.1/min-fresh";
    c.origin.script(
        path,
        vec![Reply::ok("x").header("Cache-Control", "max-age=600")],
    );
    c.get(path, &[]).await?;
    c.get(path, &[("cache-control", "min-fresh=2000")]).await?;
    expect_eq(c.count(path), 2, "min-fresh beyond the lifetime forwards")?;

    let path = "/s5.2.1/only-if-cached";
    let got = c.get(path, &[("cache-control", "only-if-cached")]).await?;
    expect_eq(got.status, 504, "only-if-cached with nothing stored")?;
    expect_eq(c.count(path), 0, "only-if-cached never forwards")?;

    let path = "/s5.2.1/no-store";
    c.origin.script(
        path,
        vec![Reply::ok("x").header("Cache-Control", "max-age=600")],
    );
    c.get(path, &[("cache-control", "no-store")]).await?;
    c.get(path, &[]).await?;
    expect_eq(c.count(path), 2, "a no-store request stores nothing")
}

// ---- RFC 9110 §7.6.1: hop-by-hop fields --------------------------------------------------

async fn hop_by_hop_fields(c: Arc<Ctx>) -> Outcome {
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

async fn ranges_from_a_stored_response(c: Arc<Ctx>) -> Outcome {
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

// ---- Security: no open proxy, origin's own security headers ---------------------------------

async fn never_fetches_from_another_host(c: Arc<Ctx>) -> Outcome {
    let other = c.elsewhere.url.trim_start_matches("http://").to_owned();
    for path in [
        format!("//{other}/x"),
        format!("/%2F%2F{other}/x"),
        format!("/@{other}/x"),
        format!("/..//{other}/x"),
        format!("/{}", "a".repeat(6000)),
    ] {
        let got = c.get(&path, &[]).await?;
        expect(got.status < 600, format!("{path}: answered {}", got.status))?;
    }
    // Targets reqwest would normalise, sent as raw bytes: a backslash and the absolute form.
    let edge = c.edge.trim_start_matches("http://").to_owned();
    for target in [format!("/\\{other}/x"), format!("http://{other}/x")] {
        raw_get(&edge, &target).await?;
    }
    expect_eq(
        c.elsewhere.all_requests().len(),
        0,
        "requests that reached the other host",
    )
}

async fn raw_get(edge: &str, target: &str) -> Outcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(edge)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {target} HTTP/1.1\r\nHost: {edge}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer)).await;
    expect(read.is_ok(), format!("{target}: the edge answered in time"))
}

async fn origin_security_headers_win(c: Arc<Ctx>) -> Outcome {
    let path = "/security/own-headers";
    c.origin.script(
        path,
        vec![Reply::ok("x")
            .header("Content-Security-Policy", "default-src https:")
            .header("X-Frame-Options", "SAMEORIGIN")],
    );
    let got = c.get(path, &[]).await?;
    expect_eq(
        got.header("content-security-policy"),
        Some("default-src https:".into()),
        "the origin's CSP kept",
    )?;
    expect_eq(
        got.header("x-frame-options"),
        Some("SAMEORIGIN".into()),
        "XFO kept",
    )?;
    expect(
        got.header("x-content-type-options").is_some(),
        "defaults fill in what the origin left out",
    )
}

/// Every case, with the section it checks.
const CASES: &[(&str, &str, Case)] = &[
    ("RFC 9111 §3", "no-store", |c| {
        Box::pin(no_store_is_not_stored(c))
    }),
    ("RFC 9111 §3", "private", |c| {
        Box::pin(private_is_not_stored(c))
    }),
    ("RFC 9111 §3", "explicit freshness, any status", |c| {
        Box::pin(explicit_freshness_stores_any_final_status(c))
    }),
    ("RFC 9111 §5.2.2.3", "must-understand", |c| {
        Box::pin(must_understand_overrides_no_store_for_known_statuses(c))
    }),
    ("RFC 9111 §3 (policy)", "Set-Cookie not stored", |c| {
        Box::pin(set_cookie_is_not_stored_by_default(c))
    }),
    ("RFC 9111 §3.5", "Authorization", |c| {
        Box::pin(authorization_needs_explicit_permission(c))
    }),
    ("RFC 9111 §4.3.4", "304 freshens (ETag)", |c| {
        Box::pin(not_modified_freshens_the_stored_response(c))
    }),
    ("RFC 9111 §4.3.4", "304 freshens (Last-Modified)", |c| {
        Box::pin(last_modified_validates_too(c))
    }),
    ("RFC 9111 §4.1", "variants side by side", |c| {
        Box::pin(vary_keeps_variants_side_by_side(c))
    }),
    ("RFC 9111 §4.1", "absent matches absent", |c| {
        Box::pin(vary_absent_matches_only_absent(c))
    }),
    ("RFC 9111 §4.1", "Vary: *", |c| {
        Box::pin(vary_star_is_never_reused(c))
    }),
    ("RFC 9111 §4.1", "normalised values", |c| {
        Box::pin(vary_normalises_values(c))
    }),
    ("RFC 9111 §4.1", "several fields", |c| {
        Box::pin(vary_on_several_fields_in_any_order(c))
    }),
    ("RFC 9111 §4.2.3", "upstream Age", |c| {
        Box::pin(upstream_age_counts(c))
    }),
    ("RFC 9111 §5.1", "Age parsing", |c| {
        Box::pin(age_values_are_parsed_as_section_5_1_says(c))
    }),
    ("RFC 9111 §4.2.1, §5.3", "Expires and Date", |c| {
        Box::pin(expires_against_date(c))
    }),
    ("RFC 9111 §5.2.2.10", "shared lifetimes", |c| {
        Box::pin(shared_cache_lifetimes(c))
    }),
    ("RFC 9213", "CDN-Cache-Control", |c| {
        Box::pin(cdn_cache_control_targets_the_edge(c))
    }),
    ("RFC 9111 §4.2.2", "heuristic freshness", |c| {
        Box::pin(heuristic_freshness_for_heuristic_statuses_only(c))
    }),
    ("RFC 9111 §4.2.4", "stale-if-error", |c| {
        Box::pin(stale_if_error_on_5xx(c))
    }),
    ("RFC 9111 §4.2.4", "disconnected", |c| {
        Box::pin(disconnected_cache_serves_stale_unless_forbidden(c))
    }),
    ("RFC 5861 §3", "stale-while-revalidate", |c| {
        Box::pin(stale_while_revalidate_window(c))
    }),
    ("RFC 9111 §4.3.2", "conditions from fresh", |c| {
        Box::pin(conditional_requests_answered_from_fresh_responses(c))
    }),
    ("RFC 9111 §4.3.2", "If-Modified-Since and Date", |c| {
        Box::pin(if_modified_since_falls_back_on_date(c))
    }),
    ("RFC 9111 §4.3.1", "miss forwards conditions", |c| {
        Box::pin(a_miss_forwards_the_clients_conditions(c))
    }),
    ("RFC 9111 §4.3.5", "HEAD", |c| Box::pin(head_requests(c))),
    ("RFC 9111 §4.3.5", "HEAD freshens", |c| {
        Box::pin(head_freshens_the_stored_get(c))
    }),
    ("RFC 9111 §4.4", "unsafe methods", |c| {
        Box::pin(unsafe_methods_invalidate(c))
    }),
    ("RFC 9111 §4.4", "failed writes", |c| {
        Box::pin(failed_writes_do_not_invalidate(c))
    }),
    ("RFC 9111 §4.4", "Location, Content-Location", |c| {
        Box::pin(location_and_content_location_are_invalidated(c))
    }),
    ("RFC 9111 §5.2.1", "request directives", |c| {
        Box::pin(request_directives(c))
    }),
    ("RFC 9110 §7.6.1", "hop-by-hop", |c| {
        Box::pin(hop_by_hop_fields(c))
    }),
    ("RFC 9110 §14", "ranges", |c| {
        Box::pin(ranges_from_a_stored_response(c))
    }),
    ("security", "no open proxy", |c| {
        Box::pin(never_fetches_from_another_host(c))
    }),
    ("security", "origin's headers win", |c| {
        Box::pin(origin_security_headers_win(c))
    }),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_is_a_conformant_shared_cache() {
    let origin = TestOrigin::start().await;
    let elsewhere = TestOrigin::start().await;
    let edge = Edge::start_with_vars(&origin.url, &[("ORIGIN_TIMEOUT_MS", "3000")]).await;
    let ctx = Arc::new(Ctx {
        edge: edge.url.clone(),
        origin,
        elsewhere,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client"),
    });
    let mut running = Vec::new();
    for (section, name, case) in CASES {
        running.push((section, name, tokio::spawn(case(ctx.clone()))));
    }
    let mut failures = Vec::new();
    for (section, name, handle) in running {
        let outcome = handle
            .await
            .unwrap_or_else(|e| Err(format!("the case panicked: {e}")));
        match outcome {
            Ok(()) => println!("pass  {section:<24} {name}"),
            Err(why) => {
                println!("FAIL  {section:<24} {name}: {why}");
                failures.push(format!("{section} {name}: {why}"));
            }
        }
    }
    println!(
        "conformance: {} passed, {} failed",
        CASES.len() - failures.len(),
        failures.len()
    );
    let log = edge.log().to_ascii_lowercase();
    for sign in [
        "panicked",
        "previous wasm instance",
        "hung",
        "will never complete",
    ] {
        assert!(
            !log.contains(sign),
            "the wrangler log shows {sign:?}:\n{log}"
        );
    }
    assert!(
        failures.is_empty(),
        "failed cases:\n{}",
        failures.join("\n")
    );
}
