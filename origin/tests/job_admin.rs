//! The operator's side of the job system and the emergency cache operations, through the real
//! server: each refuses bad input, does what it says, and leaves an entry in the audit log;
//! readiness fails while a queue is backlogged.

mod common;

use std::time::Duration;

use common::{cache_status, start};
use origin::config::Config;
use origin::core::jobs::Queue;
use serde_json::{json, Value};

const TOKEN: &str = "admin-token";

fn admin_config() -> Config {
    let mut config = Config::default();
    config.application.admin_token = Some(TOKEN.to_owned());
    config
}

async fn audit_actions(client: &reqwest::Client, base: &str) -> Vec<String> {
    let events: Value = client
        .get(format!("{base}/api/events?actor=admin"))
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .expect("JSON");
    events["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["action"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_delete_and_warm_act_on_the_cache_and_are_audited() {
    let origin = start(admin_config()).await;
    let (base, client) = (origin.base.clone(), reqwest::Client::new());
    let get = |path: &'static str| {
        let (client, url) = (client.clone(), format!("{base}{path}"));
        async move { cache_status(&client.get(url).send().await.expect("reachable")) }
    };
    for path in ["/api/tasks/1", "/api/tasks/2", "/api/stats"] {
        get(path).await;
        assert!(get(path).await.contains("hit"), "{path} cached");
    }
    let admin = |path: &str, body: Option<Value>| {
        let mut request = client.post(format!("{base}{path}")).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };

    let bad = admin("/api/admin/cache/delete", Some(json!({"pattern": ""})))
        .await
        .expect("reachable");
    assert_eq!(bad.status(), 422);
    let bad = admin("/api/admin/cache/delete", Some(json!({"glob": "*"})))
        .await
        .expect("reachable");
    assert_eq!(bad.status(), 400);
    let deleted = admin(
        "/api/admin/cache/delete",
        Some(json!({"pattern": "GET https://*/api/tasks/*"})),
    )
    .await
    .expect("reachable");
    assert_eq!(deleted.status(), 200);
    let report: Value = deleted.json().await.expect("JSON");
    assert_eq!(report["keys"].as_array().map(Vec::len), Some(2), "{report}");
    assert!(!get("/api/tasks/1").await.contains("hit"), "deleted");
    assert!(
        get("/api/stats").await.contains("hit"),
        "keys outside the pattern stay"
    );

    let cleared = admin("/api/admin/cache/clear", None)
        .await
        .expect("reachable");
    assert_eq!(cleared.status(), 200);
    assert!(!get("/api/stats").await.contains("hit"), "cleared");

    let refused = admin(
        "/api/admin/cache/warm",
        Some(json!({"paths": ["no-slash"]})),
    )
    .await
    .expect("reachable");
    assert_eq!(refused.status(), 422);
    admin("/api/admin/cache/clear", None)
        .await
        .expect("reachable");
    let warm = admin(
        "/api/admin/cache/warm",
        Some(json!({"paths": ["/api/tasks/3"]})),
    )
    .await
    .expect("reachable");
    assert_eq!(warm.status(), 202);
    let body: Value = warm.json().await.expect("JSON");
    assert_eq!(body["job"]["queue"], "cache-refresh");
    let mut warmed = false;
    for _ in 0..50 {
        let status = client
            .get(format!("{base}/api/admin/jobs"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("reachable")
            .json::<Value>()
            .await
            .expect("JSON");
        if status["queues"]["cache-refresh"]["completed"].as_u64() >= Some(1) {
            warmed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(warmed, "the warm-up ran");
    assert!(
        get("/api/tasks/3").await.contains("hit"),
        "warmed before any visitor"
    );

    let actions = audit_actions(&client, &base).await;
    for action in ["cache.delete", "cache.clear", "cache.warm"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} audited: {actions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_pause_and_resume_unknown_ones_are_404_and_the_admin_token_is_required() {
    let origin = start(admin_config()).await;
    let (base, client) = (origin.base.clone(), reqwest::Client::new());
    let anonymous = client
        .get(format!("{base}/api/admin/jobs"))
        .send()
        .await
        .expect("reachable");
    assert_eq!(anonymous.status(), 401);
    let unknown = client
        .post(format!("{base}/api/admin/jobs/mail/pause"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("reachable");
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.expect("JSON");
    assert_eq!(body["code"], "NOT_FOUND");
    for (action, paused) in [("pause", true), ("resume", false)] {
        let answer: Value = client
            .post(format!("{base}/api/admin/jobs/crawler/{action}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("reachable")
            .json()
            .await
            .expect("JSON");
        assert_eq!(answer, json!({"queue": "crawler", "paused": paused}));
        let overview: Value = client
            .get(format!("{base}/api/admin/jobs"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("reachable")
            .json()
            .await
            .expect("JSON");
        assert_eq!(overview["queues"]["crawler"]["paused"], paused);
        assert_eq!(overview["durable"], false, "no Redis: jobs in process");
    }
    let actions = audit_actions(&client, &base).await;
    assert!(
        actions.iter().any(|a| a == "jobs.pause") && actions.iter().any(|a| a == "jobs.resume")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_a_queue_is_backlogged() {
    let mut config = admin_config();
    config.jobs.settings.concurrency.insert(Queue::Crawler, 0);
    config.jobs.settings.max_wait = Duration::from_secs(1);
    let origin = start(config).await;
    let (base, client) = (origin.base.clone(), reqwest::Client::new());
    let ready = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .expect("reachable");
    assert_eq!(ready.status(), 200);
    // No crawler runs on this instance: the link's fetch waits.
    let posted = client
        .post(format!("{base}/api/tasks/1/links"))
        .json(&json!({"url": "https://example.com/"}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(posted.status(), 202);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ready = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .expect("reachable");
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.expect("JSON");
    assert_eq!(body["status"], "backlogged");
    assert_eq!(body["backlogged"], json!(["crawler"]));
    let detailed: Value = client
        .get(format!("{base}/health/detailed"))
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        detailed["jobs"]["queues"]["crawler"]["waiting"], 1,
        "{detailed}"
    );
}
