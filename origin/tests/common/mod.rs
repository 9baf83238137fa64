//! Helpers shared by the origin's integration tests: servers on free loopback ports, and what
//! the tests read from responses.
// Each test binary compiles this module and uses a subset of it.
#![allow(dead_code)]

use axum::Router;
use origin::config::{Config, DemoData};
use origin::core::stack::Core;
use tokio::net::TcpListener;

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let base = format!("http://{}", listener.local_addr().expect("bound"));
    (listener, base)
}

/// An origin running until the test ends, on its own SQLite file unless the config names a
/// database.
pub struct TestOrigin {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The folder of the SQLite file, removed when the test ends.
    _folder: Option<tempfile::TempDir>,
}

/// `config` for tests: small demo data, no warming unless paths are given, no rate limits
/// unless budgets other than the defaults are given (tests send many requests from one
/// address), and (unless set) a fresh SQLite file in `folder`.
pub fn test_config(mut config: Config, folder: &tempfile::TempDir) -> Config {
    let defaults = Config::default();
    if config.database.url == defaults.database.url {
        config.database.url = format!("sqlite:{}/origin.db", folder.path().display());
    }
    config.database.demo_data = DemoData::Small;
    if config.cache.warm_paths == defaults.cache.warm_paths {
        config.cache.warm_paths.clear();
    }
    if config.resilience.rate_limits == defaults.resilience.rate_limits {
        config.resilience.rate_limits = None;
    }
    config
}

/// The whole origin with `config` (see [`test_config`]), running until the test ends.
pub async fn start(config: Config) -> TestOrigin {
    let folder = tempfile::tempdir().expect("temporary folder");
    let config = test_config(config, &folder);
    let (listener, base) = listen().await;
    tokio::spawn(async move {
        if let Err(error) = origin::server::run(listener, config, std::future::pending()).await {
            panic!("origin failed: {error}");
        }
    });
    TestOrigin {
        base,
        _folder: Some(folder),
    }
}

/// `app` wrapped in the origin core with the default configuration (no rate limits); returns
/// its base URL.
pub async fn serve_wrapped(app: Router) -> String {
    let mut config = Config::default();
    config.resilience.rate_limits = None;
    serve_wrapped_with(app, &config).await
}

/// `app` wrapped in the origin core configured by `config`; returns its base URL.
pub async fn serve_wrapped_with(app: Router, config: &Config) -> String {
    let (listener, base) = listen().await;
    let router = Core::from_config(config).wrap(app);
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

/// A loopback port that was free a moment ago (the origin binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// The real origin binary on `database_url`, with Redis keys under `prefix` and `env` on top;
/// returns the process and its base URL once it answers.
pub async fn spawn_with(
    database_url: &str,
    prefix: &str,
    env: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    let port = free_port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_origin"))
        .env("ORIGIN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", database_url)
        .env("DEMO_DATA", "small")
        .env("CACHE_WARM_PATHS", "")
        .env("REDIS_URL", redis_url())
        .env("REDIS_KEY_PREFIX", prefix)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the origin binary");
    let base = format!("http://127.0.0.1:{port}");
    wait_until_live(&base).await;
    (child, base)
}

/// Waits (up to 15 s) until the origin process at `base` answers `/health/live`.
pub async fn wait_until_live(base: &str) {
    for _ in 0..300 {
        if reqwest::get(format!("{base}/health/live")).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("origin process on {base} did not start");
}

/// The Redis the tests use (`REDIS_URL`, default `redis://127.0.0.1:6379`).
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A Redis key prefix no other test run shares.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("rampart-test:{test}:{}:{nanos}:", std::process::id())
}

/// A Redis server of the test's own, on a free port, removed when dropped.
pub struct OwnRedis {
    child: tokio::process::Child,
    /// `redis://127.0.0.1:<port>`.
    pub url: String,
}

impl OwnRedis {
    /// Starts it and waits until it accepts connections.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free port");
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (the set-up installs it)");
        let url = format!("redis://127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self { child, url };
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start on {port}");
    }

    /// Sends it `signal` (`-STOP`, `-CONT`).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

/// The `Cache-Status` header, or `""`.
pub fn cache_status(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The text of `GET <base>/metrics`.
pub async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .expect("reachable")
        .text()
        .await
        .expect("metrics body")
}

/// The PostgreSQL server tests create their throwaway databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database that exists for one test, dropped by [`PostgresDb::drop_now`] (and, if a test
/// panicked first, by the next run, which drops databases of processes that are gone).
pub struct PostgresDb {
    /// Its URL.
    pub url: String,
    name: String,
}

async fn admin() -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .unwrap_or_else(|error| {
            panic!(
                "PostgreSQL is required at {} (TEST_POSTGRES_URL): {error}",
                postgres_admin_url()
            )
        })
}

/// Drops throwaway databases whose test process no longer runs.
async fn drop_orphans(connection: &mut sqlx::PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'rampart_t_%'")
            .fetch_all(&mut *connection)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name.split('_').nth(2).unwrap_or_default();
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut *connection)
                .await;
        }
    }
}

impl PostgresDb {
    /// A new empty database.
    pub async fn create() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let mut connection = admin().await;
        drop_orphans(&mut connection).await;
        let name = format!(
            "rampart_t_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .expect("create a throwaway database");
        let base = postgres_admin_url();
        let server = base.rsplit_once('/').map_or(base.as_str(), |(s, _)| s);
        Self {
            url: format!("{server}/{name}"),
            name,
        }
    }

    /// Drops the database, closing its connections.
    pub async fn drop_now(self) {
        let mut connection = admin().await;
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&mut connection)
            .await;
    }
}

/// `/api/slow` sleeps, then answers `no-store` (so that every request reaches it).
pub fn slow_app(sleep: std::time::Duration) -> Router {
    Router::new().route(
        "/api/slow",
        axum::routing::get(move || async move {
            tokio::time::sleep(sleep).await;
            axum::http::Response::builder()
                .header("cache-control", "no-store")
                .body(axum::body::Body::from("done"))
                .expect("response")
        }),
    )
}

/// The default configuration with `limits` on admission and no rate limits.
pub fn admission_config(limits: origin::core::layers::admission::AdmissionLimits) -> Config {
    Config {
        resilience: origin::config::ResilienceConfig {
            rate_limits: None,
            admission: limits,
            ..Default::default()
        },
        ..Config::default()
    }
}

/// The title of task `id` as `base` serves it.
pub async fn task_title(base: &str, id: u32) -> String {
    let task: serde_json::Value = reqwest::get(format!("{base}/api/tasks/{id}"))
        .await
        .expect("reachable")
        .json()
        .await
        .expect("json");
    task["title"].as_str().expect("a title").to_owned()
}

/// The report on dependency `name` in `base`'s `/health/ready` (`Null` when absent).
pub async fn readiness_of(base: &str, name: &str) -> serde_json::Value {
    let ready: serde_json::Value = reqwest::get(format!("{base}/health/ready"))
        .await
        .expect("reachable")
        .json()
        .await
        .expect("json");
    let dependencies = ready["dependencies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    dependencies
        .into_iter()
        .find(|dependency| dependency["name"] == name)
        .unwrap_or(serde_json::Value::Null)
}
