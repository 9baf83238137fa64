//! `X-Request-Id` at the edge, in workerd: every answer names the request it answers — the
//! client's id when it sent a sane one, else one the edge made — and the origin receives the
//! same id. A stored response never replays the id of the request that filled the cache, and
//! an origin's own id does not reach the client in place of the request's.

use std::collections::HashSet;

use rampart_tests::test_origin::{Reply, TestOrigin};
use rampart_tests::{cache_status, Edge};

fn request_id(response: &reqwest::Response) -> String {
    let values: Vec<_> = response.headers().get_all("x-request-id").iter().collect();
    assert_eq!(values.len(), 1, "one X-Request-Id: {response:?}");
    values[0].to_str().expect("text").to_owned()
}

async fn get(client: &reqwest::Client, url: &str, id: Option<&str>) -> reqwest::Response {
    let mut request = client.get(url);
    if let Some(id) = id {
        request = request.header("x-request-id", id);
    }
    request.send().await.expect("edge reachable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_names_its_own_request() {
    let origin = TestOrigin::start().await;
    let cacheable = Reply::ok("stored once")
        .header("Cache-Control", "public, max-age=60")
        .header("Content-Type", "text/plain")
        .header("X-Request-Id", "the-origins-own-id");
    origin.script("/api/ids", vec![cacheable]);
    let edge = Edge::start(&origin.url).await;
    let client = rampart_tests::client();
    let url = format!("{}/api/ids", edge.url);

    // The miss: the client's id, sent on to the origin and answered with.
    let miss = get(&client, &url, Some("first-request")).await;
    assert!(cache_status(&miss).contains("stored"), "{miss:?}");
    assert_eq!(request_id(&miss), "first-request");
    let seen = origin.requests("/api/ids");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("x-request-id").as_deref(),
        Some("first-request")
    );

    // Hits: each answers with its own id, never the filling request's nor the origin's.
    let hit = get(&client, &url, Some("second-request")).await;
    assert!(cache_status(&hit).contains("rampart-edge; hit"), "{hit:?}");
    assert_eq!(request_id(&hit), "second-request");
    let mut made = HashSet::new();
    for sent in [None, Some("not a token"), Some(&*"x".repeat(200))] {
        let hit = get(&client, &url, sent).await;
        assert!(cache_status(&hit).contains("rampart-edge; hit"), "{hit:?}");
        let id = request_id(&hit);
        assert!(
            id.len() >= 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "a made id for {sent:?}: {id}"
        );
        assert!(made.insert(id), "each made id is new");
    }
    assert_eq!(origin.count("/api/ids"), 1, "every later answer was stored");

    // The edge's own answers carry one too.
    let refused = get(
        &client,
        &format!("{}/cdn-cgi/image/width=0/x.jpg", edge.url),
        Some("bad-image"),
    )
    .await;
    assert_eq!(refused.status(), 400);
    assert_eq!(request_id(&refused), "bad-image");
}
