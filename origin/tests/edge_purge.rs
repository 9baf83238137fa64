//! With `EDGE_PURGE_URL` set, the origin's tag invalidations reach the edge's purge endpoint,
//! with the edge's token.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use origin::config::{ApplicationConfig, Config, EdgePurgeTarget};
use serde_json::{json, Value};
use tokio::net::TcpListener;

type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

async fn edge_double() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/__rampart/purge",
            axum::routing::post(
                |State(seen): State<Seen>, headers: HeaderMap, Json(body): Json<Value>| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    seen.lock().expect("lock").push((auth, body));
                    Json(json!({"purged_tags": []}))
                },
            ),
        )
        .with_state(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "http://{}/__rampart/purge",
        listener.local_addr().expect("address")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn writes_purge_the_edge_by_tag() {
    let (url, seen) = edge_double().await;
    let origin = common::start(Config {
        application: ApplicationConfig {
            edge_purge: Some(EdgePurgeTarget {
                url,
                token: Some("edge-token".to_owned()),
            }),
            ..ApplicationConfig::default()
        },
        ..Config::default()
    })
    .await;
    let client = reqwest::Client::new();
    let patched = client
        .patch(format!("{}/api/tasks/1", origin.base))
        .json(&json!({"title": "Renamed by the purge test"}))
        .send()
        .await
        .expect("origin reachable");
    assert_eq!(patched.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().expect("lock").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.lock().expect("lock").clone();
    assert!(!seen.is_empty(), "the edge was not told");
    let (auth, body) = &seen[0];
    assert_eq!(auth.as_deref(), Some("Bearer edge-token"));
    let tags: Vec<&str> = body["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tags.contains(&"task:1") && tags.contains(&"tasks"),
        "{tags:?}"
    );
}
