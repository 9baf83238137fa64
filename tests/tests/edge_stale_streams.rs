//! A stale copy the edge answers with reaches the client whole, whatever the origin does to the
//! refresh or validation that runs beside it: refuses the connection, or resets it mid-body.
//!
//! The copies are large (3 MiB, stored at once) and the client reads them slowly, so that the
//! origin's failure lands while the stored body is still streaming to the client.

use std::time::Duration;

use rampart_tests::test_origin::{Framing, Reply, TestOrigin};
use rampart_tests::{cache_status, Edge};

/// Bytes no compression or minification touches, each position telling where it was.
fn payload() -> Vec<u8> {
    (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

fn stored(cache_control: &str) -> Reply {
    Reply::ok(payload())
        .header("content-type", "application/octet-stream")
        .header("cache-control", cache_control)
}

/// The status, `Cache-Status` and body of `url`, read a little at first and the rest after a
/// pause.
async fn read_slowly(client: &reqwest::Client, url: &str) -> (u16, String, Vec<u8>) {
    let mut response = client.get(url).send().await.expect("edge reachable");
    let (status, cache) = (response.status().as_u16(), cache_status(&response));
    let mut body = Vec::new();
    let mut paused = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(error) => panic!(
                "the body broke off after {} bytes ({cache}): {error}",
                body.len()
            ),
        }
        if !paused {
            tokio::time::sleep(Duration::from_millis(300)).await;
            paused = true;
        }
    }
    (status, cache, body)
}

/// Past `max-age=1`: freshness is counted in whole seconds.
async fn let_it_go_stale() {
    tokio::time::sleep(Duration::from_millis(2200)).await;
}

async fn assert_served_whole(client: &reqwest::Client, url: &str, detail: &str) {
    let (status, cache, body) = read_slowly(client, url).await;
    assert_eq!(status, 200, "{cache}");
    assert!(cache.contains(detail), "{cache}");
    assert_eq!(body.len(), payload().len(), "{cache}");
    assert!(body == payload(), "the stale body changed: {cache}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_while_revalidate_answer_survives_its_refresh_failing() {
    let origin = TestOrigin::start().await;
    let edge = Edge::start(&origin.url).await;
    let client = rampart_tests::client();
    let swr = "public, max-age=1, stale-while-revalidate=600";
    for (path, broken) in [
        ("/api/tasks/swr-reset", Framing::Reset),
        ("/api/tasks/swr-truncated", Framing::Truncated),
    ] {
        origin.script(path, vec![stored(swr), stored(swr).framing(broken)]);
        let url = format!("{}{path}", edge.url);
        let (status, cache, _) = read_slowly(&client, &url).await;
        assert_eq!(status, 200, "{cache}");
        let_it_go_stale().await;
        assert_served_whole(&client, &url, "stale-while-revalidate").await;
    }
    // The origin gone: every refresh is refused.
    let url = format!("{}/api/tasks/swr-gone", edge.url);
    origin.script("/api/tasks/swr-gone", vec![stored(swr)]);
    read_slowly(&client, &url).await;
    let_it_go_stale().await;
    drop(origin);
    for _ in 0..3 {
        assert_served_whole(&client, &url, "stale-while-revalidate").await;
    }
    // Many readers at once, each starting (or finding) a refresh that is refused.
    let readers: Vec<_> = (0..12)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                assert_served_whole(&client, &url, "stale-while-revalidate").await;
            })
        })
        .collect();
    for reader in readers {
        reader.await.expect("every reader got the whole copy");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_stale_pages_are_served_to_every_reader_while_the_origin_is_gone() {
    let origin = TestOrigin::start().await;
    let edge = Edge::start(&origin.url).await;
    let client = rampart_tests::client();
    let swr = "public, max-age=1, stale-while-revalidate=600, stale-if-error=86400";
    let sie = "public, max-age=1, stale-if-error=86400";
    let pages: Vec<(String, &str)> = (1..=6)
        .map(|n| {
            (
                format!("/api/tasks/{n}"),
                if n % 2 == 0 { swr } else { sie },
            )
        })
        .collect();
    for (path, cache_control) in &pages {
        let body = format!("{{\"id\":\"{path}\",\"title\":\"a page under 1 KiB\"}}");
        origin.script(
            path,
            vec![Reply::ok(body)
                .header("content-type", "application/json")
                .header("cache-control", cache_control)],
        );
        let (status, _) = small(&client, &format!("{}{path}", edge.url)).await;
        assert_eq!(status, 200);
    }
    let_it_go_stale().await;
    drop(origin);
    let mut readers = Vec::new();
    for round in 0..20 {
        for (path, _) in &pages {
            let (client, url, path) = (client.clone(), format!("{}{path}", edge.url), path.clone());
            readers.push(tokio::spawn(async move {
                let (status, body) = small(&client, &url).await;
                assert_eq!(status, 200, "round {round}: {body}");
                assert!(body.contains(&path), "round {round}: {body}");
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for reader in readers {
        reader
            .await
            .expect("every read of a stored page was served");
    }
}

async fn small(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.expect("edge reachable");
    let status = response.status().as_u16();
    let cache = cache_status(&response);
    let body = response.text().await.expect("a whole body");
    (status, format!("{body} ({cache})"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_if_error_answer_survives_its_validation_failing() {
    let origin = TestOrigin::start().await;
    let edge = Edge::start(&origin.url).await;
    let client = rampart_tests::client();
    let sie = "public, max-age=1, stale-if-error=600";
    let path = "/api/tasks/sie-reset";
    origin.script(path, vec![stored(sie), stored(sie).framing(Framing::Reset)]);
    let url = format!("{}{path}", edge.url);
    read_slowly(&client, &url).await;
    let_it_go_stale().await;
    assert_served_whole(&client, &url, "fwd=stale").await;
    drop(origin);
    assert_served_whole(&client, &url, "fwd=stale").await;
}
