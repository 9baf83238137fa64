//! The job system against both stores: the in-process one, and a real Redis (`REDIS_URL`,
//! default `redis://127.0.0.1:6379`) under a prefix of the test's own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::*;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn target() -> RedisTarget {
    RedisTarget::node(&redis_url()).expect("a Redis URL")
}

fn quick() -> JobSettings {
    JobSettings {
        visibility_timeout: Duration::from_millis(900),
        retry: RetryPolicy {
            attempts: 3,
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(40),
            factor: 2.0,
        },
        ..JobSettings::default()
    }
}

fn both(settings: JobSettings) -> Vec<(&'static str, Jobs)> {
    let prefix = format!("test-jobs-{:08x}:", fastrand::u32(..));
    let redis = Jobs::on_redis(&target(), &prefix, Duration::from_secs(2), settings.clone())
        .expect("a Redis URL");
    vec![("memory", Jobs::in_memory(settings)), ("redis", redis)]
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

fn counting(jobs: &Jobs, kind: &str) -> Arc<AtomicUsize> {
    let runs = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&runs);
    jobs.register(kind, move |_job: Job| {
        let seen = Arc::clone(&seen);
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    runs
}

#[tokio::test]
async fn a_key_waiting_twice_runs_once_and_is_free_again_once_started() {
    for (name, jobs) in both(quick()) {
        let runs = counting(&jobs, "refresh");
        let job = NewJob::new(Queue::CacheRefresh, "refresh", json!({})).with_key("task:1");
        let first = jobs.enqueue(job.clone()).await.expect("enqueued");
        let second = jobs.enqueue(job.clone()).await.expect("enqueued");
        assert!(first.created && !second.created, "{name}");
        assert_eq!(
            first.id, second.id,
            "{name}: the duplicate names the waiting job"
        );
        let (stop, stopped) = watch::channel(false);
        let tasks = runner::start(&jobs, stopped);
        wait_for("one run", || runs.load(Ordering::SeqCst) == 1).await;
        let third = jobs.enqueue(job).await.expect("enqueued");
        assert!(
            third.created,
            "{name}: a started job no longer holds its key"
        );
        wait_for("the second run", || runs.load(Ordering::SeqCst) == 2).await;
        let _ = stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
    }
}

#[tokio::test]
async fn one_call_adds_jobs_of_several_queues_each_to_its_own_and_in_order() {
    for (name, jobs) in both(quick()) {
        let webhook = NewJob::serialized(Queue::Notifications, "webhook", &json!({"n": 1}))
            .expect("json")
            .with_key("same");
        let purge = NewJob::new(Queue::EdgePurge, "purge-edge", json!({"tags": ["t"]}));
        let later =
            NewJob::new(Queue::Notifications, "webhook", json!({"n": 2})).delayed_by(60_000);
        // The same key on another queue is another job; on the same queue, the waiting one.
        let batch = [
            webhook.clone(),
            purge.clone().with_key("same"),
            later,
            webhook,
        ];
        let done = jobs.enqueue_all(&batch).await.expect("enqueued");
        let created: Vec<bool> = done.iter().map(|e| e.created).collect();
        assert_eq!(created, [true, true, true, false], "{name}");
        assert_eq!(
            done[3].id, done[0].id,
            "{name}: the duplicate names the first"
        );
        let store = jobs.store();
        for queue in [Queue::Notifications, Queue::EdgePurge] {
            store.prepare(queue).await.expect("the queue's group");
        }
        let notifications = store.counts(Queue::Notifications).await.expect("counts");
        let purges = store.counts(Queue::EdgePurge).await.expect("counts");
        assert_eq!(
            (notifications.waiting, notifications.delayed, purges.waiting),
            (1, 1, 1),
            "{name}"
        );
        let stored = store
            .get(Queue::Notifications, &done[0].id)
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(
            (stored.kind.as_str(), &stored.payload),
            ("webhook", &json!({"n": 1})),
            "{name}"
        );
        let stored = store
            .get(Queue::EdgePurge, &done[1].id)
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(stored.payload, purge.payload.value(), "{name}");
    }
}

#[tokio::test]
async fn a_failing_job_is_retried_then_dead_lettered_and_can_be_retried_by_hand() {
    for (name, jobs) in both(quick()) {
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let attempts = Arc::new(AtomicUsize::new(0));
        let (failing, seen) = (Arc::clone(&fail), Arc::clone(&attempts));
        jobs.register("deliver", move |_job: Job| {
            let (failing, seen) = (Arc::clone(&failing), Arc::clone(&seen));
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                if failing.load(Ordering::SeqCst) {
                    Err(JobError::retry("target answered 500"))
                } else {
                    Ok(())
                }
            }
        });
        let (stop, stopped) = watch::channel(false);
        let tasks = runner::start(&jobs, stopped);
        let id = jobs
            .enqueue(NewJob::new(
                Queue::Notifications,
                "deliver",
                json!({"n": 1}),
            ))
            .await
            .expect("enqueued")
            .id;
        let store = jobs.store().clone();
        for _ in 0..400 {
            if store
                .counts(Queue::Notifications)
                .await
                .expect("counts")
                .dead
                == 1
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            3,
            "{name}: every attempt ran"
        );
        let dead = store.dead(Queue::Notifications, 10).await.expect("dead");
        assert_eq!(dead.len(), 1, "{name}");
        assert_eq!(dead[0].id, id);
        assert_eq!(dead[0].last_error.as_deref(), Some("target answered 500"));
        assert_eq!(dead[0].payload, json!({"n": 1}));
        fail.store(false, Ordering::SeqCst);
        assert!(store
            .retry_dead(Queue::Notifications, &id)
            .await
            .expect("retry"));
        wait_for("the retried run", || attempts.load(Ordering::SeqCst) == 4).await;
        for _ in 0..100 {
            let job = store.get(Queue::Notifications, &id).await.expect("get");
            if job.is_some_and(|job| job.state == JobState::Completed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let counts = store.counts(Queue::Notifications).await.expect("counts");
        assert_eq!(
            (counts.dead, counts.completed),
            (0, 1),
            "{name}: {counts:?}"
        );
        assert!(!store
            .retry_dead(Queue::Notifications, &id)
            .await
            .expect("retry"));
        let _ = stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
    }
}

#[tokio::test]
async fn a_permanent_failure_skips_the_remaining_attempts_and_dead_jobs_can_be_deleted() {
    for (name, jobs) in both(quick()) {
        jobs.register("bad", |_job: Job| async {
            Err(JobError::permanent("400 Bad Request"))
        });
        let (stop, stopped) = watch::channel(false);
        let tasks = runner::start(&jobs, stopped);
        let id = jobs
            .enqueue(NewJob::new(Queue::Crawler, "bad", json!(null)))
            .await
            .expect("enqueued")
            .id;
        let store = jobs.store().clone();
        for _ in 0..200 {
            if store.counts(Queue::Crawler).await.expect("counts").dead == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let job = store
            .get(Queue::Crawler, &id)
            .await
            .expect("get")
            .expect("kept");
        assert_eq!((job.state, job.attempts), (JobState::Dead, 1), "{name}");
        assert!(store
            .delete_dead(Queue::Crawler, &id)
            .await
            .expect("delete"));
        assert!(store.get(Queue::Crawler, &id).await.expect("get").is_none());
        let _ = stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
    }
}

#[tokio::test]
async fn a_paused_queue_keeps_its_jobs_until_resumed_and_a_delay_is_kept() {
    for (name, jobs) in both(quick()) {
        let runs = counting(&jobs, "trim");
        let store = jobs.store().clone();
        store.set_paused(Queue::Cleanup, true).await.expect("pause");
        let (stop, stopped) = watch::channel(false);
        let tasks = runner::start(&jobs, stopped);
        jobs.enqueue(NewJob::new(Queue::Cleanup, "trim", json!(null)))
            .await
            .expect("enqueued");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 0, "{name}: paused");
        let counts = store.counts(Queue::Cleanup).await.expect("counts");
        assert!(counts.paused && counts.waiting == 1, "{name}: {counts:?}");
        store
            .set_paused(Queue::Cleanup, false)
            .await
            .expect("resume");
        wait_for("the run after resuming", || {
            runs.load(Ordering::SeqCst) == 1
        })
        .await;
        jobs.enqueue(NewJob::new(Queue::Cleanup, "trim", json!(null)).delayed_by(600))
            .await
            .expect("enqueued");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "{name}: not before its delay"
        );
        wait_for("the delayed run", || runs.load(Ordering::SeqCst) == 2).await;
        let _ = stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
    }
}

#[tokio::test]
async fn a_backlog_is_read_in_full_batches_each_job_started_once_and_deleted_ones_skipped() {
    for (name, jobs) in both(quick()) {
        let queue = Queue::Crawler;
        jobs.store().prepare(queue).await.expect("group");
        let keyed =
            |n: usize| NewJob::new(queue, "fetch", json!({ "n": n })).with_key(format!("k{n}"));
        let mut ids = Vec::new();
        for n in 0..7 {
            ids.push(jobs.enqueue(keyed(n)).await.expect("enqueued").id);
        }
        let mut expected = ids.clone();
        if let store::Store::Redis(store, _) = jobs.store() {
            expected.remove(3);
            // A waiting job deleted behind the store's back: its entry must be skipped.
            let client = redis::Client::open(redis_url()).expect("url");
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis");
            let job_key = format!("{}{}", store.keys(queue).job_prefix, ids[3]);
            let _: () = redis::cmd("DEL")
                .arg(job_key)
                .query_async(&mut conn)
                .await
                .expect("del");
        }
        let mut reader = store::Reader::default();
        let mut taken = Vec::new();
        let mut backlogged = Vec::new();
        while taken.len() < expected.len() {
            let batch = jobs
                .store()
                .reserve(&mut reader, queue, "reader", 2, Duration::from_millis(100))
                .await
                .expect("reserve");
            assert!(!batch.is_empty() && batch.len() <= 2, "{name}: {batch:?}");
            backlogged.push(reader.backlog);
            taken.extend(batch);
        }
        let got: Vec<&str> = taken.iter().map(|r| r.job.id.as_str()).collect();
        assert_eq!(got, expected, "{name}: in order, once each");
        for reserved in &taken {
            assert_eq!(reserved.job.attempts, 1, "{name}");
            assert_eq!(reserved.job.state, JobState::Active, "{name}");
        }
        if name == "redis" {
            // A full read marks a backlog, so the next one reads and starts in one call: the
            // second read did, skipping the deleted job (a short read, which ends the
            // backlog); the fourth did too.
            assert_eq!(backlogged, [true, false, true, false]);
        }
        // Every started job released its key: the same change enqueues a new job.
        let again = jobs.enqueue(keyed(4)).await.expect("enqueued");
        assert!(again.created && again.id != ids[4], "{name}");
        let rest = jobs
            .store()
            .reserve(&mut reader, queue, "reader", 8, Duration::from_millis(100))
            .await
            .expect("reserve");
        let rest: Vec<&str> = rest.iter().map(|r| r.job.id.as_str()).collect();
        assert_eq!(rest, [again.id.as_str()], "{name}: nothing delivered twice");
        assert!(!reader.backlog, "{name}: a short read ends any backlog");
    }
}

#[tokio::test]
async fn a_job_whose_worker_went_silent_is_taken_over() {
    let prefix = format!("test-jobs-{:08x}:", fastrand::u32(..));
    let settings = quick();
    let open = |s: &JobSettings| {
        Jobs::on_redis(&target(), &prefix, Duration::from_secs(2), s.clone()).expect("url")
    };
    // A worker that takes a job and never reports back.
    let silent = open(&settings);
    silent
        .store()
        .prepare(Queue::EdgePurge)
        .await
        .expect("group");
    let id = silent
        .enqueue(NewJob::new(
            Queue::EdgePurge,
            "purge",
            json!({"tags": ["t"]}),
        ))
        .await
        .expect("enqueued")
        .id;
    let mut reader = store::Reader::default();
    let taken = silent
        .store()
        .reserve(
            &mut reader,
            Queue::EdgePurge,
            "silent",
            1,
            Duration::from_millis(100),
        )
        .await
        .expect("reserve");
    assert_eq!(taken.len(), 1);
    let other = open(&settings);
    let runs = counting(&other, "purge");
    let (stop, stopped) = watch::channel(false);
    let tasks = runner::start(&other, stopped);
    wait_for("the take-over", || runs.load(Ordering::SeqCst) == 1).await;
    let job = other
        .store()
        .get(Queue::EdgePurge, &id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(job.attempts, 2, "the lost run counts as an attempt");
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
}

#[tokio::test]
async fn finished_records_are_trimmed_to_the_count_kept() {
    for (name, jobs) in both(JobSettings {
        retention: Retention {
            keep_for: Duration::from_secs(3600),
            keep_count: 3,
        },
        ..quick()
    }) {
        let runs = counting(&jobs, "noop");
        let batch: Vec<NewJob> = (0..8)
            .map(|_| NewJob::new(Queue::Cleanup, "noop", json!(null)))
            .collect();
        jobs.enqueue_all(&batch).await.expect("enqueued");
        let (stop, stopped) = watch::channel(false);
        let tasks = runner::start(&jobs, stopped);
        wait_for("every run", || runs.load(Ordering::SeqCst) == 8).await;
        let _ = stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
        let retention = jobs.settings().retention;
        jobs.store()
            .trim(Queue::Cleanup, retention)
            .await
            .expect("trim");
        let counts = jobs.store().counts(Queue::Cleanup).await.expect("counts");
        assert_eq!(counts.completed, 3, "{name}: {counts:?}");
    }
}

#[tokio::test]
async fn with_redis_unreachable_jobs_are_buffered_then_refused_when_the_buffer_is_full() {
    let jobs = Jobs::on_redis(
        &RedisTarget::node("redis://127.0.0.1:1").expect("a Redis URL"),
        "unreachable:",
        Duration::from_millis(100),
        JobSettings {
            buffer_max: 2,
            ..quick()
        },
    )
    .expect("url");
    let job = NewJob::new(Queue::Notifications, "deliver", json!(null));
    assert!(jobs.enqueue(job.clone()).await.is_ok());
    assert!(jobs.enqueue(job.clone()).await.is_ok());
    assert_eq!(jobs.store().buffered(), 2);
    assert_eq!(jobs.enqueue(job).await, Err(StoreError::Full(2)));
}
