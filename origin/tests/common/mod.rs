//! Helpers shared by the origin's integration tests: servers on free loopback ports, and what
//! the tests read from responses.
// Each test binary compiles this module and uses a subset of it.
#![allow(dead_code)]

use axum::Router;
use origin::config::Config;
use origin::server::Core;
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

/// `config` for tests: small demo data, no warming, and (unless set) a fresh SQLite file in
/// `folder`.
pub fn test_config(mut config: Config, folder: &tempfile::TempDir) -> Config {
    if config.database_url == origin::config::DEFAULT_DATABASE_URL {
        config.database_url = format!("sqlite:{}/origin.db", folder.path().display());
    }
    config.demo_data = origin::config::DemoData::Small;
    config.cache_warm_paths.clear();
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

/// `app` wrapped in the origin core with the default configuration; returns its base URL.
pub async fn serve_wrapped(app: Router) -> String {
    let (listener, base) = listen().await;
    let router = Core::from_config(&Config::default()).wrap(app);
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
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
