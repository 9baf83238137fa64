//! Traces and timings, end to end: the origin binary exporting OTLP/HTTP protobuf to a real
//! receiver in the test, which decodes it with OpenTelemetry's own message types.
//!
//! - A request with a W3C `traceparent` continues that trace: the origin's server span is the
//!   caller's child, and each database query is a client span under it.
//! - A write enqueues a job (a webhook delivery) that runs in a trace of its own, linked to the
//!   request's span; the link survives the trip through Redis.
//! - `Server-Timing` is sent to requests bearing the admin token, and to nobody else.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const UNSAMPLED_TRACE: &str = "5cf92f3577b34da6a3ce929d0e0e4737";
const ADMIN_TOKEN: &str = "trace-test-admin-token";

/// Every span the receiver was sent, with its service's name.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

async fn receive(State(received): State<Received>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut received = received.lock().expect("the span list");
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                received.push((service.clone(), span));
            }
        }
    }
    ""
}

/// An OTLP/HTTP receiver on a free port; returns its base URL and what it receives.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let base = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, received)
}

/// A sink for the webhook deliveries the writes enqueue.
async fn webhook_sink() -> String {
    let app = Router::new().route("/", post(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let base = format!("http://{}/", listener.local_addr().expect("bound"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// The value of `span`'s attribute `key`, as debug text ("" when absent).
fn attribute(span: &Span, key: &str) -> String {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
        .map(|value| match value {
            Value::StringValue(text) => text.clone(),
            Value::IntValue(number) => number.to_string(),
            other => format!("{other:?}"),
        })
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until `found` picks something out of the received spans.
async fn wait_for<T>(received: &Received, found: impl Fn(&[(String, Span)]) -> Option<T>) -> T {
    for _ in 0..100 {
        if let Some(value) = found(&received.lock().expect("the span list")) {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spans: Vec<String> = received
        .lock()
        .expect("the span list")
        .iter()
        .map(|(service, span)| {
            let ids = [&span.trace_id, &span.span_id, &span.parent_span_id].map(|id| hex(id));
            format!("{service} {:?} {ids:?}", span.name)
        })
        .collect();
    panic!("the spans expected never arrived; received: {spans:#?}");
}

async fn traced_origin() -> (tokio::process::Child, String, Received, tempfile::TempDir) {
    let (collector, received) = receiver().await;
    let sink = webhook_sink().await;
    let folder = tempfile::tempdir().expect("a folder");
    let database = format!("sqlite:{}/origin.db", folder.path().display());
    let prefix = common::unique_prefix("tracing");
    let (child, base) = common::spawn_with(
        &database,
        &prefix,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("WEBHOOK_URL", sink.as_str()),
            ("WEBHOOK_SECRET", "trace-test-secret"),
            ("ADMIN_TOKEN", ADMIN_TOKEN),
            ("RATE_LIMIT_ENABLED", "false"),
        ],
    )
    .await;
    (child, base, received, folder)
}

#[tokio::test]
async fn a_request_continues_the_callers_trace_with_a_span_per_query() {
    let (_origin, base, received, _folder) = traced_origin().await;
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    // A caller that did not sample its trace: the origin follows its decision.
    let unsampled = reqwest::Client::new()
        .get(format!("{base}/api/tasks?page=2&per_page=5"))
        .header(
            "traceparent",
            format!("00-{UNSAMPLED_TRACE}-{CALLER_SPAN}-00"),
        )
        .send()
        .await
        .expect("an answer");
    assert_eq!(unsampled.status(), 200);
    let response = reqwest::Client::new()
        .get(format!("{base}/api/tasks?page=1&per_page=5"))
        .header("traceparent", &traceparent)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"].to_str().expect("ascii");

    let (server, queries) = wait_for(&received, |spans| {
        let in_trace: Vec<&Span> = spans
            .iter()
            .map(|(_, span)| span)
            .filter(|span| hex(&span.trace_id) == TRACE_ID)
            .collect();
        let server = in_trace
            .iter()
            .find(|span| hex(&span.parent_span_id) == CALLER_SPAN)?;
        let queries: Vec<Span> = in_trace
            .iter()
            .filter(|span| span.parent_span_id == server.span_id)
            .filter(|span| attribute(span, "db.system.name").contains("sqlite"))
            .map(|span| (*span).clone())
            .collect();
        (!queries.is_empty()).then(|| ((*server).clone(), queries))
    })
    .await;
    assert_eq!(server.name, "GET /api/tasks", "named after the route");
    let exported = received.lock().expect("lock").clone();
    assert!(
        exported
            .iter()
            .all(|(_, span)| hex(&span.trace_id) != UNSAMPLED_TRACE),
        "an unsampled trace exports nothing"
    );
    assert_eq!(server.kind, 2, "a server span");
    assert_eq!(attribute(&server, "http.route"), "/api/tasks");
    assert_eq!(attribute(&server, "http.response.status_code"), "200");
    assert_eq!(attribute(&server, "request_id"), request_id);
    assert!(
        queries.iter().all(|q| q.name.contains("tasks")),
        "{:?}",
        queries.iter().map(|q| &q.name).collect::<Vec<_>>()
    );
    assert!(queries
        .iter()
        .all(|q| q.start_time_unix_nano >= server.start_time_unix_nano));
}

#[tokio::test]
async fn a_job_runs_in_its_own_trace_linked_to_the_request_that_enqueued_it() {
    let (_origin, base, received, _folder) = traced_origin().await;
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let created = reqwest::Client::new()
        .post(format!("{base}/api/tasks"))
        .header("traceparent", &traceparent)
        .json(&serde_json::json!({ "title": "traced", "description": "a write" }))
        .send()
        .await
        .expect("an answer");
    assert_eq!(created.status(), 201, "{:?}", created.text().await);

    let (server, job) = wait_for(&received, |spans| {
        let server = spans.iter().map(|(_, s)| s).find(|span| {
            hex(&span.trace_id) == TRACE_ID && hex(&span.parent_span_id) == CALLER_SPAN
        })?;
        let job = spans
            .iter()
            .map(|(_, s)| s)
            .find(|span| span.name == "notifications webhook")?;
        Some((server.clone(), job.clone()))
    })
    .await;
    assert_ne!(hex(&job.trace_id), TRACE_ID, "a run is a trace of its own");
    let link = job
        .links
        .first()
        .expect("the run links to the enqueuing span");
    assert_eq!(hex(&link.trace_id), TRACE_ID);
    assert_eq!(link.span_id, server.span_id, "linked to the request's span");
}

#[tokio::test]
async fn server_timing_is_for_operators_only() {
    let (_origin, base, _received, _folder) = traced_origin().await;
    let client = reqwest::Client::new();
    let public = client
        .get(format!("{base}/api/tasks/1"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(public.status(), 200);
    assert!(public.headers().get("server-timing").is_none());

    let operator = client
        .get(format!("{base}/api/tasks/1"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("an answer");
    let timing = operator
        .headers()
        .get("server-timing")
        .expect("Server-Timing for the admin token")
        .to_str()
        .expect("text")
        .to_owned();
    for part in ["app;dur=", "db;dur=", "total;dur="] {
        assert!(timing.contains(part), "{timing}");
    }
    let wrong = client
        .get(format!("{base}/api/tasks/1"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .expect("an answer");
    assert!(wrong.headers().get("server-timing").is_none());
}
