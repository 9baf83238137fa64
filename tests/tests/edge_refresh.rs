//! A page refreshed in the background (stale-while-revalidate) is stored exactly as a first
//! store stores it: minified, with the weak `ETag` a changed body calls for, and (for text worth
//! it) as the same brotli copy.
//!
//! Each page is scripted twice on the origin: once at a path whose stored copy goes stale and is
//! refreshed with a changed body, and once at a twin path that stores that changed body on its
//! first request. The edge must then serve the two stored copies alike.

use std::time::{Duration, Instant};

use rampart_tests::test_origin::{Reply, TestOrigin};
use rampart_tests::{cache_status, Edge};

/// A page small enough that the edge stores no brotli copy of it: only minification changes it.
const SMALL_V1: &str = "<!doctype html>\n<html>\n  <body>\n    <!-- first -->\n    \
                        <p>first   version</p>\n  </body>\n</html>\n";
const SMALL_V2: &str = "<!doctype html>\n<html>\n  <body>\n    <!-- second -->\n    \
                        <p>second   version</p>\n  </body>\n</html>\n";

/// What a client saw of a page.
#[derive(Debug)]
struct Seen {
    cache: String,
    etag: Option<String>,
    encoding: Option<String>,
    body: Vec<u8>,
}

impl Seen {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn get(client: &reqwest::Client, url: &str, coding: Option<&str>) -> Seen {
    let mut request = client.get(url);
    if let Some(coding) = coding {
        request = request.header("accept-encoding", coding);
    }
    let response = request.send().await.expect("edge reachable");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    };
    let (etag, encoding) = (header("etag"), header("content-encoding"));
    let cache = cache_status(&response);
    let body = response.bytes().await.expect("body").to_vec();
    Seen {
        cache,
        etag,
        encoding,
        body,
    }
}

/// An HTML page with a strong `ETag`.
fn page(body: &str, etag: &str, cache_control: &str) -> Reply {
    Reply::ok(body)
        .header("Content-Type", "text/html; charset=utf-8")
        .header("ETag", etag)
        .header("Cache-Control", cache_control)
}

/// A large page: text the edge also stores as a brotli copy.
fn large(version: &str) -> String {
    let item = format!("    <li>\n      <a href=\"/tasks/1\">{version}   item</a>\n    </li>\n");
    format!(
        "<!doctype html>\n<html>\n  <body>\n    <!-- {version} -->\n    <ul>\n{}    </ul>\n  \
         </body>\n</html>\n",
        item.repeat(40)
    )
}

/// Stores `v1` at `path` for a second, lets it go stale, and waits until the background refresh
/// has stored `v2`; a twin path stores `v2` on its first request.
async fn refresh_and_twin(
    origin: &TestOrigin,
    edge: &Edge,
    client: &reqwest::Client,
    path: &str,
    (v1, v2): (&str, &str),
) -> String {
    let twin = format!("{path}-twin");
    origin.script(
        path,
        vec![
            page(v1, "\"v1\"", "max-age=1, stale-while-revalidate=600"),
            page(v2, "\"v2\"", "max-age=600"),
        ],
    );
    origin.script(&twin, vec![page(v2, "\"v2\"", "max-age=600")]);
    let url = format!("{}{path}", edge.url);
    let first = get(client, &url, None).await;
    assert!(first.cache.contains("stored"), "{}", first.cache);
    // Past `max-age=1`: freshness is counted in whole seconds.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let stale = get(client, &url, None).await;
    assert!(
        stale.cache.contains("stale-while-revalidate"),
        "{}",
        stale.cache
    );
    assert_eq!(stale.text(), first.text(), "the stale copy, at once");
    let deadline = Instant::now() + Duration::from_secs(10);
    while origin.count(path) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(origin.count(path), 2, "one background refresh");
    // The refresh stores once the origin has answered: wait until its copy is served.
    let mut refreshed = get(client, &url, None).await;
    while refreshed.text() == first.text() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        refreshed = get(client, &url, None).await;
    }
    assert!(
        refreshed.cache.starts_with("rampart-edge; hit; ttl="),
        "the refreshed copy is stored and fresh: {}",
        refreshed.cache
    );
    twin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_page_is_stored_like_a_first_store() {
    let origin = TestOrigin::start().await;
    let edge = Edge::start(&origin.url).await;
    let client = rampart_tests::client();

    // A small page: minified, and its strong ETag weakened.
    let path = "/refresh/small";
    let twin = refresh_and_twin(&origin, &edge, &client, path, (SMALL_V1, SMALL_V2)).await;
    let refreshed = get(&client, &format!("{}{path}", edge.url), None).await;
    let first_store = get(&client, &format!("{}{twin}", edge.url), None).await;
    assert!(
        first_store.cache.contains("stored"),
        "{}",
        first_store.cache
    );
    let minified = first_store.text();
    assert!(
        minified.len() < SMALL_V2.len() && !minified.contains("<!--"),
        "a first store minifies: {minified:?}"
    );
    assert_eq!(first_store.etag.as_deref(), Some("W/\"v2\""));
    assert_eq!(
        refreshed.text(),
        minified,
        "the refreshed copy is minified like a first store"
    );
    assert_eq!(
        refreshed.etag.as_deref(),
        Some("W/\"v2\""),
        "the refreshed copy's ETag is weak like a first store's"
    );

    // A large page: minified, then stored as the same brotli copy.
    let (v1, v2) = (large("first"), large("second"));
    let path = "/refresh/large";
    let twin = refresh_and_twin(&origin, &edge, &client, path, (&v1, &v2)).await;
    let first_store = get(&client, &format!("{}{twin}", edge.url), None).await;
    let minified = first_store.text();
    assert!(minified.len() < v2.len(), "a first store minifies");
    let refreshed = get(&client, &format!("{}{path}", edge.url), None).await;
    assert_eq!(
        refreshed.text(),
        minified,
        "the refreshed copy is minified like a first store"
    );
    assert_eq!(refreshed.etag, first_store.etag);
    let brotli = get(&client, &format!("{}{path}", edge.url), Some("br")).await;
    let twin_brotli = get(&client, &format!("{}{twin}", edge.url), Some("br")).await;
    assert_eq!(twin_brotli.encoding.as_deref(), Some("br"));
    assert_eq!(
        (brotli.encoding, brotli.etag),
        (twin_brotli.encoding, twin_brotli.etag)
    );
    assert!(
        brotli.body == twin_brotli.body,
        "the refreshed brotli copy is the first store's, byte for byte"
    );
}
