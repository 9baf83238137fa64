//! Jobs through outages: a Redis frozen for ten seconds (the request path keeps serving; the
//! purge a write made meanwhile waits in the write's outbox and is delivered once Redis answers), and
//! purges through a fake of Cloudflare's API that batches and rate-limits as Cloudflare does.

mod common;
#[path = "support/fake_cloudflare.rs"]
mod fake_cloudflare;
#[path = "support/purge_receiver.rs"]
mod purge_receiver;

use std::time::{Duration, Instant};

use common::OwnRedis;
use origin::config::jobs::CloudflareTarget;
use origin::config::{Config, EdgePurgeTarget};
use purge_receiver::Receiver;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_frozen_reads_and_writes_go_on_and_the_purge_arrives_afterwards() {
    let redis = OwnRedis::start().await;
    let (receiver, url) = Receiver::start().await;
    let mut config = Config::default();
    config.redis.url = Some(redis.url.clone());
    config.application.edge_purge = Some(EdgePurgeTarget { url, token: None });
    let origin = common::start(config).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    for _ in 0..2 {
        let primed = client
            .get(format!("{}/api/tasks/1", origin.base))
            .send()
            .await;
        assert_eq!(primed.expect("reachable").status(), 200);
    }

    redis.signal("-STOP");
    let frozen = Instant::now();
    let mut reads = 0;
    let mut slowest = Duration::ZERO;
    let mut wrote = false;
    while frozen.elapsed() < Duration::from_secs(10) {
        for path in ["/api/tasks/1", "/api/tasks", "/api/tasks/3"] {
            let started = Instant::now();
            let response = client.get(format!("{}{path}", origin.base)).send().await;
            slowest = slowest.max(started.elapsed());
            assert_eq!(
                response.expect("reachable").status(),
                200,
                "{path} with Redis frozen"
            );
            reads += 1;
        }
        if !wrote && frozen.elapsed() > Duration::from_secs(2) {
            let started = Instant::now();
            let renamed = client
                .patch(format!("{}/api/tasks/2", origin.base))
                .json(&json!({"title": "Renamed while Redis was frozen"}))
                .send()
                .await
                .expect("reachable");
            assert_eq!(renamed.status(), 200);
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{:?}",
                started.elapsed()
            );
            wrote = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !receiver.tags().contains(&"task:2".to_owned()),
        "the purge waits in the outbox while Redis is frozen"
    );
    redis.signal("-CONT");
    let thawed = Instant::now();
    while !receiver.tags().contains(&"task:2".to_owned()) {
        assert!(
            thawed.elapsed() < Duration::from_secs(15),
            "the purge arrives after Redis returns"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{reads} reads with Redis frozen, slowest {slowest:?}; the held purge arrived {:?} after Redis returned",
        thawed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_reach_cloudflare_in_batches_and_wait_out_its_rate_limit() {
    let cloudflare = fake_cloudflare::start("cf-token").await;
    cloudflare.fail_next_with_429(1, 2);
    let mut config = Config::default();
    config.application.admin_token = Some("admin".to_owned());
    config.jobs.cloudflare = Some(CloudflareTarget {
        api_base: cloudflare.api_base(),
        zone_id: "023e105f4ecef8ad9ca31a8372d0c353".to_owned(),
        token: "cf-token".to_owned(),
    });
    let origin = common::start(config).await;
    let client = reqwest::Client::new();
    let tags: Vec<String> = (0..150).map(|i| format!("tag-{i}")).collect();
    let keys = [
        "GET https://app.example/api/tasks/1",
        "GET https://app.example/",
    ];
    let started = Instant::now();
    let invalidated = client
        .post(format!("{}/api/admin/cache/invalidate", origin.base))
        .bearer_auth("admin")
        .json(&json!({ "tags": tags, "keys": keys }))
        .send()
        .await
        .expect("reachable");
    assert_eq!(invalidated.status(), 200);
    let received = loop {
        let received = cloudflare.received();
        let purged = received
            .iter()
            .flat_map(|body| body["tags"].as_array().cloned().unwrap_or_default())
            .count();
        let files = received.iter().any(|body| body.get("files").is_some());
        if purged == 150 && files {
            break received;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{received:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the retry waited for Retry-After"
    );
    let sizes: Vec<usize> = received
        .iter()
        .filter_map(|body| body["tags"].as_array().map(Vec::len))
        .collect();
    assert_eq!(sizes, vec![100, 50], "{received:?}");
    let files: Vec<&Value> = received
        .iter()
        .filter_map(|body| body.get("files"))
        .collect();
    assert_eq!(
        files,
        vec![&json!([
            "https://app.example/api/tasks/1",
            "https://app.example/"
        ])]
    );

    // Clearing the whole cache purges the whole zone.
    let cleared = client
        .post(format!("{}/api/admin/cache/clear", origin.base))
        .bearer_auth("admin")
        .send()
        .await
        .expect("reachable");
    assert_eq!(cleared.status(), 200);
    let waited = Instant::now();
    while !cloudflare
        .received()
        .iter()
        .any(|body| body["purge_everything"] == true)
    {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "purge_everything sent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
