//! The export of the origin's server spans over OTLP/HTTP (protobuf), in batches, on a thread
//! of its own.
//!
//! Every other span goes through the OpenTelemetry SDK's batch exporter. The server span is
//! the one every request makes, a cached hit included, and the SDK's per-span work (a span
//! object with its own attribute list, then a second conversion into OTLP messages on export)
//! cost a traced hit a quarter of its throughput. Here the request's thread writes a finished
//! span straight into OTLP protobuf at the end of a queue of bytes, and the export thread
//! wraps what is queued into one OTLP request when a batch is full or the delay has passed.
//!
//! It reads the same settings as the SDK's exporter: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), `OTEL_EXPORTER_OTLP_HEADERS` (or `…_TRACES_HEADERS`),
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE` and
//! `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, and it sends the SDK's resource (`OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`). When the queue is full, new spans are dropped and counted.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::encoding::encoded_len_varint;
use prost::Message as _;

/// Why the export could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Neither `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` nor `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT is not set")]
    NoEndpoint,
    /// The HTTP client or the export thread could not be made.
    #[error("span export: {0}")]
    Start(String),
}

/// One finished server span, as its request still holds it.
#[derive(Debug)]
pub struct Finished<'a> {
    /// Its trace, span and parent ids (the parent `INVALID` for a root span).
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: SpanId,
    /// Whether the parent came from another process (the caller's `traceparent`).
    pub remote_parent: bool,
    /// The W3C `tracestate` it carries on, as given.
    pub trace_state: String,
    pub start: SystemTime,
    pub end: SystemTime,
    pub method: &'a str,
    pub path: &'a str,
    pub route: Option<&'a str>,
    pub status: u16,
    pub request_id: Option<&'a str>,
}

/// Where and how spans are sent.
#[derive(Debug, Clone)]
pub struct Settings {
    url: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
    delay: Duration,
    queue: usize,
    batch: usize,
    resource: Vec<(String, String)>,
}

impl Settings {
    /// The settings the environment gives, as the OpenTelemetry SDK reads them; `resource` is
    /// the SDK's resource, as `(key, value)` pairs.
    pub fn from_env(resource: Vec<(String, String)>) -> Result<Self, ExportError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let url = match var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(url) => url,
            None => {
                let base = var("OTEL_EXPORTER_OTLP_ENDPOINT").ok_or(ExportError::NoEndpoint)?;
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
        };
        let headers = var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS"))
            .map(|list| parse_headers(&list))
            .unwrap_or_default();
        let millis = |name: &str, default: u64| {
            var(name)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        let timeout = millis("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", 0);
        let timeout = if timeout > 0 {
            timeout
        } else {
            millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)
        };
        let queue = millis("OTEL_BSP_MAX_QUEUE_SIZE", 2048).max(1) as usize;
        Ok(Self {
            url,
            headers,
            timeout: Duration::from_millis(timeout),
            delay: Duration::from_millis(millis("OTEL_BSP_SCHEDULE_DELAY", 5000)),
            queue,
            batch: (millis("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512).max(1) as usize).min(queue),
            resource,
        })
    }
}

/// `key=value` pairs separated by commas, values URL-encoded, as OTLP's headers variable has them.
fn parse_headers(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .filter_map(|pair| url::form_urlencoded::parse(pair.trim().as_bytes()).next())
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .filter(|(key, _)| !key.is_empty())
        .collect()
}

/// What the request path and the export thread share.
#[derive(Debug)]
struct Shared {
    buffer: Mutex<Buffer>,
    wake: Condvar,
    settings: Settings,
}

/// The spans queued so far, already encoded: each an OTLP `ScopeSpans.spans` field.
#[derive(Debug, Default)]
struct Buffer {
    encoded: Vec<u8>,
    spans: usize,
    dropped: u64,
    stopping: bool,
}

thread_local! {
    /// Where a request thread encodes a span before queuing it, reused.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The export of server spans: [`SpanExport::record`] from requests, a thread sending.
#[derive(Debug)]
pub struct SpanExport {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SpanExport {
    /// Starts the export thread.
    pub fn start(settings: Settings) -> Result<Self, ExportError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| ExportError::Start(format!("HTTP client: {e}")))?;
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Buffer::default()),
            wake: Condvar::new(),
            settings,
        });
        let exporting = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("rampart-span-export".into())
            .spawn(move || export_until_stopped(&exporting, &client))
            .map_err(|e| ExportError::Start(format!("thread: {e}")))?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a finished span, encoded on the calling thread (so the queue holds bytes, not
    /// records); when the queue is full it is dropped and counted.
    pub fn record(&self, span: &Finished<'_>) {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.clear();
            encode_span(&mut scratch, span);
            let mut buffer = lock(&self.shared.buffer);
            if buffer.spans >= self.shared.settings.queue {
                buffer.dropped += 1;
                return;
            }
            put_bytes(&mut buffer.encoded, 2, &scratch);
            buffer.spans += 1;
            if buffer.spans == self.shared.settings.batch {
                self.shared.wake.notify_one();
            }
        });
    }

    /// Sends what is queued and stops the thread (blocks until it has).
    pub fn shutdown(&self) {
        lock(&self.shared.buffer).stopping = true;
        self.shared.wake.notify_one();
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The export thread: waits for a full batch or the schedule delay, then sends what is queued.
fn export_until_stopped(shared: &Shared, client: &reqwest::blocking::Client) {
    let settings = &shared.settings;
    loop {
        let (encoded, spans, dropped, stopping) = {
            let mut buffer = lock(&shared.buffer);
            if buffer.spans < settings.batch && !buffer.stopping {
                buffer = shared
                    .wake
                    .wait_timeout(buffer, settings.delay)
                    .map_or_else(|p| p.into_inner().0, |(guard, _)| guard);
            }
            let dropped = std::mem::take(&mut buffer.dropped);
            let spans = std::mem::take(&mut buffer.spans);
            // The next batch gets room of its own, so queuing never grows the buffer.
            let fresh = Vec::with_capacity(buffer.encoded.len().max(settings.batch * 128));
            let encoded = std::mem::replace(&mut buffer.encoded, fresh);
            (encoded, spans, dropped, buffer.stopping)
        };
        if dropped > 0 {
            tracing::warn!(dropped, "server spans dropped: the export queue was full");
        }
        if spans > 0 {
            send(client, settings, &encoded, spans);
        }
        if stopping {
            return;
        }
    }
}

/// Posts `spans` encoded spans; a failure is logged and they are dropped (as the SDK's
/// exporter does).
fn send(client: &reqwest::blocking::Client, settings: &Settings, encoded: &[u8], spans: usize) {
    let body = request(encoded, &settings.resource);
    let mut request = client
        .post(&settings.url)
        .header("content-type", "application/x-protobuf")
        .body(body);
    for (name, value) in &settings.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    match request.send() {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => {
            let status = response.status().as_u16();
            tracing::warn!(status, spans, "server spans refused by the collector");
        }
        Err(error) => {
            tracing::warn!(%error, spans, "server spans not exported");
        }
    }
}

/// One OTLP `ExportTraceServiceRequest` holding `encoded` spans (each a `ScopeSpans.spans`
/// field, as [`SpanExport::record`] queues them) from the resource `resource`.
fn request(encoded: &[u8], resource: &[(String, String)]) -> Vec<u8> {
    let resource = Resource {
        attributes: resource
            .iter()
            .map(|(key, value)| KeyValue {
                key: key.clone(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(value.clone())),
                }),
            })
            .collect(),
        ..Default::default()
    };
    let scope = InstrumentationScope {
        name: "rampart-origin".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    let (resource, scope) = (resource.encode_to_vec(), scope.encode_to_vec());
    // Written once, into one buffer of the exact size: the queued spans are copied once.
    let scope_spans = field_len(scope.len()) + encoded.len();
    let resource_spans = field_len(resource.len()) + field_len(scope_spans);
    let mut request = Vec::with_capacity(field_len(resource_spans));
    put_head(&mut request, 1, resource_spans);
    put_bytes(&mut request, 1, &resource);
    put_head(&mut request, 2, scope_spans);
    put_bytes(&mut request, 1, &scope);
    request.extend_from_slice(encoded);
    request
}

/// OTLP's span flags: the W3C trace flags, and whether the parent is known to be remote.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;
/// OTLP's `SPAN_KIND_SERVER` and `STATUS_CODE_ERROR`.
const KIND_SERVER: u8 = 2;
const STATUS_ERROR: u8 = 2;

/// Protobuf's wire types, as the fields written here use them.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const FIXED32: u8 = 5;

/// The one-byte key of field `number` (below 16) with wire type `wire`.
const fn key(number: u8, wire: u8) -> u8 {
    assert!(number < 16);
    number << 3 | wire
}

/// An attribute's key as the field that starts its `KeyValue` (`key`, field 1), made at
/// compile time: a span's attribute keys are the same on every request.
macro_rules! key_field {
    ($key:literal) => {{
        const KEY: &str = $key;
        const FIELD: [u8; KEY.len() + 2] = key_field::<{ KEY.len() + 2 }>(KEY);
        &FIELD
    }};
}

const fn key_field<const N: usize>(name: &str) -> [u8; N] {
    assert!(name.len() < 0x80 && N == name.len() + 2);
    let mut field = [0; N];
    field[0] = key(1, LENGTH_DELIMITED);
    field[1] = name.len() as u8;
    let mut at = 0;
    while at < name.len() {
        field[at + 2] = name.as_bytes()[at];
        at += 1;
    }
    field
}

/// The fields of an OTLP `Span` (opentelemetry/proto/trace/v1/trace.proto) for `finished`.
fn encode_span(buf: &mut Vec<u8>, finished: &Finished<'_>) {
    put_bytes(buf, 1, &finished.trace_id.to_bytes());
    put_bytes(buf, 2, &finished.span_id.to_bytes());
    if !finished.trace_state.is_empty() {
        put_bytes(buf, 3, finished.trace_state.as_bytes());
    }
    if finished.parent != SpanId::INVALID {
        put_bytes(buf, 4, &finished.parent.to_bytes());
    }
    // The name: `{method} {route}`, or the method alone (OpenTelemetry's HTTP conventions).
    match finished.route {
        Some(route) => {
            put_head(buf, 5, finished.method.len() + 1 + route.len());
            buf.extend_from_slice(finished.method.as_bytes());
            buf.push(b' ');
            buf.extend_from_slice(route.as_bytes());
        }
        None => put_bytes(buf, 5, finished.method.as_bytes()),
    }
    buf.extend_from_slice(&[key(6, VARINT), KIND_SERVER, key(7, FIXED64)]);
    buf.extend_from_slice(&unix_nanos(finished.start).to_le_bytes());
    buf.push(key(8, FIXED64));
    buf.extend_from_slice(&unix_nanos(finished.end).to_le_bytes());
    put_string_attribute(buf, key_field!("http.request.method"), finished.method);
    put_string_attribute(buf, key_field!("url.path"), finished.path);
    let status = finished.status.into();
    put_int_attribute(buf, key_field!("http.response.status_code"), status);
    if let Some(route) = finished.route {
        put_string_attribute(buf, key_field!("http.route"), route);
    }
    if let Some(id) = finished.request_id {
        put_string_attribute(buf, key_field!("request_id"), id);
    }
    if finished.status >= 500 {
        let message = format!("HTTP {}", finished.status);
        put_head(buf, 15, field_len(message.len()) + 2);
        put_bytes(buf, 2, message.as_bytes());
        buf.extend_from_slice(&[key(3, VARINT), STATUS_ERROR]);
    }
    let remote = if finished.remote_parent { IS_REMOTE } else { 0 };
    let flags = u32::from(TraceFlags::SAMPLED.to_u8()) | HAS_IS_REMOTE | remote;
    // Field 16 takes a two-byte key.
    put_varint(buf, 16 << 3 | u64::from(FIXED32));
    buf.extend_from_slice(&flags.to_le_bytes());
}

/// A length-delimited field (bytes, a string or a message) with a one-byte key.
fn put_bytes(buf: &mut Vec<u8>, number: u8, value: &[u8]) {
    put_head(buf, number, value.len());
    buf.extend_from_slice(value);
}

/// The key and length of a length-delimited field of `len` bytes, its bytes to follow.
fn put_head(buf: &mut Vec<u8>, number: u8, len: usize) {
    buf.push(key(number, LENGTH_DELIMITED));
    put_varint(buf, len as u64);
}

/// Protobuf's base-128 varint, pushed straight onto `buf`.
fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// The encoded size of a length-delimited field of `len` bytes with a one-byte key.
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// A span attribute (field 9, a `KeyValue`) whose value (an `AnyValue` holding
/// `string_value`) is `value`; `name` is its key as [`key_field!`] makes it.
fn put_string_attribute(buf: &mut Vec<u8>, name: &[u8], value: &str) {
    let any = field_len(value.len());
    put_head(buf, 9, name.len() + field_len(any));
    buf.extend_from_slice(name);
    put_head(buf, 2, any);
    put_bytes(buf, 1, value.as_bytes());
}

/// A span attribute whose value is an integer (`int_value`).
fn put_int_attribute(buf: &mut Vec<u8>, name: &[u8], value: i64) {
    let any = 1 + encoded_len_varint(value as u64);
    put_head(buf, 9, name.len() + field_len(any));
    buf.extend_from_slice(name);
    put_head(buf, 2, any);
    buf.push(key(3, VARINT));
    put_varint(buf, value as u64);
}

fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(status: u16, parent: SpanId) -> Finished<'static> {
        let start = SystemTime::now();
        Finished {
            trace_id: TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
            span_id: SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
            parent,
            remote_parent: parent != SpanId::INVALID,
            trace_state: String::new(),
            start,
            end: start + Duration::from_micros(250),
            method: "GET",
            path: "/api/tasks/7",
            route: Some("/api/tasks/{id}"),
            status,
            request_id: Some("req-1"),
        }
    }

    fn decoded(batch: &[Finished<'_>]) -> ExportTraceServiceRequest {
        let resource = vec![("service.name".to_owned(), "origin-test".to_owned())];
        let mut encoded = Vec::new();
        let mut span = Vec::new();
        for finished in batch {
            span.clear();
            encode_span(&mut span, finished);
            put_bytes(&mut encoded, 2, &span);
        }
        ExportTraceServiceRequest::decode(request(&encoded, &resource).as_slice()).expect("OTLP")
    }

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::span;

    #[test]
    fn a_batch_is_one_otlp_request_with_the_resource() {
        let parent = SpanId::from_hex("1111111111111111").expect("hex");
        let request = decoded(&[finished(200, parent), finished(503, SpanId::INVALID)]);
        let resource_spans = &request.resource_spans[0];
        let resource = resource_spans.resource.as_ref().expect("a resource");
        assert_eq!(resource.attributes[0].key, "service.name");
        let spans = &resource_spans.scope_spans[0].spans;
        assert_eq!(spans.len(), 2);
        let span = &spans[0];
        assert_eq!(span.name, "GET /api/tasks/{id}");
        assert_eq!(span.kind, span::SpanKind::Server as i32);
        assert_eq!(span.parent_span_id, parent.to_bytes().to_vec());
        assert_eq!(span.flags, 0x301, "sampled, with a remote parent");
        assert_eq!(span.end_time_unix_nano - span.start_time_unix_nano, 250_000);
        let keys: Vec<&str> = span.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "http.request.method",
                "url.path",
                "http.response.status_code",
                "http.route",
                "request_id"
            ]
        );
        let values: Vec<String> = span
            .attributes
            .iter()
            .filter_map(|a| a.value.as_ref()?.value.as_ref())
            .map(|value| match value {
                any_value::Value::StringValue(text) => text.clone(),
                any_value::Value::IntValue(number) => number.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            values,
            ["GET", "/api/tasks/7", "200", "/api/tasks/{id}", "req-1"]
        );
        assert!(span.status.is_none());
        let unrouted = decoded(&[Finished {
            route: None,
            ..finished(404, parent)
        }]);
        let unrouted = &unrouted.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(unrouted.name, "GET", "the method alone without a route");
        let failed = &spans[1];
        assert_eq!(
            failed.status.as_ref().map(|s| s.message.as_str()),
            Some("HTTP 503")
        );
        assert!(failed.parent_span_id.is_empty(), "a root span");
        assert_eq!(failed.status.as_ref().map(|s| s.code), Some(2));
    }

    #[test]
    fn headers_are_read_as_otlp_writes_them() {
        assert_eq!(
            parse_headers("api-key=abc%20def, x-tenant = blue ,,=nokey"),
            [
                ("api-key".to_owned(), "abc def".to_owned()),
                ("x-tenant".to_owned(), "blue".to_owned())
            ]
        );
    }
}
