//! One trace from the edge to the database: the Worker in workerd exports its span as OTLP/HTTP
//! JSON, the origin (in this process, its telemetry installed with an OTLP endpoint) exports
//! its server span and the database's child spans as OTLP/HTTP protobuf, and a real OTLP
//! receiver in the test decodes both with `opentelemetry-proto` and checks that they form one
//! trace: edge → origin → database.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{header, HeaderMap};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use origin::core::observability::telemetry::{self, LogFormat};
use prost::Message;
use rampart_tests::{Edge, Origin};

const GIVEN_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const GIVEN_PARENT: &str = "00f067aa0ba902b7";
const MALFORMED_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// A span the receiver got, with the service that sent it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    span: Span,
}

type Spans = Arc<Mutex<Vec<Received>>>;

/// An OTLP/HTTP receiver: `POST /v1/traces` in protobuf or JSON.
async fn receiver(listener: std::net::TcpListener) -> Spans {
    let spans: Spans = Arc::default();
    let sink = Arc::clone(&spans);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sink = Arc::clone(&sink);
            async move { accept(&sink, &headers, &body) }
        }),
    );
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    tokio::spawn(async move { axum::serve(listener, app).await });
    spans
}

fn accept(sink: &Spans, headers: &HeaderMap, body: &[u8]) -> axum::http::StatusCode {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    let decoded = if json {
        serde_json::from_slice::<ExportTraceServiceRequest>(body).map_err(|e| e.to_string())
    } else {
        ExportTraceServiceRequest::decode(body).map_err(|e| e.to_string())
    };
    let Ok(request) = decoded.inspect_err(|error| eprintln!("undecodable export: {error}")) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    let mut spans = sink.lock().expect("not poisoned");
    for resource in request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .and_then(|r| string_attribute(&r.attributes, "service.name"))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                let service = service.clone();
                spans.push(Received { service, span });
            }
        }
    }
    axum::http::StatusCode::OK
}

fn string_attribute(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(text) => Some(text.clone()),
            Value::IntValue(number) => Some(number.to_string()),
            Value::DoubleValue(number) => Some(number.to_string()),
            _ => None,
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The edge's span of the request for `path`, once it arrived.
async fn edge_span(spans: &Spans, path: &str) -> Span {
    wait_for(spans, |all| {
        all.iter()
            .find(|r| {
                r.service == "rampart-edge"
                    && string_attribute(&r.span.attributes, "url.path").as_deref() == Some(path)
            })
            .map(|r| r.span.clone())
    })
    .await
    .unwrap_or_else(|| panic!("no edge span for {path}: {:#?}", snapshot(spans)))
}

/// The origin's server span whose parent is `parent`.
async fn origin_span(spans: &Spans, parent: &Span) -> Span {
    wait_for(spans, |all| {
        all.iter()
            .find(|r| r.service == "rampart-origin" && r.span.parent_span_id == parent.span_id)
            .map(|r| r.span.clone())
    })
    .await
    .unwrap_or_else(|| {
        let id = hex(&parent.span_id);
        panic!(
            "no origin span under the edge's {id}: {:#?}",
            snapshot(spans)
        )
    })
}

/// A database span (one with `db.*` attributes) under `server`, in its trace.
async fn database_span(spans: &Spans, server: &Span) -> Option<Span> {
    wait_for(spans, |all| {
        all.iter()
            .filter(|r| r.span.trace_id == server.trace_id)
            .filter(|r| r.span.attributes.iter().any(|a| a.key.starts_with("db.")))
            .find(|r| descends_from(all, &r.span, &server.span_id))
            .map(|r| r.span.clone())
    })
    .await
}

/// Whether `span`'s chain of parents, within the received spans, reaches `ancestor`.
fn descends_from(all: &[Received], span: &Span, ancestor: &[u8]) -> bool {
    let mut parent = span.parent_span_id.clone();
    for _ in 0..32 {
        if parent == ancestor {
            return true;
        }
        let Some(next) = all.iter().find(|r| r.span.span_id == parent) else {
            return false;
        };
        parent = next.span.parent_span_id.clone();
    }
    false
}

async fn wait_for<T>(spans: &Spans, find: impl Fn(&[Received]) -> Option<T>) -> Option<T> {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = find(&spans.lock().expect("not poisoned")) {
            return Some(found);
        }
        if Instant::now() > until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn snapshot(spans: &Spans) -> Vec<(String, String, String, String)> {
    let all = spans.lock().expect("not poisoned");
    all.iter()
        .map(|r| {
            let s = &r.span;
            let ids = format!("{}/{}", hex(&s.trace_id), hex(&s.span_id));
            (
                r.service.clone(),
                s.name.clone(),
                ids,
                hex(&s.parent_span_id),
            )
        })
        .collect()
}

async fn get(edge: &Edge, path: &str, traceparent: Option<&str>) {
    let mut request = rampart_tests::client().get(format!("{}{path}", edge.url));
    if let Some(value) = traceparent {
        request = request.header("traceparent", value);
    }
    let response = request.send().await.expect("edge reachable");
    assert_eq!(response.status(), 200, "GET {path}");
}

#[test]
fn one_trace_runs_from_the_edge_through_the_origin_to_the_database() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    // The origin's exporter reads the standard variables; this test binary is its own process.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    std::env::remove_var("OTEL_SERVICE_NAME");
    let telemetry = telemetry::init(LogFormat::Pretty).expect("telemetry installed");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(scenarios(listener, &endpoint));
    drop(runtime);
    telemetry.shutdown();
}

async fn scenarios(listener: std::net::TcpListener, endpoint: &str) {
    let spans = receiver(listener).await;
    let origin = Origin::start().await;
    let vars = [
        ("TRACE_SAMPLE_RATE", "1"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
    ];
    let edge = Edge::start_with_vars(&origin.url, &vars).await;
    a_new_trace_reaches_the_database(&spans, &edge).await;
    a_malformed_traceparent_starts_a_fresh_trace(&spans, &edge).await;
    a_sampled_traceparent_is_continued(&spans, &edge).await;
}

async fn a_new_trace_reaches_the_database(spans: &Spans, edge: &Edge) {
    get(edge, "/api/tasks/1", None).await;
    let edge_span = edge_span(spans, "/api/tasks/1").await;
    assert!(edge_span.parent_span_id.is_empty(), "a root span");
    assert_eq!(edge_span.kind, 2, "SPAN_KIND_SERVER");
    assert!(edge_span.end_time_unix_nano >= edge_span.start_time_unix_nano);
    let attribute = |key: &str| string_attribute(&edge_span.attributes, key);
    assert_eq!(attribute("http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        attribute("http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(
        attribute("rampart.cache.outcome").is_some(),
        "the cache outcome"
    );
    assert!(attribute("rampart.cache.key").is_some(), "the cache key");
    assert!(
        attribute("rampart.origin.duration_ms").is_some(),
        "the origin's time"
    );
    let server = origin_span(spans, &edge_span).await;
    assert_eq!(server.trace_id, edge_span.trace_id, "one trace");
    assert_eq!(server.kind, 2, "the origin's server span");
    let database = database_span(spans, &server).await;
    let database = database.unwrap_or_else(|| {
        panic!(
            "no database span under the origin's server span: {:#?}",
            snapshot(spans)
        )
    });
    assert_eq!(
        database.trace_id, edge_span.trace_id,
        "the database in the same trace"
    );
}

async fn a_malformed_traceparent_starts_a_fresh_trace(spans: &Spans, edge: &Edge) {
    let malformed = format!("00-{MALFORMED_TRACE}-{GIVEN_PARENT}-0x");
    get(edge, "/api/tasks/2", Some(&malformed)).await;
    let edge_span = edge_span(spans, "/api/tasks/2").await;
    assert!(
        edge_span.parent_span_id.is_empty(),
        "no parent: a fresh trace"
    );
    assert_ne!(hex(&edge_span.trace_id), MALFORMED_TRACE);
    assert_eq!(edge_span.trace_id.len(), 16);
    let server = origin_span(spans, &edge_span).await;
    assert_eq!(server.trace_id, edge_span.trace_id);
}

async fn a_sampled_traceparent_is_continued(spans: &Spans, edge: &Edge) {
    let given = format!("00-{GIVEN_TRACE}-{GIVEN_PARENT}-01");
    get(edge, "/api/tasks/3", Some(&given)).await;
    let edge_span = edge_span(spans, "/api/tasks/3").await;
    assert_eq!(hex(&edge_span.trace_id), GIVEN_TRACE);
    assert_eq!(hex(&edge_span.parent_span_id), GIVEN_PARENT);
    let server = origin_span(spans, &edge_span).await;
    assert_eq!(hex(&server.trace_id), GIVEN_TRACE);
}
