//! Failures of dependencies, for real: PostgreSQL cut off behind a TCP proxy the test controls
//! (cached reads go on, stale copies stand in, the database breaker opens and recovers), and
//! link previews fetched from real HTTP servers that answer, fail, or sit on private addresses.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::{cache_status, start, PostgresDb};
use origin::config::{CacheConfig, Config, DatabaseConfig, JobsConfig, ResilienceConfig};
use origin::core::dependencies::breaker::BreakerSettings;
use origin::core::dependencies::outbound::OutboundSettings;
use origin::core::dependencies::retry::RetryPolicy;
use serde_json::{json, Value};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy to `target` that can be cut: while down, open connections are closed and new
/// ones are closed on arrival, as when the database host crashes.
struct Proxy {
    port: u16,
    up: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("bound").port();
        let (up, watcher) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut watcher = watcher.clone();
                if !*watcher.borrow() {
                    continue; // dropped: the connection is closed at once
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = watcher.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { port, up }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        factor: 2.0,
    }
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn database_breaker(base: &str) -> String {
    let report: Value = reqwest::get(format!("{base}/health/circuit-breakers"))
        .await
        .expect("reachable")
        .json()
        .await
        .expect("json");
    report["circuitBreakers"]
        .as_array()
        .and_then(|all| all.iter().find(|b| b["name"] == "database"))
        .map(|b| b["state"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_down_leaves_cached_reads_served_and_the_breaker_recovers() {
    let db = PostgresDb::create().await;
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let name = db
        .url
        .rsplit_once('/')
        .map(|(_, name)| name)
        .unwrap_or_default();
    let origin = start(Config {
        database: DatabaseConfig {
            url: format!("postgres://postgres@127.0.0.1:{}/{name}", proxy.port),
            query_timeout: Duration::from_secs(1),
            ..DatabaseConfig::default()
        },
        cache: CacheConfig {
            ttl: Some(Duration::from_secs(1)),
            stale_while_revalidate: Duration::ZERO,
            ..CacheConfig::default()
        },
        resilience: ResilienceConfig {
            retry: quick_retries(),
            breakers: BreakerSettings {
                failure_threshold: 4,
                reset_timeout: Duration::from_millis(500),
                ..BreakerSettings::default()
            },
            ..ResilienceConfig::default()
        },
        ..Config::default()
    })
    .await;
    let base = origin.base.clone();
    let get = |path: &str| reqwest::get(format!("{base}{path}"));
    assert_eq!(get("/api/tasks/1").await.expect("up").status(), 200);
    assert_eq!(get("/api/tasks/2").await.expect("up").status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    proxy.set_up(false);
    let stale = get("/api/tasks/1").await.expect("reachable");
    assert_eq!(
        stale.status(),
        200,
        "the expired copy stands in for the failure"
    );
    assert_eq!(
        cache_status(&stale),
        "rampart-origin; fwd=stale; detail=stale-if-error"
    );
    let (status, ready) = json_of(get("/health/ready").await.expect("reachable")).await;
    assert_eq!(status, 503, "not ready without the database: {ready}");
    let (status, error) = json_of(get("/api/tasks/3").await.expect("reachable")).await;
    assert_eq!(status, 503, "nothing cached for task 3: {error}");
    assert_eq!(error["code"], "DATABASE_UNAVAILABLE");
    let mut error = error;
    for id in 4..12 {
        (_, error) = json_of(get(&format!("/api/tasks/{id}")).await.expect("reachable")).await;
        if error["metadata"]["circuit"] == "open" {
            break;
        }
    }
    assert_eq!(
        (&error["code"], &error["metadata"]["circuit"]),
        (&"DATABASE_UNAVAILABLE".into(), &"open".into()),
        "repeated outages open the breaker: {error}"
    );
    assert_eq!(database_breaker(&base).await, "OPEN");
    let open_read = get("/api/tasks/2").await.expect("reachable");
    assert_eq!(
        (
            open_read.status().as_u16(),
            cache_status(&open_read).contains("stale-if-error")
        ),
        (200, true),
        "an open breaker still lets stale copies through"
    );

    proxy.set_up(true);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut state = String::new();
    for id in 20..40 {
        assert_eq!(
            get(&format!("/api/tasks/{id}")).await.expect("up").status(),
            200
        );
        state = database_breaker(&base).await;
        if state == "CLOSED" {
            break;
        }
    }
    assert_eq!(
        state, "CLOSED",
        "successful trial queries close the breaker"
    );
    assert_eq!(get("/health/ready").await.expect("up").status(), 200);
    db.drop_now().await;
}

/// A page server on loopback: `/page` has a title, `/broken` always answers 503 (counted).
async fn page_server(broken_hits: Arc<AtomicU32>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("bound"));
    let app = Router::new()
        .route(
            "/page",
            get(|| async {
                axum::response::Html(
                    "<html><head><title>Release notes &amp; plans</title></head></html>",
                )
            }),
        )
        .route(
            "/broken",
            get(move || {
                broken_hits.fetch_add(1, Ordering::SeqCst);
                async { axum::http::StatusCode::SERVICE_UNAVAILABLE }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// Posts `url` as a link of task 1: `202` with the link pending and its `Location`.
async fn add_link(client: &reqwest::Client, base: &str, url: &str) -> String {
    let response = client
        .post(format!("{base}/api/tasks/1/links"))
        .json(&json!({ "url": url }))
        .send()
        .await
        .expect("up");
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 202, "{url}: {body}");
    assert_eq!(body["data"]["status"], "pending", "{body}");
    assert_eq!(body["job"]["queue"], "crawler", "{body}");
    location
}

/// Follows a link's `Location` until the crawler is done with it; the link.
async fn settled(client: &reqwest::Client, base: &str, location: &str) -> Value {
    for _ in 0..400 {
        let (status, body) = json_of(
            client
                .get(format!("{base}{location}"))
                .send()
                .await
                .expect("up"),
        )
        .await;
        assert_eq!(status, 200, "{location}: {body}");
        if body["data"]["status"] != "pending" {
            return body["data"].clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{location} is still pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_previews_go_through_retries_and_the_outbound_breaker() {
    let hits = Arc::new(AtomicU32::new(0));
    let pages = page_server(Arc::clone(&hits)).await;
    let mut jobs = JobsConfig::default();
    // Three attempts a few milliseconds apart: the breaker opens during the second.
    jobs.settings.retry = RetryPolicy {
        attempts: 3,
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(40),
        factor: 2.0,
    };
    let origin = start(Config {
        resilience: ResilienceConfig {
            outbound: OutboundSettings {
                allow_private: true,
                ..OutboundSettings::default()
            },
            retry: quick_retries(),
            breakers: BreakerSettings {
                failure_threshold: 4,
                ..BreakerSettings::default()
            },
            ..ResilienceConfig::default()
        },
        jobs,
        ..Config::default()
    })
    .await;
    let client = reqwest::Client::new();
    let base = origin.base.as_str();
    let location = add_link(&client, base, &format!("{pages}/page")).await;
    let link = settled(&client, base, &location).await;
    assert_eq!(
        (&link["status"], &link["title"]),
        (&json!("fetched"), &json!("Release notes & plans"))
    );
    let listed: Value = client
        .get(format!("{base}/api/tasks/1/links"))
        .send()
        .await
        .expect("up")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["data"][0]["url"], format!("{pages}/page"));
    assert_eq!(
        listed["data"][0]["status"], "fetched",
        "the list was invalidated"
    );

    // Each attempt of the job retries the GET once; the second attempt's failures open the
    // breaker, and the last attempt, refused by it, gives up.
    let location = add_link(&client, base, &format!("{pages}/broken")).await;
    let link = settled(&client, base, &location).await;
    assert_eq!(link["status"], "failed", "{link}");
    assert_eq!(link["error"], "outbound requests are failing: circuit open");
    assert_eq!(link["title"], Value::Null);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        4,
        "two attempts of two GETs each; an open breaker sends nothing"
    );
    let (status, _) = json_of(
        client
            .post(format!("{base}/api/tasks/1/links"))
            .json(&json!({ "url": "ftp://example.com/" }))
            .send()
            .await
            .expect("up"),
    )
    .await;
    assert_eq!(status, 422, "only http(s) URLs are taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_previews_refuse_private_targets_by_default() {
    let hits = Arc::new(AtomicU32::new(0));
    let pages = page_server(hits).await;
    let origin = start(Config::default()).await;
    let client = reqwest::Client::new();
    for url in [
        format!("{pages}/page"),
        "http://localhost:9/".to_owned(),
        "http://[::1]/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        let location = add_link(&client, &origin.base, &url).await;
        let link = settled(&client, &origin.base, &location).await;
        assert_eq!(link["status"], "failed", "{url} is refused: {link}");
        assert_eq!(link["error"], "the target address is not public", "{url}");
    }
    let unknown = client
        .post(format!("{}/api/tasks/999999/links", origin.base))
        .json(&json!({ "url": "https://example.com/" }))
        .send()
        .await
        .expect("up");
    assert_eq!(unknown.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_server_terminates_is_an_outage_not_a_query_error() {
    use origin::core::dependencies::database::{Database, DbError, DbSettings};
    use origin::core::observability::metrics::Metrics;

    let db = PostgresDb::create().await;
    let settings = DbSettings {
        url: db.url.clone(),
        pool_size: 2,
        query_timeout: Duration::from_secs(5),
    };
    let database = Database::connect(&settings, Metrics::default().database())
        .await
        .expect("connects");
    let mut doomed = database.acquire().await.expect("a connection");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *doomed)
        .await
        .expect("its pid");
    let mut other = database.acquire().await.expect("another connection");
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut *other)
        .await
        .expect("terminated");

    let error = sqlx::query("SELECT 1")
        .execute(&mut *doomed)
        .await
        .expect_err("the session is gone");
    let error = DbError::from(error);
    assert!(
        error.is_outage(),
        "{error:?}: a terminated session is the database out (503), not a bad query (500)"
    );
    drop((doomed, other));
    db.drop_now().await;
}
