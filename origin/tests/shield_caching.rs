//! Shield mode's cache end to end, as RFC 9111 has a shared cache behave, in front of Python's
//! `http.server` (`support/python_upstream.py`) and of the task tracker: freshness from the
//! upstream's headers, `Surrogate-Control` and `Surrogate-Key`, invalidation by writes and tags,
//! variants told apart by `Vary`, stale copies validated with conditional requests, and the
//! client's conditions and ranges answered from the stored copy.

mod common;
#[path = "support/shield_processes.rs"]
mod shield_processes;

use std::time::Duration;

use serde_json::Value;
use shield_processes::{PythonUpstream, Shield};

/// What `/counter` answered: how many times the upstream was asked, and the head.
async fn counter(http: &reqwest::Client, url: &str) -> (u32, reqwest::header::HeaderMap) {
    let answer = http.get(url).send().await.expect("answered");
    assert_eq!(answer.status(), 200, "{url}");
    let head = answer.headers().clone();
    let asked = answer.text().await.expect("body").parse().expect("a count");
    (asked, head)
}

/// How many times the upstream was asked for `url` over two reads through the shield after
/// the first: 0 when the shield kept the first answer, 1 when it did not.
async fn asked_again(http: &reqwest::Client, url: &str) -> u32 {
    let (first, _) = counter(http, url).await;
    let (second, _) = counter(http, url).await;
    second - first
}

fn cache_status(head: &reqwest::header::HeaderMap) -> &str {
    head.get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn responses_are_cached_as_their_own_headers_say() {
    let upstream = PythonUpstream::start("cached");
    let shield = Shield::start(&[upstream.url()], &[("ADMIN_TOKEN", "admin-secret")]).await;
    let http = reqwest::Client::new();
    let base = &shield.base;

    // Fresh for a minute: the second read is the shield's copy, with its age.
    let fresh = format!("{base}/counter?cc=public,%20max-age=60");
    let (first, head) = counter(&http, &fresh).await;
    assert!(cache_status(&head).contains("miss"), "{head:?}");
    let (second, head) = counter(&http, &fresh).await;
    assert_eq!((first, second), (1, 1), "served from the shield");
    assert!(
        cache_status(&head).starts_with("rampart-shield; hit; ttl="),
        "{head:?}"
    );
    assert!(head.contains_key("age"));
    assert_eq!(
        head["cache-control"], "public, max-age=60",
        "the upstream's own"
    );

    // An upstream cache's Cache-Status members come first on the answer that went to it, as
    // RFC 9211 §2 asks; a hit is the shield's alone.
    let chained = format!("{base}/counter?cc=max-age=60&cs=upstream-cache%3B%20hit");
    let (_, head) = counter(&http, &chained).await;
    assert_eq!(
        cache_status(&head),
        "upstream-cache; hit, rampart-shield; fwd=miss; stored",
        "{head:?}"
    );
    let (_, head) = counter(&http, &chained).await;
    assert!(
        cache_status(&head).starts_with("rampart-shield; hit; ttl="),
        "{head:?}"
    );

    // What a shared cache must not keep goes upstream every time.
    for cc in ["no-store", "private,%20max-age=60", "max-age=0", "no-cache"] {
        let url = format!("{base}/counter?cc={cc}");
        assert_eq!(asked_again(&http, &url).await, 1, "{cc}");
    }
    let varies = format!("{base}/counter?cc=max-age=60&vary=*");
    assert_eq!(
        asked_again(&http, &varies).await,
        1,
        "Vary: * matches nothing"
    );

    // Surrogate-Control speaks to the shield alone, and never leaves it.
    let surrogate = format!("{base}/counter?cc=no-store&sc=max-age=60");
    let (a, head) = counter(&http, &surrogate).await;
    assert!(!head.contains_key("surrogate-control"));
    assert_eq!(head["cache-control"], "no-store", "browsers keep no copy");
    assert_eq!(
        counter(&http, &surrogate).await.0,
        a,
        "the shield keeps one"
    );

    // An age already spent upstream shortens the copy's life.
    let spent = format!("{base}/counter?cc=max-age=60&age=100");
    assert_eq!(
        asked_again(&http, &spent).await,
        1,
        "already stale on arrival"
    );

    // A write to a URI drops its cached copy (RFC 9111 §4.4).
    let written = format!("{base}/counter?cc=max-age=60&w=1");
    let (a, _) = counter(&http, &written).await;
    assert_eq!(counter(&http, &written).await.0, a);
    let post = http
        .post(&written)
        .body("x")
        .send()
        .await
        .expect("answered");
    assert_eq!(post.status(), 200);
    assert_eq!(
        counter(&http, &written).await.0,
        a + 2,
        "the POST counted, then a miss"
    );

    // Surrogate-Key names the tags a purge finds.
    let tagged = format!("{base}/counter?cc=max-age=60&key=board%20task-7");
    let (a, _) = counter(&http, &tagged).await;
    assert_eq!(counter(&http, &tagged).await.0, a);
    purge_tag(&http, base, "task-7").await;
    assert_eq!(counter(&http, &tagged).await.0, a + 1, "purged by its tag");
}

/// The shield's cache counters.
async fn shield_stats(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/api/cache/stats"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json")
}

async fn title_via(http: &reqwest::Client, base: &str, task: u32) -> String {
    let task: Value = http
        .get(format!("{base}/api/tasks/{task}"))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    task["title"].as_str().expect("a title").to_owned()
}

#[tokio::test]
async fn in_front_of_the_task_tracker_it_caches_by_its_headers_and_tags() {
    let database = common::PostgresDb::create().await;
    let prefix = common::unique_prefix("shield-app");
    let (_app, app) = common::spawn_with(&database.url, &prefix, &[("REDIS_URL", "")]).await;
    let shield = Shield::start(
        std::slice::from_ref(&app),
        &[("ADMIN_TOKEN", "admin-secret")],
    )
    .await;
    let http = reqwest::Client::new();
    let base = &shield.base;

    let before = title_via(&http, base, 3).await;
    assert_eq!(title_via(&http, base, 3).await, before);
    let stats = shield_stats(&http, base).await;
    assert_eq!(
        (stats["misses"].as_u64(), stats["hits"].as_u64()),
        (Some(1), Some(1))
    );

    // A write through the shield drops the shield's copy; the application drops its own.
    let renamed = format!("{before} (via the shield)");
    let patched = http
        .patch(format!("{base}/api/tasks/3"))
        .json(&serde_json::json!({ "title": renamed }))
        .send()
        .await
        .expect("answered");
    assert!(patched.status().is_success(), "{}", patched.status());
    assert_eq!(
        title_via(&http, base, 3).await,
        renamed,
        "read back at once"
    );

    // The application's Cache-Tag names the shield's tags.
    assert_eq!(title_via(&http, base, 3).await, renamed);
    let misses = shield_stats(&http, base).await["misses"].as_u64();
    purge_tag(&http, base, "task:3").await;
    title_via(&http, base, 3).await;
    let after = shield_stats(&http, base).await["misses"].as_u64();
    assert_eq!(
        after,
        misses.map(|m| m + 1),
        "purged by the application's tag"
    );
    database.drop_now().await;
}

#[tokio::test]
async fn a_policy_file_sets_the_lifetime_of_a_path_whose_upstream_says_none() {
    let upstream = PythonUpstream::start("plain");
    let folder = tempfile::tempdir().expect("a folder");
    let policy = folder.path().join("shield-policy.toml");
    let rule = |name: &str, pattern: &str| {
        format!("\n[[rules]]\nname = \"{name}\"\npattern = \"{pattern}\"\nedge_ttl = \"1m\"\n")
    };
    let rules = [
        rule("counter", "/counter") + "tags = [\"counters\"]\n",
        rule("missing", "/missing/*"),
        rule("upstream-health", "/healthz"),
    ]
    .concat();
    std::fs::write(
        &policy,
        [shared::policy::SHIELD_POLICY_TOML, &rules].concat(),
    )
    .expect("written");
    let policy = policy.display().to_string();
    let shield = Shield::start(
        &[upstream.url()],
        &[
            ("SHIELD_POLICY_FILE", &policy),
            ("ADMIN_TOKEN", "admin-secret"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let ruled = format!("{}/counter?plain=1", shield.base);
    let (a, head) = counter(&http, &ruled).await;
    assert!(
        head["cache-control"]
            .to_str()
            .expect("text")
            .contains("s-maxage=60"),
        "the rule's lifetime, where the upstream said none: {head:?}"
    );
    assert_eq!(counter(&http, &ruled).await.0, a, "kept by the rule");

    // The rule's tags join the upstream's own: a purge by either finds the copy.
    let tagged = format!("{}/counter?tag=up-7", shield.base);
    let (a, head) = counter(&http, &tagged).await;
    let tags: Vec<&str> = head
        .get_all("cache-tag")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    assert!(
        tags.contains(&"up-7") && tags.contains(&"counters"),
        "{tags:?}"
    );
    for tag in ["up-7", "counters"] {
        let before = counter(&http, &tagged).await.0;
        purge_tag(&http, &shield.base, tag).await;
        assert_eq!(
            counter(&http, &tagged).await.0,
            before + 1,
            "purged by {tag}"
        );
    }
    assert_eq!(counter(&http, &tagged).await.0, a + 2, "kept again");

    // The upstream's own word wins: its no-store and its own lifetime.
    let refused = format!("{}/counter?cc=no-store", shield.base);
    assert_eq!(
        asked_again(&http, &refused).await,
        1,
        "no-store, rule or not"
    );
    let own = format!("{}/counter?cc=max-age=60", shield.base);
    let (_, head) = counter(&http, &own).await;
    assert_eq!(head["cache-control"], "max-age=60");

    // A status a cache keeps by default (a 404) takes the rule's lifetime; an upstream's error
    // never does.
    let missing = format!("{}/missing/page", shield.base);
    for expected in ["miss", "hit"] {
        let (status, head, _) = read(&http, &missing, &[]).await;
        assert_eq!(status, 404);
        assert!(
            cache_status(&head).contains(expected),
            "{expected}: {head:?}"
        );
    }
    upstream.set_down(true);
    let failing = format!("{}/healthz", shield.base);
    for _ in 0..2 {
        let (status, head, _) = read(&http, &failing, &[]).await;
        assert_eq!(status, 503);
        assert!(!head.contains_key("cache-control"), "{head:?}");
        assert!(!cache_status(&head).contains("hit"), "{head:?}");
    }
    let elsewhere = format!("{}/echo", shield.base);
    let answer = http.get(&elsewhere).send().await.expect("answered");
    assert!(
        !answer.headers().contains_key("cache-control"),
        "no rule there"
    );

    // A policy that does not parse stops the shield at start, naming the variable.
    let broken = folder.path().join("broken.toml");
    std::fs::write(&broken, "[[rules]]\nname = 1\n").expect("written");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_origin"))
        .args(["shield", "--upstream", &upstream.url()])
        .env("SHIELD_POLICY_FILE", &broken)
        .env("ORIGIN_ADDR", "127.0.0.1:0")
        .output()
        .expect("ran");
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("SHIELD_POLICY_FILE="), "{message}");
}

/// Purges `tag` through the shield's admin API.
async fn purge_tag(http: &reqwest::Client, base: &str, tag: &str) {
    let purge = http
        .post(format!("{base}/api/admin/cache/invalidate"))
        .bearer_auth("admin-secret")
        .json(&serde_json::json!({ "tags": [tag] }))
        .send()
        .await
        .expect("answered");
    assert!(purge.status().is_success(), "{}", purge.status());
}

/// What a read of `url` with `headers` answered: status, head and body.
async fn read(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = http.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = request.send().await.expect("answered");
    let (status, head) = (answer.status().as_u16(), answer.headers().clone());
    (status, head, answer.text().await.expect("body"))
}

#[tokio::test]
async fn variants_are_kept_apart_by_the_fields_their_vary_names() {
    let upstream = PythonUpstream::start("varies");
    let shield = Shield::start(&[upstream.url()], &[]).await;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/counter?cc=max-age=60&vary=Accept-Language&echo=Accept-Language",
        shield.base
    );
    let language = |value| [("accept-language", value)];

    let (_, head, french) = read(&http, &url, &language("fr, en;q=0.5")).await;
    assert_eq!(french, "1 fr, en;q=0.5");
    assert!(cache_status(&head).contains("stored"), "{head:?}");
    let (_, _, german) = read(&http, &url, &language("de")).await;
    assert_eq!(german, "2 de", "another variant, asked for");
    let (_, _, none) = read(&http, &url, &[]).await;
    assert_eq!(none, "3 -", "no field is a variant of its own");

    // The same preferences written otherwise select the same variant (RFC 9111 §4.1).
    let (_, head, again) = read(&http, &url, &language("en;q=0.5 ,FR")).await;
    assert_eq!(again, french);
    assert!(cache_status(&head).contains("hit"), "{head:?}");
    assert_eq!(read(&http, &url, &language("de")).await.2, german);
    assert_eq!(read(&http, &url, &[]).await.2, none);
    assert_eq!(head["vary"], "Accept-Language", "the upstream's own Vary");

    // A write to the URL drops every variant at once.
    let post = http.post(&url).body("x").send().await.expect("answered");
    assert_eq!(post.status(), 200);
    assert_eq!(read(&http, &url, &language("de")).await.2, "5 de");
}

#[tokio::test]
async fn a_request_that_waited_for_another_variant_gets_its_own() {
    let upstream = PythonUpstream::start("slow-varies");
    let shield = Shield::start(&[upstream.url()], &[]).await;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/counter?cc=max-age=60&vary=Accept-Language&echo=Accept-Language&sleep=0.6",
        shield.base
    );
    let first = tokio::spawn({
        let (http, url) = (http.clone(), url.clone());
        async move { read(&http, &url, &[("accept-language", "fr")]).await }
    });
    // Asked while the first load is on its way: it may wait for it, never take its answer.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (_, _, second) = read(&http, &url, &[("accept-language", "de")]).await;
    let (_, _, first) = first.await.expect("joined");
    assert!(first.ends_with(" fr"), "{first}");
    assert!(second.ends_with(" de"), "{second}");
}

#[tokio::test]
async fn a_stale_copy_is_validated_with_a_conditional_request() {
    let upstream = PythonUpstream::start("validates");
    let shield = Shield::start(&[upstream.url()], &[]).await;
    let http = reqwest::Client::new();

    // Stale after a second: the upstream is asked whether it changed, and its 304 freshens the
    // stored copy, whose body is served, with the 304's fields.
    let url = format!("{}/counter?cc=max-age=1&etag=%22v1%22", shield.base);
    let (_, head, body) = read(&http, &url, &[]).await;
    assert_eq!((body.as_str(), head.get("x-validated")), ("1", None));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, head, body) = read(&http, &url, &[]).await;
    assert_eq!((status, body.as_str()), (200, "1"), "the stored body");
    assert_eq!(head["x-validated"], "2", "asked, and answered 304");
    assert_eq!(head["etag"], "\"v1\"");
    assert_eq!(
        cache_status(&head),
        "rampart-shield; fwd=stale; fwd-status=304; stored",
        "RFC 9211: a stale copy the upstream confirmed"
    );
    let (_, head, body) = read(&http, &url, &[]).await;
    assert_eq!(body, "1");
    assert!(cache_status(&head).contains("hit"), "fresh again: {head:?}");

    // Last-Modified alone validates too (no made-up ETag hides it from the upstream).
    let modified = "Sun,%2006%20Nov%201994%2008:49:37%20GMT";
    let url = format!("{}/counter?cc=max-age=1&lm={modified}", shield.base);
    assert_eq!(read(&http, &url, &[]).await.2, "1");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (_, head, body) = read(&http, &url, &[]).await;
    assert_eq!(
        (body.as_str(), head.get("x-validated").map(|v| v.as_bytes())),
        ("1", Some(&b"2"[..]))
    );

    // Surrogate-Control, which a 304 leaves out, still gives the freshened copy its lifetime.
    let url = format!(
        "{}/counter?cc=no-cache&sc=max-age=1&etag=%22s%22",
        shield.base
    );
    assert_eq!(read(&http, &url, &[]).await.2, "1");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(read(&http, &url, &[]).await.1["x-validated"], "2");
    let (_, head, _) = read(&http, &url, &[]).await;
    assert!(
        cache_status(&head).contains("hit"),
        "fresh for the shield: {head:?}"
    );

    // Never fresh but validated: each read asks, and no body comes again while it is current.
    let url = format!("{}/counter?cc=no-cache&etag=%22n%22", shield.base);
    assert_eq!(read(&http, &url, &[]).await.2, "1");
    for asked in ["2", "3"] {
        let (status, head, body) = read(&http, &url, &[]).await;
        assert_eq!((status, body.as_str()), (200, "1"));
        assert_eq!(head["x-validated"], asked);
    }
}

#[tokio::test]
async fn a_stale_copy_stands_in_for_an_upstream_that_cannot_be_reached_unless_forbidden() {
    let upstream = PythonUpstream::start("disconnects");
    let shield = Shield::start(&[upstream.url()], &[]).await;
    let http = reqwest::Client::new();
    let may = format!("{}/counter?cc=max-age=1", shield.base);
    let forbidding = [
        "max-age=1,%20must-revalidate",
        "max-age=1,%20proxy-revalidate",
        "s-maxage=1",
    ];
    assert_eq!(read(&http, &may, &[]).await.2, "1");
    for cc in forbidding {
        let url = format!("{}/counter?cc={cc}", shield.base);
        assert_eq!(read(&http, &url, &[]).await.2, "1", "{cc}");
    }
    drop(upstream);
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    // Stale, no stale-if-error, and nothing listens upstream: a disconnected cache may serve
    // it (RFC 9111 §4.2.4), and says why.
    let (status, head, body) = read(&http, &may, &[]).await;
    assert_eq!((status, body.as_str()), (200, "1"), "{head:?}");
    assert_eq!(
        cache_status(&head),
        "rampart-shield; fwd=stale; detail=origin-unreachable"
    );
    for cc in forbidding {
        let url = format!("{}/counter?cc={cc}", shield.base);
        let (status, head, body) = read(&http, &url, &[]).await;
        assert_eq!(status, 502, "{cc}: {head:?} {body}");
        assert!(body.contains("ORIGIN_UNREACHABLE"), "{cc}: {body}");
    }
}

#[tokio::test]
async fn conditions_and_ranges_are_answered_from_the_stored_copy() {
    let upstream = PythonUpstream::start("ranges");
    let shield = Shield::start(&[upstream.url()], &[]).await;
    let http = reqwest::Client::new();
    let hello = format!("{}/hello", shield.base);
    let whole = "hello from ranges";

    // Nothing stored: a range goes upstream as asked (this upstream sends the whole body).
    let (status, _, body) = read(&http, &hello, &[("range", "bytes=0-4")]).await;
    assert_eq!((status, body.as_str()), (200, whole));
    let (_, head, _) = read(&http, &hello, &[]).await;
    let etag = head["etag"].to_str().expect("text").to_owned();

    let (status, head, body) = read(&http, &hello, &[("range", "bytes=0-4")]).await;
    assert_eq!((status, body.as_str()), (206, "hello"));
    assert_eq!(head["content-range"], "bytes 0-4/17");
    let (status, _, body) = read(&http, &hello, &[("range", "bytes=-6")]).await;
    assert_eq!((status, body.as_str()), (206, "ranges"));
    let (status, head, body) = read(&http, &hello, &[("range", "bytes=99-")]).await;
    assert_eq!((status, body.as_str()), (416, ""));
    assert_eq!(head["content-range"], "bytes */17");
    let other = [("range", "bytes=0-4"), ("if-range", "\"another\"")];
    assert_eq!(
        read(&http, &hello, &other).await.2,
        whole,
        "If-Range names another"
    );
    let same = [("range", "bytes=0-4"), ("if-range", etag.as_str())];
    assert_eq!(read(&http, &hello, &same).await.0, 206);
    let (status, head, body) = read(&http, &hello, &[("if-none-match", etag.as_str())]).await;
    assert_eq!((status, body.as_str()), (304, ""));
    assert_eq!(head["etag"], etag.as_str());

    // If-Modified-Since against the stored Last-Modified.
    let modified = "Sun,%2006%20Nov%201994%2008:49:37%20GMT";
    let dated = format!("{}/counter?cc=max-age=60&lm={modified}", shield.base);
    assert_eq!(read(&http, &dated, &[]).await.0, 200);
    let later = [("if-modified-since", "Mon, 07 Nov 1994 08:49:37 GMT")];
    assert_eq!(read(&http, &dated, &later).await.0, 304);
    let earlier = [("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT")];
    assert_eq!(read(&http, &dated, &earlier).await.0, 200);

    // A client's condition is the shield's to answer: the upstream is asked for the whole
    // response, which is stored for everyone.
    let tagged = format!("{}/counter?cc=max-age=60&etag=%22c%22", shield.base);
    let (status, _, _) = read(&http, &tagged, &[("if-none-match", "\"c\"")]).await;
    assert_eq!(status, 304, "answered from what was loaded");
    let (status, head, body) = read(&http, &tagged, &[]).await;
    assert_eq!((status, body.as_str()), (200, "1"), "{head:?}");
    assert!(cache_status(&head).contains("hit"));

    // Preconditions are the application's: such a request goes upstream as it is.
    let (_, _, body) = read(&http, &tagged, &[("if-match", "\"c\"")]).await;
    assert_eq!(body, "2", "asked upstream");
}

#[tokio::test]
async fn a_response_that_needs_validation_is_not_handed_to_a_request_that_waited() {
    let upstream = PythonUpstream::start("authorized");
    let shield = Shield::start(&[upstream.url()], &[]).await;
    let http = reqwest::Client::new();
    // Storable for a request with Authorization (RFC 9111 §3.5), but never fresh.
    let url = format!(
        "{}/counter?cc=max-age=0,%20must-revalidate&etag=%22a%22&sleep=0.6&echo=Authorization",
        shield.base
    );
    let alice = tokio::spawn({
        let (http, url) = (http.clone(), url.clone());
        async move { read(&http, &url, &[("authorization", "Bearer alice")]).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (_, _, bob) = read(&http, &url, &[]).await;
    let (_, _, alice) = alice.await.expect("joined");
    assert!(alice.ends_with("Bearer alice"), "{alice}");
    assert!(bob.ends_with(" -"), "bob's own answer, not alice's: {bob}");
}
