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
    let client = rampart_tests::client();
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

/// Through the edge, text reaches clients compressed as they accept it. The edge stores a
/// brotli copy once and passes it on to br clients as it is; for the others it decodes the
/// copy, and the Workers runtime compresses it with gzip where that is accepted (see README,
/// "Compression at the edge"). A client that names no coding gets identity bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_reaches_clients_compressed_as_they_accept_it() {
    use std::io::Read;
    let origin = Origin::start().await;
    let edge = Edge::start(&origin.url).await;
    let client = rampart_tests::client();
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
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap_or("").to_owned())
            };
            let answer = Answer {
                encoding: header("content-encoding"),
                vary: header("vary").unwrap_or_default(),
                status: header("cache-status").unwrap_or_default(),
                bytes: Vec::new(),
            };
            let bytes = response.bytes().await.expect("body").to_vec();
            Answer { bytes, ..answer }
        }
    };
    let miss = fetch("identity").await;
    assert!(miss.status.contains("stored"), "{}", miss.status);
    let identity = miss.bytes;
    assert_eq!(miss.encoding, None);
    assert!(identity.starts_with(b"{"), "identity JSON");

    let brotli = fetch("br").await;
    assert!(
        brotli.status.contains("rampart-edge; hit"),
        "{}",
        brotli.status
    );
    assert_eq!(brotli.encoding.as_deref(), Some("br"));
    assert!(
        brotli.vary.to_ascii_lowercase().contains("accept-encoding"),
        "{}",
        brotli.vary
    );
    // The edge's stored copy itself (brotli quality 6, its window fitted to the body: the
    // edge's settings in edge/src/precompress.rs), not the runtime's own compression.
    let mut stored = Vec::new();
    let fitted = usize::BITS - (identity.len() - 1).leading_zeros();
    let params = ::brotli::enc::BrotliEncoderParams {
        quality: 6,
        lgwin: fitted.clamp(10, 22) as i32,
        size_hint: identity.len(),
        ..Default::default()
    };
    ::brotli::BrotliCompress(&mut &identity[..], &mut stored, &params).expect("compresses");
    assert!(
        brotli.bytes == stored,
        "the stored brotli copy, byte for byte"
    );
    let mut decoded = Vec::new();
    ::brotli::BrotliDecompress(&mut &brotli.bytes[..], &mut decoded).expect("brotli, once");
    assert_eq!(decoded, identity);
    assert!(
        brotli.bytes.len() * 4 < identity.len(),
        "{} of {}",
        brotli.bytes.len(),
        identity.len()
    );

    let gzipped = fetch("gzip").await;
    assert_eq!(gzipped.encoding.as_deref(), Some("gzip"));
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gzipped.bytes[..])
        .read_to_end(&mut decoded)
        .expect("gzip, once");
    assert_eq!(decoded, identity);

    let plain = fetch("identity").await;
    assert!(
        plain.status.contains("rampart-edge; hit"),
        "{}",
        plain.status
    );
    assert_eq!(plain.encoding, None);
    assert_eq!(plain.bytes, identity, "decoded by the runtime");
}

/// What a client saw.
struct Answer {
    encoding: Option<String>,
    vary: String,
    status: String,
    bytes: Vec<u8>,
}
