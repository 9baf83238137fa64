//! A stand-in for the edge's purge endpoint (`POST /__rampart/purge`) for tests: it records
//! each call's tags, can answer `500`, and can hold each request for a while.
// Each test binary includes this module and may use a subset of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;
use tokio::net::TcpListener;

/// A stand-in for the edge's purge endpoint: records each purge's tags, can answer `500`, and
/// can hold each request for a while.
#[derive(Clone, Default)]
pub struct Receiver {
    /// Each call's tags.
    pub calls: Arc<Mutex<Vec<Vec<String>>>>,
    pub failing: Arc<AtomicBool>,
    pub hold: Arc<Mutex<Duration>>,
    pub in_flight: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start() -> (Self, String) {
        let receiver = Receiver::default();
        let app = axum::Router::new()
            .route("/__rampart/purge", axum::routing::post(purge))
            .with_state(receiver.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!(
            "http://{}/__rampart/purge",
            listener.local_addr().expect("address")
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    pub fn tags(&self) -> Vec<String> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .flatten()
            .cloned()
            .collect()
    }

    pub fn calls(&self) -> usize {
        self.calls.lock().expect("lock").len()
    }
}

async fn purge(State(receiver): State<Receiver>, Json(body): Json<Value>) -> StatusCode {
    receiver.in_flight.fetch_add(1, Ordering::SeqCst);
    let hold = *receiver.hold.lock().expect("lock");
    tokio::time::sleep(hold).await;
    receiver.in_flight.fetch_sub(1, Ordering::SeqCst);
    let tags = body["tags"].as_array().into_iter().flatten();
    let tags = tags.map(|tag| tag.as_str().unwrap_or_default().to_owned());
    receiver.calls.lock().expect("lock").push(tags.collect());
    if receiver.failing.load(Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}
