//! The application's background jobs over real HTTP, with the job runner started here so that
//! the tests can look at the jobs themselves: links fetched by the crawler (titled, or failed
//! for good without retries), clean-up deleting only what it should (on SQLite and on a
//! throwaway PostgreSQL database), and webhook deliveries checked by a receiver that verifies
//! their signatures, retried while it fails.

mod common;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use common::{test_config, PostgresDb};
use origin::app::model::now_ms;
use origin::app::notifications::Notifier;
use origin::app::outbox::{Outbox, Relay};
use origin::app::store::NewEvent;
use origin::app::{self, AppState, Handoff, ImageUrls};
use origin::config::jobs::WebhookTarget;
use origin::config::Config;
use origin::core::dependencies::outbound::OutboundSettings;
use origin::core::dependencies::retry::RetryPolicy;
use origin::core::dependencies::webhook;
use origin::core::jobs::{runner, JobState, Jobs, Queue, QueueCounts};
use origin::core::stack::Core;
use reqwest::Client;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

const DAY_MS: i64 = 86_400_000;
const SECRET: &str = "whsec-test";

/// Attempts a few milliseconds apart, three at most.
fn quick(mut config: Config) -> Config {
    config.jobs.settings.retry = RetryPolicy {
        attempts: 3,
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(40),
        factor: 2.0,
    };
    config
}

/// The application with its jobs registered and running, served on a free port.
struct App {
    base: String,
    state: AppState,
    jobs: Jobs,
    client: Client,
    _relay: Relay,
    _stop: watch::Sender<bool>,
    _folder: tempfile::TempDir,
}

impl App {
    async fn start(config: Config) -> Self {
        let folder = tempfile::tempdir().expect("temporary folder");
        let config = test_config(quick(config), &folder);
        let core = Core::from_config(&config);
        let store = origin::server::open_store(&config.database, &core.metrics)
            .await
            .expect("the database opens");
        let jobs = Jobs::in_memory(config.jobs.settings.clone());
        let webhook = app::jobs::webhook_of(&config.jobs);
        let notifier = webhook.is_some().then_some(Notifier);
        let (outbox, relay) = Outbox::start(store.clone(), jobs.clone());
        let state = AppState::new(
            store,
            core.cache.cache.clone(),
            config.application.uploads,
            core.http_client(config.resilience.outbound),
            ImageUrls::new(None),
            Handoff {
                jobs: jobs.clone(),
                notifier,
                outbox,
            },
        );
        app::jobs::register(&jobs, &state, config.jobs.audit_retention_days, webhook);
        let (stop, stopped) = watch::channel(false);
        runner::start(&jobs, stopped);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("bound"));
        let router = core.wrap(app::router(state.clone()));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            base,
            state,
            jobs,
            client: Client::new(),
            _relay: relay,
            _stop: stop,
            _folder: folder,
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("reachable");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, Value::Null).await
    }

    /// Follows a link's `Location` until the crawler is done with it.
    async fn settled(&self, location: &str) -> Value {
        for _ in 0..400 {
            let (status, body) = self.get(location).await;
            assert_eq!(status, 200, "{location}: {body}");
            if body["data"]["status"] != "pending" {
                return body["data"].clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{location} is still pending");
    }

    /// Waits until job `id` of `queue` is completed or dead; its state and attempts.
    async fn finished(&self, queue: Queue, id: &str) -> (JobState, u32) {
        for _ in 0..400 {
            let job = self
                .jobs
                .store()
                .get(queue, id)
                .await
                .expect("the store answers");
            if let Some(job) =
                job.filter(|j| matches!(j.state, JobState::Completed | JobState::Dead))
            {
                return (job.state, job.attempts);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("job {id} of {queue} did not finish");
    }

    async fn counts(&self, queue: Queue) -> QueueCounts {
        self.jobs.store().counts(queue).await.expect("counts")
    }

    /// Rows `sql` counts (one `$1` bound to `value`).
    async fn count(&self, sql: &'static str, value: i64) -> i64 {
        let pool = self.state.store.database().pool();
        sqlx::query_scalar(sql)
            .bind(value)
            .fetch_one(pool)
            .await
            .expect("count")
    }
}

/// A page on loopback, counting its hits.
async fn page_server(hits: Arc<AtomicU32>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("bound"));
    let app = Router::new().route(
        "/page",
        get(move || {
            hits.fetch_add(1, Ordering::SeqCst);
            async { axum::response::Html("<title>Quarterly &amp; yearly plans</title>") }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn allow_private() -> Config {
    let mut config = Config::default();
    config.resilience.outbound = OutboundSettings {
        allow_private: true,
        ..OutboundSettings::default()
    };
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_is_accepted_then_titled_by_the_crawler() {
    let pages = page_server(Arc::default()).await;
    let app = App::start(allow_private()).await;
    let url = format!("{pages}/page");
    let response = app
        .client
        .post(format!("{}/api/tasks/3/links", app.base))
        .json(&json!({ "url": url }))
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let accepted: Value = response.json().await.expect("json");
    let link_id = accepted["data"]["id"].as_i64().expect("an id");
    assert_eq!(location, format!("/api/tasks/3/links/{link_id}"));
    assert_eq!(accepted["data"]["status"], "pending");
    assert_eq!(accepted["data"]["title"], Value::Null);
    assert_eq!(accepted["job"]["queue"], "crawler");
    let job_id = accepted["job"]["id"].as_str().expect("a job id").to_owned();

    let link = app.settled(&location).await;
    assert_eq!(link["id"], link_id);
    assert_eq!(link["status"], "fetched");
    assert_eq!(link["title"], "Quarterly & yearly plans");
    assert_eq!(link["error"], Value::Null);
    assert!(link["fetched_at"].is_string(), "{link}");
    assert_eq!(
        app.finished(Queue::Crawler, &job_id).await,
        (JobState::Completed, 1)
    );
    let (_, listed) = app.get("/api/tasks/3/links").await;
    let last = listed["data"].as_array().and_then(|l| l.last()).cloned();
    assert_eq!(last.map(|l| l["status"].clone()), Some(json!("fetched")));

    for missing in [
        format!("/api/tasks/3/links/{}", link_id + 1000),
        format!("/api/tasks/4/links/{link_id}"),
        "/api/tasks/3/links/x".to_owned(),
    ] {
        let (status, error) = app.get(&missing).await;
        assert_eq!(status, 404, "{missing}");
        assert_eq!(
            (&error["code"], &error["statusCode"]),
            (&json!("NOT_FOUND"), &json!(404))
        );
    }
    assert_eq!(
        app.counts(Queue::Notifications).await,
        QueueCounts::default(),
        "no webhook"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_to_a_private_target_fails_for_good_at_once() {
    let hits = Arc::new(AtomicU32::new(0));
    let pages = page_server(Arc::clone(&hits)).await;
    let app = App::start(Config::default()).await;
    let (status, accepted) = app
        .send(
            reqwest::Method::POST,
            "/api/tasks/3/links",
            json!({ "url": format!("{pages}/page") }),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let job_id = accepted["job"]["id"].as_str().expect("a job id").to_owned();
    let location = format!("/api/tasks/3/links/{}", accepted["data"]["id"]);
    let link = app.settled(&location).await;
    assert_eq!(link["status"], "failed");
    assert_eq!(link["error"], "the target address is not public");
    assert_eq!(
        app.finished(Queue::Crawler, &job_id).await,
        (JobState::Dead, 1),
        "no retries"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was sent");
    let (status, _) = app
        .send(
            reqwest::Method::POST,
            "/api/tasks/3/links",
            json!({ "url": "javascript:alert(1)" }),
        )
        .await;
    assert_eq!(status, 422);
}

macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(None).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let db = super::PostgresDb::create().await;
                super::$name(Some(db.url.clone())).await;
                db.drop_now().await;
            })*
        }
    };
}

on_both_databases!(
    audit_retention_deletes_only_entries_past_their_time,
    expired_uploads_delete_only_old_images_no_task_refers_to,
    a_writes_jobs_are_stored_with_it_then_queued_and_their_row_deleted,
    rows_left_behind_are_swept_only_once_due_and_only_into_a_store_that_keeps_them,
);

fn on(database: Option<String>, mut config: Config) -> Config {
    if let Some(url) = database {
        config.database.url = url;
    }
    config
}

/// Runs the clean-up job `kind` and waits until it completed.
async fn clean_up(app: &App, kind: &str) {
    let job = app::jobs::cleanup_jobs()
        .into_iter()
        .find(|job| job.kind == kind)
        .expect("a clean-up job");
    let id = app.jobs.enqueue(job).await.expect("enqueued").id;
    assert_eq!(
        app.finished(Queue::Cleanup, &id).await.0,
        JobState::Completed
    );
}

async fn audit_retention_deletes_only_entries_past_their_time(database: Option<String>) {
    let mut config = on(database, Config::default());
    config.jobs.audit_retention_days = 30;
    let app = App::start(config).await;
    let now = now_ms();
    let cutoff = now - 30 * DAY_MS;
    // More old entries than one batch deletes, and recent ones on both sides of nothing.
    let old = (0..2_600).map(|i| now - 31 * DAY_MS - i * 60_000);
    let recent = (0..40).map(|i| now - 29 * DAY_MS + i * 60_000);
    let events: Vec<(usize, NewEvent)> = old
        .chain(recent)
        .enumerate()
        .map(|(i, at)| {
            let mut event = NewEvent::about("retention-test", "update", "task", i);
            event.occurred_at = Some(at);
            (i, event)
        })
        .collect();
    let outcome = app.state.store.insert_events(&events, now).await;
    assert_eq!(outcome.inserted, events.len(), "{:?}", outcome.failed);
    let before = "SELECT COUNT(*) FROM events WHERE occurred_at < $1";
    let since = "SELECT COUNT(*) FROM events WHERE occurred_at >= $1";
    assert!(app.count(before, cutoff).await >= 2_600);
    let kept = app.count(since, cutoff).await;
    assert!(kept >= 40);

    clean_up(&app, "audit-retention").await;
    assert_eq!(
        app.count(before, cutoff).await,
        0,
        "every entry past 30 days is gone"
    );
    assert_eq!(
        app.count(since, cutoff).await,
        kept,
        "the others are all kept"
    );

    // With no retention, nothing is deleted.
    let old = NewEvent {
        occurred_at: Some(now - 3_650 * DAY_MS),
        ..NewEvent::about("retention-test", "update", "task", 1)
    };
    app.state.store.insert_events(&[(0, old)], now).await;
    app::jobs::register(&app.jobs, &app.state, 0, None);
    clean_up(&app, "audit-retention").await;
    assert_eq!(
        app.count(before, cutoff).await,
        1,
        "0 keeps entries forever"
    );
}

/// A `side`×`side` grey PNG, distinct per `shade`.
fn png(side: u32, shade: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    let pixels = vec![shade; (side * side) as usize];
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&pixels))
        .expect("encode");
    bytes
}

/// Creates a task with an image attached; the task's id and the image's key.
async fn task_with_image(app: &App, shade: u8) -> (i64, String) {
    let (status, task) = app
        .send(
            reqwest::Method::POST,
            "/api/tasks",
            json!({ "title": format!("image {shade}") }),
        )
        .await;
    assert_eq!(status, 201, "{task}");
    let id = task["id"].as_i64().expect("an id");
    let response = app
        .client
        .post(format!("{}/api/tasks/{id}/attachments", app.base))
        .header("content-type", "image/png")
        .body(png(8, shade))
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), StatusCode::CREATED);
    let attachment: Value = response.json().await.expect("json");
    let url = attachment["url"].as_str().expect("a url");
    (id, url.trim_start_matches("/images/").to_owned())
}

/// How many images are stored under `key` (0 or 1).
async fn stored(app: &App, key: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM images WHERE key = $1")
        .bind(key.to_owned())
        .fetch_one(app.state.store.database().pool())
        .await
        .expect("count")
}

async fn expired_uploads_delete_only_old_images_no_task_refers_to(database: Option<String>) {
    let app = App::start(on(database, Config::default())).await;
    let (orphaned, orphaned_key) = task_with_image(&app, 10).await;
    let (_, attached_key) = task_with_image(&app, 20).await;
    let (fresh, fresh_key) = task_with_image(&app, 30).await;
    for task in [orphaned, fresh] {
        let (status, _) = app
            .send(
                reqwest::Method::DELETE,
                &format!("/api/tasks/{task}"),
                Value::Null,
            )
            .await;
        assert_eq!(status, 204);
    }
    let pool = app.state.store.database().pool();
    for key in [&orphaned_key, &attached_key] {
        sqlx::query("UPDATE images SET created_at = $1 WHERE key = $2")
            .bind(now_ms() - 2 * DAY_MS)
            .bind(key.clone())
            .execute(pool)
            .await
            .expect("backdated");
    }
    let images = "SELECT COUNT(*) FROM images WHERE created_at < $1";
    let before = app.count(images, i64::MAX).await;

    clean_up(&app, "expired-uploads").await;
    assert_eq!(
        stored(&app, &orphaned_key).await,
        0,
        "old, and no task refers to it"
    );
    assert_eq!(stored(&app, &attached_key).await, 1, "a task refers to it");
    assert_eq!(
        stored(&app, &fresh_key).await,
        1,
        "stored less than a day ago"
    );
    assert_eq!(app.count(images, i64::MAX).await, before - 1);
}

/// What the webhook receiver saw: each delivery's event id header, body, and whether its
/// signature verified.
#[derive(Default)]
struct Received {
    deliveries: Mutex<Vec<(String, Value, bool)>>,
    /// Statuses to answer with, in order; `200` once they run out.
    answers: Mutex<VecDeque<u16>>,
}

async fn receive(State(seen): State<Arc<Received>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let signature = header(webhook::SIGNATURE_HEADER);
    let verified = webhook::verify(
        SECRET.as_bytes(),
        &signature,
        &body,
        now,
        Duration::from_secs(300),
    )
    .is_ok();
    let event = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut deliveries = seen.deliveries.lock().expect("lock");
    deliveries.push((header(webhook::EVENT_ID_HEADER), event, verified));
    let answer = seen
        .answers
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or(200);
    if !verified {
        return StatusCode::BAD_REQUEST;
    }
    StatusCode::from_u16(answer).unwrap_or(StatusCode::OK)
}

/// A webhook receiver on loopback; its URL.
async fn receiver(seen: Arc<Received>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("bound"));
    let app = Router::new().route("/hook", post(receive)).with_state(seen);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn app_with_webhook(seen: &Arc<Received>) -> App {
    let mut config = Config::default();
    config.jobs.webhook = Some(WebhookTarget {
        url: receiver(Arc::clone(seen)).await,
        secret: SECRET.to_owned(),
    });
    App::start(config).await
}

async fn delivered(seen: &Received, count: usize) -> Vec<(String, Value, bool)> {
    for _ in 0..400 {
        let deliveries = seen.deliveries.lock().expect("lock").clone();
        if deliveries.len() >= count {
            return deliveries;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {count} deliveries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_delivered_signed_to_the_webhook() {
    let seen = Arc::new(Received::default());
    let app = app_with_webhook(&seen).await;
    let (status, task) = app
        .send(
            reqwest::Method::POST,
            "/api/tasks",
            json!({ "title": "Ship the jobs" }),
        )
        .await;
    assert_eq!(status, 201);
    let queued =
        |counts: &QueueCounts| counts.waiting + counts.active + counts.delayed + counts.completed;
    let in_outbox = app.state.store.outbox_len().await.expect("outbox");
    let counts = app.counts(Queue::Notifications).await;
    assert!(
        in_outbox + queued(&counts) as i64 >= 1,
        "the job was stored before the answer: {counts:?}, {in_outbox} in the outbox"
    );
    let id = task["id"].as_i64().expect("an id");
    let path = format!("/api/tasks/{id}");
    let (status, _) = app
        .send(reqwest::Method::PATCH, &path, json!({ "status": "done" }))
        .await;
    assert_eq!(status, 200);
    let comment = json!({ "author_id": 1, "body": "Done and dusted" });
    let (status, _) = app
        .send(reqwest::Method::POST, &format!("{path}/comments"), comment)
        .await;
    assert_eq!(status, 201);
    let (status, _) = app.send(reqwest::Method::DELETE, &path, Value::Null).await;
    assert_eq!(status, 204);

    let deliveries = delivered(&seen, 4).await;
    let by_type = |kind: &str| {
        deliveries
            .iter()
            .find(|(_, event, _)| event["type"] == kind)
            .map(|(_, event, _)| event.clone())
            .unwrap_or_else(|| panic!("no {kind} delivered"))
    };
    assert_eq!(by_type("task.created")["data"]["title"], "Ship the jobs");
    assert_eq!(by_type("task.updated")["data"]["status"], "done");
    assert_eq!(
        by_type("comment.created")["data"]["body"],
        "Done and dusted"
    );
    assert_eq!(by_type("task.deleted")["data"], json!({ "id": id }));
    let mut ids: Vec<&str> = Vec::new();
    for (header, event, verified) in &deliveries {
        assert!(verified, "the signature verifies: {event}");
        assert_eq!(event["id"], header.as_str(), "the header names the event");
        assert!(event["occurred_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
        ids.push(header);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "one id per event");
    assert_eq!(deliveries.len(), 4, "each delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_retried_and_refused_ones_are_not() {
    let seen = Arc::new(Received::default());
    let app = app_with_webhook(&seen).await;
    let create = |title: &'static str| {
        app.send(
            reqwest::Method::POST,
            "/api/tasks",
            json!({ "title": title }),
        )
    };
    // Two failures, then delivered on the third attempt, the same event each time.
    seen.answers.lock().expect("lock").extend([500, 500]);
    assert_eq!(create("flaky receiver").await.0, 201);
    let deliveries = delivered(&seen, 3).await;
    assert!(deliveries.iter().all(|(id, _, _)| *id == deliveries[0].0));
    for _ in 0..200 {
        if app.counts(Queue::Notifications).await.completed == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let counts = app.counts(Queue::Notifications).await;
    assert_eq!(
        (counts.completed, counts.failed, counts.dead),
        (1, 2, 0),
        "{counts:?}"
    );

    // Failing every time: out of attempts, dead-lettered with the receiver's answer.
    seen.answers.lock().expect("lock").extend([500, 500, 500]);
    assert_eq!(create("down receiver").await.0, 201);
    // A refusal (4xx) is final at once.
    delivered(&seen, 6).await;
    seen.answers.lock().expect("lock").extend([410]);
    assert_eq!(create("gone receiver").await.0, 201);
    let mut dead = Vec::new();
    for _ in 0..400 {
        dead = app
            .jobs
            .store()
            .dead(Queue::Notifications, 10)
            .await
            .expect("dead");
        if dead.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(dead.len(), 2, "{dead:?}");
    let attempts = |title: &str| {
        dead.iter()
            .find(|job| job.payload["data"]["title"] == title)
            .map(|job| (job.attempts, job.last_error.clone().unwrap_or_default()))
            .unwrap_or_else(|| panic!("{title} not dead"))
    };
    let (tries, error) = attempts("down receiver");
    assert_eq!(tries, 3);
    assert!(error.contains("500"), "{error}");
    let (tries, error) = attempts("gone receiver");
    assert_eq!(tries, 1, "not retried");
    assert!(error.contains("410"), "{error}");
    assert_eq!(delivered(&seen, 7).await.len(), 7);
}

/// Waits until `check` holds, up to 10 s.
async fn eventually<F: Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never: {what}");
}

async fn a_writes_jobs_are_stored_with_it_then_queued_and_their_row_deleted(
    database: Option<String>,
) {
    let seen = Arc::new(Received::default());
    let mut config = on(database, Config::default());
    config.jobs.webhook = Some(WebhookTarget {
        url: receiver(Arc::clone(&seen)).await,
        secret: SECRET.to_owned(),
    });
    let app = App::start(config).await;
    let mut in_outbox_at_answer = Vec::new();
    for n in 0..20 {
        let body = json!({ "status": if n % 2 == 0 { "done" } else { "todo" } });
        let (status, _) = app.send(reqwest::Method::PATCH, "/api/tasks/3", body).await;
        assert_eq!(status, 200);
        in_outbox_at_answer.push(app.state.store.outbox_len().await.expect("outbox"));
    }
    // A write that fails stores nothing.
    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            "/api/tasks/999999",
            json!({ "status": "done" }),
        )
        .await;
    assert_eq!(status, 404);
    assert!(
        in_outbox_at_answer.iter().any(|rows| *rows > 0),
        "rows wait in the outbox until queued: {in_outbox_at_answer:?}"
    );
    let deliveries = delivered(&seen, 20).await;
    eventually("the outbox is emptied", || async {
        app.state.store.outbox_len().await.expect("outbox") == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deliveries_now = seen.deliveries.lock().expect("lock").len();
    assert_eq!(
        (deliveries.len(), deliveries_now),
        (20, 20),
        "each write's notification once"
    );
    let statuses: Vec<_> = deliveries
        .iter()
        .map(|(_, event, _)| event["data"]["status"].clone())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "done").count(),
        10,
        "{statuses:?}"
    );
}

/// A row holding `jobs` that a sweep may take `due_in` ms from now (negative: already due).
async fn put_row(app: &App, due_in: i64, jobs: &[origin::core::jobs::NewJob]) {
    sqlx::query("INSERT INTO job_outbox (due_at, jobs) VALUES ($1, $2)")
        .bind(now_ms() + due_in)
        .bind(serde_json::to_string(jobs).expect("json"))
        .execute(app.state.store.database().pool())
        .await
        .expect("a row");
}

async fn rows_left_behind_are_swept_only_once_due_and_only_into_a_store_that_keeps_them(
    database: Option<String>,
) {
    use origin::core::dependencies::redis::RedisTarget;
    use origin::core::jobs::{JobSettings, NewJob};

    let app = App::start(on(database, Config::default())).await;
    let store = &app.state.store;
    let job = |n: u32| NewJob::new(Queue::Cleanup, "left-behind", json!({ "n": n }));
    // Rows the instance's own relay will not sweep for a while: this test sweeps them itself,
    // as if later. The first is due in 5 s, the second in a minute.
    put_row(&app, 5_000, &[job(1), job(2)]).await;
    put_row(&app, 60_000, &[job(3)]).await;
    let later = now_ms() + 6_000;

    // Redis out: its jobs are refused, not buffered, and the row stays (leased for 10 s).
    let nowhere = RedisTarget::node("redis://127.0.0.1:1").expect("a target");
    let settings = JobSettings::default();
    let out = Jobs::on_redis(
        &nowhere,
        "outbox-test:",
        Duration::from_millis(200),
        settings.clone(),
    )
    .expect("jobs");
    assert!(store.sweep_outbox(later, 100, &out).await.is_err());
    assert_eq!(out.store().buffered(), 0, "nothing waits in memory");
    assert_eq!(store.outbox_len().await.expect("outbox"), 2);
    let kept = Jobs::in_memory(settings);
    assert_eq!(
        store.sweep_outbox(later, 100, &kept).await.expect("swept"),
        0,
        "the refused row is leased: no sweep takes it again before its lease is over"
    );

    // Its lease over, a store that keeps them gets its jobs; the row not yet due stays.
    let after_lease = later + 10_000;
    assert_eq!(
        store
            .sweep_outbox(after_lease, 100, &kept)
            .await
            .expect("swept"),
        1
    );
    assert_eq!(
        store
            .sweep_outbox(after_lease, 100, &kept)
            .await
            .expect("swept"),
        0
    );
    assert_eq!(store.outbox_len().await.expect("outbox"), 1);
    let counts = kept.store().counts(Queue::Cleanup).await.expect("counts");
    assert_eq!(counts.waiting, 2, "{counts:?}");

    // The instance's own relay sweeps every few seconds: the left row reaches its queue.
    put_row(&app, -1, &[job(4)]).await;
    eventually("the relay's sweep queues the row left behind", || async {
        let counts = app.counts(Queue::Cleanup).await;
        counts.waiting + counts.active + counts.delayed + counts.completed + counts.dead >= 1
    })
    .await;
}
