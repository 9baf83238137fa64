//! The edge in workerd in front of several origins (`ORIGIN_URL` lists them, separated by
//! commas): requests that reach an origin take turns among them; when one stops, the requests
//! that would have gone to it go to the others and none fails; a write is never sent twice.

use std::time::{Duration, Instant};

use rampart_tests::{Edge, Origin};

const LIVE: &str = "/health/live";

async fn wait_until_refused(url: &str) {
    let address = url.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(&address).await.is_ok() {
        assert!(Instant::now() < deadline, "{url} still accepts connections");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn requests_take_turns_and_a_stopped_origin_is_passed_over() {
    let mut origins = vec![
        Origin::start().await,
        Origin::start().await,
        Origin::start().await,
    ];
    let list: Vec<&str> = origins.iter().map(|origin| origin.url.as_str()).collect();
    let edge = Edge::start(&list.join(", ")).await;
    let client = rampart_tests::client();
    let get = |path: &str| client.get(format!("{}{path}", edge.url)).send();

    for _ in 0..30 {
        assert_eq!(get(LIVE).await.expect("reachable").status(), 200);
    }
    for origin in &origins {
        let served = origin.requests_served(LIVE).await;
        assert!(served >= 5, "{} answered {served} of 30", origin.url);
    }

    let stopped = origins.remove(1);
    let stopped_url = stopped.url.clone();
    drop(stopped);
    wait_until_refused(&stopped_url).await;
    let before: u64 = live_served(&origins).await;
    for n in 0..30 {
        let response = get(LIVE).await.expect("reachable");
        assert_eq!(response.status(), 200, "request {n} after the stop");
        // Uncached reads of the API too: each goes to an origin.
        let task = get(&format!("/api/tasks/{}?n={n}", 1 + n % 3))
            .await
            .expect("reachable");
        assert_eq!(task.status(), 200, "task read {n} after the stop");
    }
    assert_eq!(
        live_served(&origins).await - before,
        30,
        "the two left answered all"
    );

    // A write whose origin is gone is not sent again elsewhere: at most one fails, and
    // the failed origin then rests, so the next ones go to the others.
    let mut failed = 0;
    for n in 0..6 {
        let response = client
            .post(format!("{}/api/tasks/1/comments", edge.url))
            .json(&serde_json::json!({ "author_id": 1, "body": format!("through the edge {n}") }))
            .send()
            .await
            .expect("reachable");
        if response.status() != 201 {
            failed += 1;
        }
    }
    assert!(failed <= 1, "{failed} of 6 writes failed");
}

async fn live_served(origins: &[Origin]) -> u64 {
    let mut sum = 0;
    for origin in origins {
        sum += origin.requests_served(LIVE).await;
    }
    sum
}
