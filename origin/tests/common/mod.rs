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

/// The whole origin with `config`, running until the test ends; returns its base URL.
pub async fn start(config: Config) -> String {
    let (listener, base) = listen().await;
    tokio::spawn(origin::server::run(
        listener,
        config,
        std::future::pending(),
    ));
    base
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
