//! What clients and operators see when something fails inside the application: a handler
//! that panics answers `500` with the standard error body and the process keeps serving; an
//! error's cause is logged with the request's id and never sent to the client; every line
//! logged while a request is served names its request id and trace, traces on or off.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::routing::get;
use axum::Router;
use common::serve_wrapped;
use origin::core::dependencies::database::DbError;
use origin::core::dependencies::outbound::OutboundError;
use origin::core::http::errors::ApiError;
use origin::core::observability;
use origin::core::observability::log_context::{Shape, WithRequest};
use serde_json::Value;
use tracing_subscriber::fmt::format::Format;
use tracing_subscriber::fmt::MakeWriter;

/// Every log line of this test binary, as JSON.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        tracing_subscriber::fmt()
            .json()
            .event_format(WithRequest::new(Format::default().json(), Shape::Json))
            .with_max_level(tracing::Level::WARN)
            .with_writer(logs.clone())
            .init();
        logs
    })
}

/// The log lines naming `request_id`.
fn lines_about(request_id: &str) -> Vec<Value> {
    let text = String::from_utf8(logs().0.lock().expect("log lock").clone()).expect("utf-8");
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["request_id"] == request_id)
        .collect()
}

async fn fetch(url: String) -> (u16, String, String) {
    let response = reqwest::get(url).await.expect("reachable");
    let id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let status = response.status().as_u16();
    (status, id, response.text().await.expect("body"))
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_process_goes_on() {
    logs();
    let app = Router::new()
        .route(
            "/api/boom",
            get(|| async {
                panic!("the handler broke at 10.9.8.7");
                #[allow(unreachable_code)]
                ""
            }),
        )
        .route("/api/fine", get(|| async { "fine" }));
    let base = serve_wrapped(app).await;
    let (status, id, body) = fetch(format!("{base}/api/boom")).await;
    assert_eq!(status, 500);
    let body: Value = serde_json::from_str(&body).expect("the standard error body");
    assert_eq!(body["code"], "INTERNAL_ERROR");
    assert_eq!(body["statusCode"], 500);
    assert!(!body.to_string().contains("10.9.8.7"), "{body}");
    let logged = lines_about(&id);
    assert!(
        logged.iter().any(|line| line["fields"]["cause"]
            .as_str()
            .is_some_and(|c| c.contains("the handler broke"))),
        "the panic is logged with the request id: {logged:?}"
    );
    let (status, _, body) = fetch(format!("{base}/api/fine")).await;
    assert_eq!((status, body.as_str()), (200, "fine"));
}

#[tokio::test]
async fn causes_are_logged_with_the_request_id_and_never_sent() {
    logs();
    let app = Router::new()
        .route(
            "/api/database",
            get(|| async {
                Err::<(), ApiError>(
                    DbError::Unavailable("connect to 10.9.8.7:5432 refused".into()).into(),
                )
            }),
        )
        .route(
            "/api/fetch",
            get(|| async {
                let error = OutboundError::Unreachable(
                    "error sending request for url (http://10.9.8.7/): tcp connect error".into(),
                );
                Err::<(), ApiError>(error.into())
            }),
        );
    let base = serve_wrapped(app).await;
    for (path, status, code) in [
        ("/api/database", 503, "DATABASE_UNAVAILABLE"),
        ("/api/fetch", 502, "UPSTREAM_ERROR"),
    ] {
        let (got, id, body) = fetch(format!("{base}{path}")).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(!body.contains("10.9.8.7"), "{path} sends internals: {body}");
        let body: Value = serde_json::from_str(&body).expect("the standard error body");
        assert_eq!(body["code"], code);
        let logged = lines_about(&id);
        assert!(
            logged
                .iter()
                .any(|line| line.to_string().contains("10.9.8.7")),
            "{path}: the cause is logged with request id {id}: {logged:?}"
        );
    }
}

#[tokio::test]
async fn every_line_logged_inside_a_request_names_it_and_its_trace() {
    logs();
    let app = Router::new().route(
        "/api/noisy",
        get(|| async {
            tracing::warn!("the handler noticed something");
            let task = tokio::spawn(observability::carried(async {
                tracing::warn!("a task working for the request noticed something");
            }));
            task.await.expect("the task ran");
            tracing::warn!("the handler noticed something");
            "done"
        }),
    );
    let base = serve_wrapped(app).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = reqwest::Client::new()
        .get(format!("{base}/api/noisy"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .send()
        .await
        .expect("reachable");
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-request-id"].to_str().expect("ascii");
    let logged = lines_about(id);
    let messages: Vec<&str> = logged
        .iter()
        .filter_map(|line| line["fields"]["message"].as_str())
        .collect();
    assert!(
        messages.contains(&"the handler noticed something")
            && messages.contains(&"a task working for the request noticed something"),
        "both lines name request {id}: {logged:?}"
    );
    assert!(
        logged.iter().all(|line| line["trace_id"] == trace),
        "{logged:?}"
    );
    tracing::warn!("a line outside any request");
    let text = String::from_utf8(logs().0.lock().expect("log lock").clone()).expect("utf-8");
    let outside = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["fields"]["message"] == "a line outside any request")
        .expect("logged");
    assert!(outside.get("request_id").is_none(), "{outside}");
}
