//! The job system with real processes and a real Redis: work shared by two origin processes
//! and run once per job, taken over after a `kill -9`, retried then dead-lettered and retried
//! again from the admin API.

mod common;
#[path = "support/purge_receiver.rs"]
mod purge_receiver;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{redis_url, spawn_with, unique_prefix};
use origin::core::jobs::{JobSettings, Jobs, NewJob, Queue, QueueCounts};
use purge_receiver::Receiver;
use serde_json::{json, Value};

/// The queues of the origins under `prefix`, seen from the test.
fn queues(prefix: &str) -> Jobs {
    Jobs::on_redis(
        &origin::core::dependencies::redis::RedisTarget::node(&redis_url()).expect("Redis URL"),
        prefix,
        Duration::from_secs(2),
        JobSettings::default(),
    )
    .expect("Redis URL")
}

fn purge_job(tag: &str) -> NewJob {
    NewJob::new(
        Queue::EdgePurge,
        "purge-edge",
        json!({ "tags": [tag], "urls": [] }),
    )
    .with_key(format!("purge:{tag}"))
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> F,
) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {limit:?}");
}

async fn counts(jobs: &Jobs) -> QueueCounts {
    jobs.store().counts(Queue::EdgePurge).await.expect("counts")
}

fn sqlite(folder: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite:{}/{name}.db", folder.path().display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_run_each_of_a_thousand_jobs_exactly_once() {
    let (receiver, url) = Receiver::start().await;
    let prefix = unique_prefix("jobs-once");
    let queue = queues(&prefix);
    queue
        .store()
        .set_paused(Queue::EdgePurge, true)
        .await
        .expect("pause");
    let folder = tempfile::tempdir().expect("folder");
    let env = [
        ("EDGE_PURGE_URL", url.as_str()),
        ("JOBS_CONCURRENCY", "edge-purge=8"),
    ];
    let (_a, a) = spawn_with(&sqlite(&folder, "a"), &prefix, &env).await;
    let (_b, b) = spawn_with(&sqlite(&folder, "b"), &prefix, &env).await;
    let jobs: Vec<NewJob> = (0..1000).map(|i| purge_job(&format!("t{i}"))).collect();
    let first = queue.enqueue_all(&jobs).await.expect("enqueued");
    let again = queue.enqueue_all(&jobs).await.expect("enqueued");
    assert!(first.iter().all(|e| e.created));
    assert!(
        again.iter().all(|e| !e.created),
        "a waiting job's key makes a copy a no-op"
    );
    assert_eq!(counts(&queue).await.waiting, 1000);
    queue
        .store()
        .set_paused(Queue::EdgePurge, false)
        .await
        .expect("resume");
    let started = Instant::now();
    wait_until("every job delivered", Duration::from_secs(60), || async {
        counts(&queue).await.completed >= 1000
    })
    .await;
    let elapsed = started.elapsed();
    let mut runs: HashMap<String, usize> = HashMap::new();
    for tag in receiver.tags() {
        *runs.entry(tag).or_default() += 1;
    }
    assert_eq!(runs.len(), 1000, "none lost");
    assert!(runs.values().all(|n| *n == 1), "none ran twice");
    let final_counts = counts(&queue).await;
    assert_eq!(
        (final_counts.waiting, final_counts.active, final_counts.dead),
        (0, 0, 0)
    );
    for base in [&a, &b] {
        let metrics = common::metrics(base).await;
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("queue_jobs_total{")
                    && l.contains("edge-purge")
                    && l.contains("completed")
            })
            .unwrap_or_default();
        assert!(!line.is_empty(), "{base} ran some of the jobs");
    }
    println!("1000 jobs across two processes in {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_in_flight_on_a_killed_process_complete_on_the_other() {
    let (receiver, url) = Receiver::start().await;
    *receiver.hold.lock().expect("lock") = Duration::from_millis(1500);
    let prefix = unique_prefix("jobs-kill");
    let queue = queues(&prefix);
    let folder = tempfile::tempdir().expect("folder");
    let env = [
        ("EDGE_PURGE_URL", url.as_str()),
        ("JOBS_CONCURRENCY", "edge-purge=4"),
        ("JOBS_VISIBILITY_TIMEOUT_MS", "2000"),
    ];
    let (mut a, _) = spawn_with(&sqlite(&folder, "a"), &prefix, &env).await;
    let jobs: Vec<NewJob> = (0..12).map(|i| purge_job(&format!("k{i}"))).collect();
    queue.enqueue_all(&jobs).await.expect("enqueued");
    wait_until(
        "four jobs in flight on A",
        Duration::from_secs(10),
        || async { receiver.in_flight.load(Ordering::SeqCst) == 4 },
    )
    .await;
    a.start_kill().expect("kill -9");
    a.wait().await.expect("killed");
    let killed_at = Instant::now();
    assert_eq!(
        counts(&queue).await.active,
        4,
        "A's jobs stay pending, unacknowledged"
    );
    let (_b, _) = spawn_with(&sqlite(&folder, "b"), &prefix, &env).await;
    wait_until(
        "every job completed by B",
        Duration::from_secs(30),
        || async { counts(&queue).await.completed == 12 },
    )
    .await;
    let tags = receiver.tags();
    for i in 0..12 {
        assert!(tags.contains(&format!("k{i}")), "k{i} delivered");
    }
    let done = counts(&queue).await;
    assert_eq!(
        (done.waiting, done.active, done.dead),
        (0, 0, 0),
        "{done:?}"
    );
    println!(
        "recovered {} jobs {:?} after the kill",
        12,
        killed_at.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_target_is_retried_then_dead_lettered_and_the_admin_api_retries_it() {
    let (receiver, url) = Receiver::start().await;
    receiver.failing.store(true, Ordering::SeqCst);
    let prefix = unique_prefix("jobs-dead");
    let folder = tempfile::tempdir().expect("folder");
    let env = [
        ("EDGE_PURGE_URL", url.as_str()),
        ("JOBS_MAX_ATTEMPTS", "4"),
        ("RETRY_INITIAL_DELAY_MS", "300"),
        ("RETRY_BACKOFF_FACTOR", "2"),
        ("ADMIN_TOKEN", "admin-token"),
        ("RATE_LIMIT_ENABLED", "false"),
    ];
    let (_a, a) = spawn_with(&sqlite(&folder, "a"), &prefix, &env).await;
    let client = reqwest::Client::new();
    // A write invalidates the task's tags: its purge is a job.
    let renamed = client
        .patch(format!("{a}/api/tasks/2"))
        .json(&json!({"title": "Renamed"}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(renamed.status(), 200);
    let admin = |request: reqwest::RequestBuilder| request.bearer_auth("admin-token").send();
    let overview = || async {
        let response = admin(client.get(format!("{a}/api/admin/jobs")))
            .await
            .expect("reachable");
        response.json::<Value>().await.expect("JSON")
    };
    wait_until("the job is dead", Duration::from_secs(30), || async {
        overview().await["queues"]["edge-purge"]["dead"] == 1
    })
    .await;
    assert_eq!(receiver.calls(), 4, "every attempt reached the target");
    assert!(
        receiver.tags().contains(&"task:2".to_owned()),
        "{:?}",
        receiver.tags()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        receiver.calls(),
        4,
        "a dead job is not tried again by itself"
    );
    let dead: Value = admin(client.get(format!("{a}/api/admin/jobs/edge-purge/dead")))
        .await
        .expect("reachable")
        .json()
        .await
        .expect("JSON");
    let job = &dead["data"][0];
    assert!(job.is_object(), "{dead}");
    assert_eq!(job["attempts"], 4);
    assert!(
        job["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("500"),
        "{job}"
    );
    let id = job["id"].as_str().expect("id").to_owned();
    receiver.failing.store(false, Ordering::SeqCst);
    let delivered_before = receiver.calls();
    let retried = admin(client.post(format!("{a}/api/admin/jobs/edge-purge/dead/{id}/retry")))
        .await
        .expect("reachable");
    assert_eq!(retried.status(), 202);
    wait_until(
        "the retried job completes",
        Duration::from_secs(10),
        || async {
            let queues = overview().await;
            queues["queues"]["edge-purge"]["completed"] == 1
                && queues["queues"]["edge-purge"]["dead"] == 0
        },
    )
    .await;
    assert_eq!(receiver.calls(), delivered_before + 1);
    let again = admin(client.post(format!("{a}/api/admin/jobs/edge-purge/dead/{id}/retry")))
        .await
        .expect("reachable");
    assert_eq!(again.status(), 404, "no longer dead");
    let body: Value = again.json().await.expect("JSON");
    assert_eq!(body["code"], "NOT_FOUND");
}
