//! HTML through the edge is minified once, before it is stored, and renders the same text.

use rampart_tests::{cache_status, Edge, Origin};

/// The text a browser would lay out: comments dropped, whitespace runs as one space.
fn rendered(html: &str) -> String {
    let mut text = String::new();
    let mut rest = html;
    while let Some(start) = rest.find("<!--") {
        text.push_str(&rest[..start]);
        rest = rest[start..]
            .find("-->")
            .map_or("", |end| &rest[start + end + 3..]);
    }
    text.push_str(rest);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_minified_before_they_are_stored() {
    let origin = Origin::start().await;
    let edge = Edge::start(&origin.url).await;
    let client = reqwest::Client::new();
    let direct = client
        .get(format!("{}/tasks/1", origin.url))
        .send()
        .await
        .expect("origin reachable")
        .text()
        .await
        .expect("body");
    let first = client
        .get(format!("{}/tasks/1", edge.url))
        .send()
        .await
        .expect("edge reachable");
    assert!(
        cache_status(&first).contains("stored"),
        "{}",
        cache_status(&first)
    );
    let etag = first
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let minified = first.text().await.expect("body");
    assert!(
        minified.len() < direct.len(),
        "{} bytes through the edge, {} from the origin",
        minified.len(),
        direct.len()
    );
    let outside_verbatim = minified.split("<script").next().unwrap_or_default();
    assert!(
        !outside_verbatim.contains("\n  "),
        "indentation is collapsed: {minified}"
    );
    assert_eq!(
        rendered(&minified),
        rendered(&direct),
        "the same text renders"
    );
    assert!(
        etag.is_none_or(|tag| tag.starts_with("W/")),
        "a changed body has no strong ETag"
    );
    let second = client
        .get(format!("{}/tasks/1", edge.url))
        .send()
        .await
        .expect("edge reachable");
    assert!(cache_status(&second).contains("hit"));
    assert_eq!(second.text().await.expect("body"), minified);
}

/// Through the edge, text reaches clients compressed as they accept it. The Workers runtime
/// does this itself (see README, "Compression at the edge"): the Worker answers with the
/// identity bytes it stores, and the runtime encodes them per client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_reaches_clients_compressed_as_they_accept_it() {
    use std::io::Read;
    let origin = Origin::start().await;
    let edge = Edge::start(&origin.url).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/tasks?limit=50", edge.url);
    let fetch = |coding: &'static str| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let response = client
                .get(url)
                .header("accept-encoding", coding)
                .send()
                .await
                .expect("edge reachable");
            let encoding = response
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap_or("").to_owned());
            (encoding, response.bytes().await.expect("body").to_vec())
        }
    };
    let (encoding, identity) = fetch("identity").await;
    assert_eq!(encoding, None);
    assert!(identity.starts_with(b"{"), "identity JSON");
    let (encoding, gzipped) = fetch("gzip").await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gzipped[..])
        .read_to_end(&mut decoded)
        .expect("gzip, once");
    assert_eq!(decoded, identity);
    assert!(
        gzipped.len() * 3 < identity.len(),
        "{} of {}",
        gzipped.len(),
        identity.len()
    );
    let (encoding, brotli) = fetch("br").await;
    assert_eq!(encoding.as_deref(), Some("br"));
    assert!(brotli.len() < identity.len());
}
