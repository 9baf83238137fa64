//! `/cdn-cgi/image/…` in workerd, on the origin's own images: resized once, then served from the
//! cache; bad options refused before anything is fetched.

use rampart_tests::{cache_status, Edge, Origin};

/// The first `/images/…` path the task page references.
async fn an_image_path(client: &reqwest::Client, origin: &Origin) -> String {
    let page = client
        .get(format!("{}/tasks/1", origin.url))
        .send()
        .await
        .expect("origin reachable")
        .text()
        .await
        .expect("page");
    let start = page.find("/images/").expect("the page shows an image");
    let end = start
        + page[start..]
            .find(['"', ' ', ','])
            .expect("end of the path");
    page[start..end].to_owned()
}

fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let size = imagesize::blob_size(bytes).expect("an image header");
    (size.width as u32, size.height as u32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_resized_once_and_bad_options_refused() {
    let origin = Origin::start().await;
    let edge = Edge::start(&origin.url).await;
    let client = rampart_tests::client();
    let source_path = an_image_path(&client, &origin).await;
    let source = client
        .get(format!("{}{source_path}", origin.url))
        .send()
        .await
        .expect("origin reachable")
        .bytes()
        .await
        .expect("source");
    let (source_width, _) = dimensions(&source);

    let url = format!(
        "{}/cdn-cgi/image/width=100,fit=scale-down{source_path}",
        edge.url
    );
    let first = client
        .get(&url)
        .header("accept", "image/avif,image/webp,*/*")
        .send()
        .await
        .expect("edge");
    assert_eq!(first.status(), 200, "{}", cache_status(&first));
    let status = cache_status(&first);
    assert!(
        status.contains("fwd=uri-miss") && status.contains("stored"),
        "{status}"
    );
    let content_type = first.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("image/"), "{content_type}");
    assert!(first.headers().contains_key("x-content-type-options"));
    let resized = first.bytes().await.expect("image");
    assert!(source_width > 100, "the demo image is wider than 100 px");
    assert_eq!(dimensions(&resized).0, 100);
    assert!(resized.len() < source.len());

    let second = client
        .get(&url)
        .header("accept", "image/avif,image/webp,*/*")
        .send()
        .await
        .expect("edge");
    assert!(
        cache_status(&second).contains("rampart-edge; hit"),
        "{}",
        cache_status(&second)
    );
    assert_eq!(second.bytes().await.expect("image"), resized);

    for (options, code) in [
        ("width=99999", "IMAGE_OPTION_OUT_OF_RANGE"),
        ("zoom=2", "IMAGE_OPTION_INVALID"),
    ] {
        let refused = client
            .get(format!("{}/cdn-cgi/image/{options}{source_path}", edge.url))
            .send()
            .await
            .expect("edge");
        assert_eq!(refused.status(), 400, "{options}");
        let body = refused.text().await.expect("body");
        assert!(body.contains(code), "{options}: {body}");
    }
    let missing = client
        .get(format!(
            "{}/cdn-cgi/image/width=100/images/nothing-here.png",
            edge.url
        ))
        .send()
        .await
        .expect("edge");
    assert_eq!(missing.status(), 404);
    assert!(missing
        .text()
        .await
        .expect("body")
        .contains("IMAGE_SOURCE_NOT_FOUND"));
}
