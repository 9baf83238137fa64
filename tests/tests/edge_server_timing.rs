//! `Server-Timing` from the edge, in workerd: only requests bearing the admin token see it (the
//! origin's members first, then the edge's `cache`, `origin` and `edge`); public requests never
//! do, even when the origin sent one; and a stored copy never replays an earlier request's
//! timings. The default policy has no route that sets `server_timing`, so the opt-in by route
//! is covered by the edge's unit tests alone.

use rampart_tests::test_origin::{Reply, TestOrigin};
use rampart_tests::{cache_status, Edge, Origin};

const ADMIN_TOKEN: &str = "admin-token-for-tests";
/// What the scripted origin says about itself.
const ORIGIN_TIMING: &str = "app;dur=5.5, db;dur=2";

/// One member of a `Server-Timing` field: its name and its parameters, as sent.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    params: Vec<(String, String)>,
}

impl Member {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The members of `field`, in order; each must be `name;dur=<ms>` with optional parameters.
fn members(field: &str) -> Vec<Member> {
    field
        .split(',')
        .map(|member| {
            let mut parts = member.trim().split(';').map(str::trim);
            let name = parts.next().unwrap_or_default().to_owned();
            let params: Vec<(String, String)> = parts
                .map(|param| {
                    let (key, value) = param.split_once('=').expect("name=value");
                    (key.to_owned(), value.to_owned())
                })
                .collect();
            let member = Member { name, params };
            let dur = member.param("dur").expect("every member has a dur");
            let ms: f64 = dur.parse().expect("dur is a number");
            assert!(ms >= 0.0, "{field}");
            assert!(
                dur.split_once('.')
                    .is_none_or(|(_, decimals)| decimals.len() <= 3),
                "at most three decimals: {field}"
            );
            member
        })
        .collect()
}

fn names(members: &[Member]) -> Vec<&str> {
    members.iter().map(|m| m.name.as_str()).collect()
}

fn server_timing(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("server-timing")
        .map(|value| value.to_str().expect("text").to_owned())
}

async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("edge reachable")
}

/// A cacheable reply (`public`, so that a request with `Authorization` may store it too) that
/// says how long the origin took.
fn timed_reply(body: &str) -> Reply {
    Reply::ok(body)
        .header("Cache-Control", "public, max-age=60")
        .header("Content-Type", "text/plain")
        .header("Server-Timing", ORIGIN_TIMING)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_operators_see_timings_and_stored_copies_never_replay_them() {
    let origin = TestOrigin::start().await;
    origin.script("/api/timing/public", vec![timed_reply("public")]);
    origin.script("/api/timing/operator", vec![timed_reply("operator")]);
    let edge = Edge::start_with_vars(&origin.url, &[("ADMIN_TOKEN", ADMIN_TOKEN)]).await;
    let client = rampart_tests::client();

    // Public: no Server-Timing on the miss (the origin sent one) nor on the hit.
    let public = format!("{}/api/timing/public", edge.url);
    let miss = get(&client, &public, None).await;
    assert!(cache_status(&miss).contains("stored"), "{miss:?}");
    assert_eq!(server_timing(&miss), None, "the origin's is removed");
    let hit = get(&client, &public, None).await;
    assert!(cache_status(&hit).contains("rampart-edge; hit"));
    assert_eq!(server_timing(&hit), None);
    let wrong = get(&client, &public, Some("not-the-token")).await;
    assert_eq!(server_timing(&wrong), None, "a wrong token is public");

    // The operator's miss: the origin's members, then the edge's cache, origin and edge.
    let operator = format!("{}/api/timing/operator", edge.url);
    let miss = get(&client, &operator, Some(ADMIN_TOKEN)).await;
    assert_eq!(miss.status(), 200);
    assert!(cache_status(&miss).contains("stored"), "{miss:?}");
    let field = server_timing(&miss).expect("Server-Timing for the admin token");
    assert!(field.starts_with(ORIGIN_TIMING), "origin's first: {field}");
    let found = members(&field);
    assert_eq!(
        names(&found),
        ["app", "db", "cache", "origin", "edge"],
        "{field}"
    );
    assert_eq!(found[2].param("desc"), Some("\"miss\""), "{field}");
    assert_eq!(origin.count("/api/timing/operator"), 1);

    // The operator's hit: the cache and the edge only; the origin's timings stayed unstored.
    let hit = get(&client, &operator, Some(ADMIN_TOKEN)).await;
    assert!(cache_status(&hit).contains("rampart-edge; hit"), "{hit:?}");
    let field = server_timing(&hit).expect("Server-Timing on a hit");
    let found = members(&field);
    assert_eq!(names(&found), ["cache", "edge"], "{field}");
    assert_eq!(found[0].param("desc"), Some("\"hit\""), "{field}");
    assert_eq!(origin.count("/api/timing/operator"), 1, "served stored");

    // The same stored copy, to the public: nothing.
    let hit = get(&client, &operator, None).await;
    assert!(cache_status(&hit).contains("rampart-edge; hit"), "{hit:?}");
    assert_eq!(server_timing(&hit), None);
    assert!(!edge.log().contains("panicked"), "{}", edge.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_origins_members_precede_the_edges() {
    let origin = Origin::start_with(|config| {
        config.application.admin_token = Some(ADMIN_TOKEN.to_owned());
    })
    .await;
    let edge = Edge::start_with_vars(&origin.url, &[("ADMIN_TOKEN", ADMIN_TOKEN)]).await;
    let client = rampart_tests::client();
    let url = format!("{}/api/tasks/1", edge.url);

    let public = get(&client, &url, None).await;
    assert_eq!(public.status(), 200);
    assert_eq!(server_timing(&public), None);

    let operator = get(&client, &url, Some(ADMIN_TOKEN)).await;
    assert_eq!(operator.status(), 200);
    let field = server_timing(&operator).expect("Server-Timing for the admin token");
    let found = members(&field);
    let names = names(&found);
    let db = names.iter().position(|n| *n == "db").expect("origin's db");
    let total = names.iter().position(|n| *n == "total").expect("total");
    let origin_wait = names.iter().position(|n| *n == "origin").expect("origin");
    let edge_whole = names.iter().position(|n| *n == "edge").expect("edge");
    assert!(db < total && total < origin_wait && origin_wait < edge_whole);
    let edge_cache = found
        .iter()
        .rev()
        .find(|m| m.name == "cache")
        .expect("the edge's cache member");
    assert_eq!(edge_cache.param("desc"), Some("\"miss\""), "{field}");
}
