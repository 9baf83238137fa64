//! Response compression: brotli or gzip as the client accepts, never for small bodies or
//! images, with a weak `ETag` that still revalidates.

mod common;

use common::start;
use origin::config::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_is_compressed_as_negotiated_and_revalidates() {
    let origin = start(Config::default()).await;
    let client = reqwest::Client::new();
    let list = format!("{}/api/tasks?limit=100", origin.base);
    let get = |accept: &'static str| client.get(&list).header("accept-encoding", accept).send();
    let plain = get("identity").await.expect("up");
    assert!(plain.headers().get("content-encoding").is_none());
    let plain_etag = plain.headers()["etag"].to_str().expect("ascii").to_owned();
    let plain_body = plain.bytes().await.expect("body");
    let plain_len = plain_body.len();
    assert!(plain_len > 1024, "a list large enough to compress");

    for (accept, expected) in [("gzip, deflate, br", "br"), ("gzip", "gzip")] {
        let response = get(accept).await.expect("up");
        assert_eq!(response.headers()["content-encoding"], expected);
        let vary = response.headers()["vary"]
            .to_str()
            .expect("ascii")
            .to_lowercase();
        assert!(vary.contains("accept-encoding"), "{vary}");
        let etag = response.headers()["etag"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_eq!(
            etag,
            format!("W/{plain_etag}"),
            "a weak validator for the encoding"
        );
        let status = response.headers()["cache-status"].to_str().expect("ascii");
        assert!(status.contains("; hit"), "served from the cache: {status}");
        let body = response.bytes().await.expect("body");
        assert_eq!(
            decode(expected, &body),
            plain_body,
            "{expected} decodes to the same bytes"
        );
        let compressed = body.len();
        assert!(
            compressed * 3 < plain_len,
            "{compressed} of {plain_len} bytes"
        );
        let revalidated = client
            .get(&list)
            .header("accept-encoding", accept)
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("up");
        assert_eq!(revalidated.status(), 304);
    }

    let small = client
        .get(format!("{}/health", origin.base))
        .header("accept-encoding", "br")
        .send()
        .await
        .expect("up");
    assert!(
        small.headers().get("content-encoding").is_none(),
        "under 1 KiB"
    );
}

/// `body` decoded from `coding` (`br` or `gzip`).
fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::new();
    match coding {
        "br" => brotli::BrotliDecompress(&mut &body[..], &mut decoded).expect("brotli"),
        _ => {
            let mut decoder = flate2::read::GzDecoder::new(body);
            std::io::Read::read_to_end(&mut decoder, &mut decoded).expect("gzip");
        }
    }
    decoded
}
