//! Distributed tracing: the edge's span of each request, in the W3C trace context.
//!
//! A valid incoming `traceparent` (version `00`) is continued, and its sampled flag followed;
//! a missing or malformed one starts a new trace, sampled at `TRACE_SAMPLE_RATE`. Every origin
//! fetch carries the edge span's own `traceparent`, so the origin's spans are its children.
//! When `OTEL_EXPORTER_OTLP_ENDPOINT` is set and the span is sampled, the span is sent as
//! OTLP/HTTP JSON (`POST {endpoint}/v1/traces`) in `ctx.wait_until`, after the response has
//! left; a failed export is logged and otherwise ignored.

use std::cell::RefCell;

use serde_json::{json, Value};
use worker::js_sys::{self, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{web_sys, Context, Date, Fetch, Headers, Request, RequestInit, Url};

/// `TRACE_SAMPLE_RATE`: the share of new traces that are recorded (0.0–1.0, default 0).
pub const VAR_TRACE_SAMPLE_RATE: &str = "TRACE_SAMPLE_RATE";
/// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL (empty: no export).
pub const VAR_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The service name the edge's spans carry.
pub const SERVICE_NAME: &str = "rampart-edge";
/// OTLP's `SPAN_KIND_SERVER`.
const KIND_SERVER: u8 = 2;

/// The parent a caller sent in a valid `traceparent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    /// 32 lower-case hex digits, not all zero.
    pub trace_id: String,
    /// 16 lower-case hex digits, not all zero.
    pub span_id: String,
    /// The caller recorded its span (flag bit 0).
    pub sampled: bool,
}

/// Parses a `traceparent` strictly: version `00`, a non-zero trace id and parent id in
/// lower-case hex, two hex digits of flags, nothing more. Anything else is `None`.
pub fn parse_traceparent(value: &str) -> Option<Parent> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || version != "00" {
        return None;
    }
    let valid = |text: &str, len: usize| {
        text.len() == len
            && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && text.bytes().any(|b| b != b'0')
    };
    let flag_digits = flags.len() == 2 && flags.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid(trace, 32) || !valid(parent, 16) || !flag_digits {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(Parent {
        trace_id: trace.to_owned(),
        span_id: parent.to_owned(),
        sampled: flags & 1 == 1,
    })
}

/// A `traceparent` value (version `00`).
pub fn format_traceparent(trace_id: &str, span_id: &str, sampled: bool) -> String {
    format!(
        "00-{trace_id}-{span_id}-{}",
        if sampled { "01" } else { "00" }
    )
}

/// Tracing settings from `[vars]`.
#[derive(Debug, Clone, Default)]
pub struct TraceConfig {
    /// The share of new traces recorded; invalid or out-of-range values read as 0.
    pub sample_rate: f64,
    /// Where spans are exported, when set.
    pub endpoint: Option<String>,
}

thread_local! {
    /// The isolate's tracing settings, read by its first request (bindings do not change).
    static ISOLATE_TRACING: std::cell::OnceCell<TraceConfig> = const { std::cell::OnceCell::new() };
}

impl TraceConfig {
    /// The isolate's settings: [`TraceConfig::from_env`] once, then a copy.
    pub fn of_isolate(env: &worker::Env) -> Self {
        ISOLATE_TRACING.with(|cell| cell.get_or_init(|| Self::from_env(env)).clone())
    }

    /// Reads `TRACE_SAMPLE_RATE` and `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn from_env(env: &worker::Env) -> Self {
        let var = |name: &str| env.var(name).map(|v| v.to_string()).ok();
        Self {
            sample_rate: parse_rate(var(VAR_TRACE_SAMPLE_RATE).as_deref()),
            endpoint: var(VAR_OTLP_ENDPOINT).and_then(|value| traces_url(&value)),
        }
    }
}

/// A sample rate in 0.0–1.0; anything else is 0.
pub fn parse_rate(value: Option<&str>) -> f64 {
    value
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|rate| (0.0..=1.0).contains(rate))
        .unwrap_or(0.0)
}

/// `{endpoint}/v1/traces`, when `endpoint` is a non-empty http(s) URL.
pub fn traces_url(endpoint: &str) -> Option<String> {
    let endpoint = endpoint.trim().trim_end_matches('/');
    let url = Url::parse(endpoint).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| format!("{endpoint}/v1/traces"))
}

/// What the request did, recorded on its span as it happens.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// The matched policy rule's pattern (the span's low-cardinality name).
    pub route: Option<String>,
    /// The cache key.
    pub cache_key: Option<String>,
    /// Time spent waiting for the origin, in ms, summed over fetches.
    pub origin_ms: Option<f64>,
    /// Time spent converting an image, in ms.
    pub image_ms: Option<f64>,
    /// Time spent in the Workers Cache API on the request path, in ms, summed over operations.
    pub cache_ms: Option<f64>,
    /// The response may carry `Server-Timing` ([`crate::server_timing`]).
    pub server_timing: bool,
}

/// The edge's span of one request.
#[derive(Debug)]
pub struct Span {
    /// The trace's id (hex).
    pub trace_id: String,
    /// This span's id (hex).
    pub span_id: String,
    /// The caller's span, when a valid `traceparent` was continued.
    pub parent_id: Option<String>,
    /// Whether the span is recorded.
    pub sampled: bool,
    /// When it started, in ms since the epoch.
    pub start_ms: u64,
    recorded: RefCell<Recorded>,
}

impl Span {
    /// A span continuing `incoming` (when valid) or starting a trace, with `random` filling ids.
    pub fn start(
        incoming: Option<&str>,
        rate: f64,
        random: &mut dyn FnMut(&mut [u8]),
        start_ms: u64,
    ) -> Self {
        let parent = incoming.and_then(parse_traceparent);
        let trace_id = match &parent {
            Some(parent) => parent.trace_id.clone(),
            None => nonzero_hex(16, random),
        };
        let sampled = match &parent {
            Some(parent) => parent.sampled,
            None => rate > 0.0 && random_unit(random) < rate,
        };
        Self {
            trace_id,
            span_id: nonzero_hex(8, random),
            parent_id: parent.map(|parent| parent.span_id),
            sampled,
            start_ms,
            recorded: RefCell::new(Recorded::default()),
        }
    }

    /// The span of `request`, ids from `crypto.getRandomValues`.
    pub fn of_request(request: &Request, config: &TraceConfig) -> Self {
        let incoming = request.headers().get("traceparent").ok().flatten();
        let mut random = crypto_random;
        Self::start(
            incoming.as_deref(),
            config.sample_rate,
            &mut random,
            Date::now().as_millis(),
        )
    }

    /// The `traceparent` naming this span as the parent, for the origin.
    pub fn traceparent(&self) -> String {
        format_traceparent(&self.trace_id, &self.span_id, self.sampled)
    }

    /// Records the matched rule's pattern and the cache key.
    pub fn record_route(&self, route: Option<String>, cache_key: &str) {
        let mut recorded = self.recorded.borrow_mut();
        recorded.route = route;
        recorded.cache_key = Some(cache_key.to_owned());
    }

    /// Adds `ms` of waiting for the origin.
    pub fn add_origin_time(&self, ms: f64) {
        let mut recorded = self.recorded.borrow_mut();
        recorded.origin_ms = Some(recorded.origin_ms.unwrap_or(0.0) + ms);
    }

    /// Adds `ms` of image conversion.
    pub fn add_image_time(&self, ms: f64) {
        let mut recorded = self.recorded.borrow_mut();
        recorded.image_ms = Some(recorded.image_ms.unwrap_or(0.0) + ms);
    }

    /// Adds `ms` spent in the Cache API.
    pub fn add_cache_time(&self, ms: f64) {
        let mut recorded = self.recorded.borrow_mut();
        recorded.cache_ms = Some(recorded.cache_ms.unwrap_or(0.0) + ms);
    }

    /// Lets the response carry `Server-Timing`.
    pub fn show_server_timing(&self) {
        self.recorded.borrow_mut().server_timing = true;
    }

    /// What was recorded so far.
    pub fn recorded(&self) -> Recorded {
        self.recorded.borrow().clone()
    }
}

/// How the request ended.
#[derive(Debug, Clone)]
pub struct Ending {
    /// The method as sent.
    pub method: String,
    /// The URL's path.
    pub path: String,
    /// The status the edge answered.
    pub status: u16,
    /// The edge's own `Cache-Status` member, when it sent one.
    pub cache_status: Option<String>,
    /// When the response was ready, in ms since the epoch.
    pub end_ms: u64,
}

/// The span's name: the method and the matched rule's pattern (the method alone otherwise).
pub fn span_name(method: &str, route: Option<&str>) -> String {
    match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    }
}

/// The cache outcome a `Cache-Status` member describes: `hit`, `stale`, `bypass` or `miss`.
pub fn cache_outcome(member: &str) -> &'static str {
    let params: Vec<&str> = member.split(';').map(str::trim).collect();
    if params.contains(&"hit") {
        let stale = params.iter().any(|p| p.starts_with("ttl=-"));
        return if stale { "stale" } else { "hit" };
    }
    if params
        .iter()
        .any(|p| *p == "fwd=bypass" || *p == "fwd=method")
    {
        return "bypass";
    }
    "miss"
}

/// The edge's member of a `Cache-Status` field (the last one it named itself).
pub fn edge_member(field: &str) -> Option<String> {
    field
        .split(',')
        .map(str::trim)
        .rfind(|member| member.split(';').next().map(str::trim) == Some(SERVICE_NAME))
        .map(str::to_owned)
}

/// The OTLP/HTTP JSON request body carrying `span`.
pub fn otlp_json(span: &Span, ending: &Ending) -> Value {
    let recorded = span.recorded();
    let mut attributes = vec![
        string_attribute("http.request.method", &ending.method),
        string_attribute("url.path", &ending.path),
        json!({"key": "http.response.status_code", "value": {"intValue": ending.status.to_string()}}),
    ];
    if let Some(member) = &ending.cache_status {
        attributes.push(string_attribute(
            "rampart.cache.outcome",
            cache_outcome(member),
        ));
        attributes.push(string_attribute("rampart.cache.status", member));
    }
    if let Some(key) = &recorded.cache_key {
        attributes.push(string_attribute("rampart.cache.key", key));
    }
    for (name, value) in [
        ("rampart.origin.duration_ms", recorded.origin_ms),
        ("rampart.image.conversion_ms", recorded.image_ms),
    ] {
        if let Some(ms) = value {
            attributes.push(json!({"key": name, "value": {"doubleValue": ms}}));
        }
    }
    let mut body = json!({
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "name": span_name(&ending.method, recorded.route.as_deref()),
        "kind": KIND_SERVER,
        "startTimeUnixNano": nanos(span.start_ms),
        "endTimeUnixNano": nanos(ending.end_ms.max(span.start_ms)),
        "attributes": attributes,
        "status": if ending.status >= 500 { json!({"code": 2}) } else { json!({}) },
    });
    if let Some(parent) = &span.parent_id {
        body["parentSpanId"] = json!(parent);
    }
    json!({"resourceSpans": [{
        "resource": {"attributes": [string_attribute("service.name", SERVICE_NAME)]},
        "scopeSpans": [{"scope": {"name": SERVICE_NAME}, "spans": [body]}],
    }]})
}

fn string_attribute(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

/// Milliseconds since the epoch as OTLP's decimal string of nanoseconds.
fn nanos(ms: u64) -> String {
    ms.saturating_mul(1_000_000).to_string()
}

/// Exports `span` in the background when it is sampled and an endpoint is set.
pub fn export(ctx: &Context, config: &TraceConfig, span: &Span, ending: &Ending) {
    let Some(endpoint) = config.endpoint.clone() else {
        return;
    };
    if !span.sampled {
        return;
    }
    let body = otlp_json(span, ending).to_string();
    ctx.wait_until(async move {
        if let Err(error) = post(&endpoint, &body).await {
            worker::console_error!("rampart-edge: exporting a trace failed: {error}");
        }
    });
}

async fn post(endpoint: &str, body: &str) -> worker::Result<()> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(worker::Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(body)));
    let request = Request::new_with_init(endpoint, &init)?;
    let response = Fetch::Request(request).send().await?;
    match response.status_code() {
        200..=299 => Ok(()),
        status => Err(worker::Error::RustError(format!(
            "collector answered {status}"
        ))),
    }
}

/// `bytes` random bytes, not all zero, in lower-case hex.
fn nonzero_hex(bytes: usize, random: &mut dyn FnMut(&mut [u8])) -> String {
    let mut buffer = vec![0u8; bytes];
    while buffer.iter().all(|b| *b == 0) {
        random(&mut buffer);
    }
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random number in [0, 1).
fn random_unit(random: &mut dyn FnMut(&mut [u8])) -> f64 {
    let mut buffer = [0u8; 4];
    random(&mut buffer);
    f64::from(u32::from_le_bytes(buffer)) / (f64::from(u32::MAX) + 1.0)
}

/// Fills `buffer` from `crypto.getRandomValues` (the runtime's CSPRNG).
fn crypto_random(buffer: &mut [u8]) {
    let array = Uint8Array::new_with_length(buffer.len() as u32);
    let crypto = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"));
    let fill = crypto.as_ref().ok().and_then(|crypto| {
        let function = js_sys::Reflect::get(crypto, &JsValue::from_str("getRandomValues")).ok()?;
        function
            .dyn_ref::<js_sys::Function>()?
            .call1(crypto, &array)
            .ok()
    });
    if fill.is_some() {
        array.copy_to(buffer);
    } else {
        worker::console_error!("rampart-edge: crypto.getRandomValues is unavailable");
    }
}

/// The `web_sys` response's status and the edge's `Cache-Status` member.
pub fn ending_of(method: String, path: String, response: &web_sys::Response) -> Ending {
    let field = response.headers().get("cache-status").ok().flatten();
    Ending {
        method,
        path,
        status: response.status(),
        cache_status: field.as_deref().and_then(edge_member),
        end_ms: Date::now().as_millis(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";

    fn counting() -> impl FnMut(&mut [u8]) {
        let mut next = 0u8;
        move |buffer: &mut [u8]| {
            for byte in buffer {
                next = next.wrapping_add(1);
                *byte = next;
            }
        }
    }

    #[test]
    fn a_valid_traceparent_is_parsed() {
        let parent = parse_traceparent(&format!("00-{TRACE}-{PARENT}-01")).expect("valid");
        assert_eq!(parent.trace_id, TRACE);
        assert_eq!(parent.span_id, PARENT);
        assert!(parent.sampled);
        let unsampled = parse_traceparent(&format!("00-{TRACE}-{PARENT}-00")).expect("valid");
        assert!(!unsampled.sampled);
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for value in [
            String::new(),
            format!("01-{TRACE}-{PARENT}-01"),
            format!("ff-{TRACE}-{PARENT}-01"),
            format!("00-{}-{PARENT}-01", "0".repeat(32)),
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
            format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
            format!("00-{}-{PARENT}-01", &TRACE[1..]),
            format!("00-{TRACE}-{PARENT}0-01"),
            format!("00-{TRACE}-{PARENT}-1"),
            format!("00-{TRACE}-{PARENT}-0g"),
            format!("00-{TRACE}-{PARENT}-01-extra"),
            format!("00-{TRACE}-zzf067aa0ba902b7-01"),
            format!("00_{TRACE}_{PARENT}_01"),
        ] {
            assert_eq!(parse_traceparent(&value), None, "{value:?}");
        }
    }

    #[test]
    fn a_traceparent_round_trips() {
        let value = format_traceparent(TRACE, PARENT, true);
        assert_eq!(value, format!("00-{TRACE}-{PARENT}-01"));
        assert_eq!(parse_traceparent(&value).map(|p| p.sampled), Some(true));
        assert!(format_traceparent(TRACE, PARENT, false).ends_with("-00"));
    }

    #[test]
    fn a_valid_parent_is_continued_with_its_sampled_flag() {
        let incoming = format!("00-{TRACE}-{PARENT}-01");
        let span = Span::start(Some(&incoming), 0.0, &mut counting(), 1);
        assert_eq!(span.trace_id, TRACE);
        assert_eq!(span.parent_id.as_deref(), Some(PARENT));
        assert!(span.sampled, "the caller's flag wins over a rate of 0");
        assert_ne!(span.span_id, PARENT);
        assert_eq!(span.span_id.len(), 16);
        let unsampled = format!("00-{TRACE}-{PARENT}-00");
        assert!(!Span::start(Some(&unsampled), 1.0, &mut counting(), 1).sampled);
    }

    #[test]
    fn a_malformed_parent_starts_a_new_trace_at_the_rate() {
        let span = Span::start(Some("00-garbage"), 1.0, &mut counting(), 1);
        assert_eq!(span.parent_id, None);
        assert_eq!(span.trace_id.len(), 32);
        assert_ne!(span.trace_id, TRACE);
        assert!(span.sampled);
        assert!(!Span::start(None, 0.0, &mut counting(), 1).sampled);
        let parsed = parse_traceparent(&span.traceparent()).expect("its own is valid");
        assert_eq!(parsed.span_id, span.span_id);
    }

    #[test]
    fn rates_and_endpoints_are_read_leniently() {
        assert_eq!(parse_rate(Some("0.25")), 0.25);
        assert_eq!(parse_rate(Some("1")), 1.0);
        assert_eq!(parse_rate(Some("2")), 0.0);
        assert_eq!(parse_rate(Some("-1")), 0.0);
        assert_eq!(parse_rate(Some("x")), 0.0);
        assert_eq!(parse_rate(None), 0.0);
        assert_eq!(
            traces_url("http://127.0.0.1:4318/").as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(traces_url(""), None);
        assert_eq!(traces_url("file:///tmp"), None);
    }

    #[test]
    fn cache_status_members_name_an_outcome() {
        let field =
            "origin; fwd=uri-miss, rampart-edge; hit; ttl=-3; detail=stale-while-revalidate";
        let member = edge_member(field).expect("the edge's member");
        assert!(member.starts_with("rampart-edge; hit"));
        assert_eq!(cache_outcome(&member), "stale");
        assert_eq!(cache_outcome("rampart-edge; hit; ttl=30"), "hit");
        assert_eq!(cache_outcome("rampart-edge; fwd=uri-miss; stored"), "miss");
        assert_eq!(cache_outcome("rampart-edge; fwd=bypass"), "bypass");
        assert_eq!(edge_member("origin; hit"), None);
    }

    #[test]
    fn the_span_is_encoded_as_otlp_json() {
        let incoming = format!("00-{TRACE}-{PARENT}-01");
        let span = Span::start(Some(&incoming), 0.0, &mut counting(), 1_700_000_000_001);
        span.record_route(Some("/api/*".to_owned()), "GET|example.com|/api/x");
        span.add_origin_time(12.0);
        span.add_origin_time(3.0);
        let ending = Ending {
            method: "GET".to_owned(),
            path: "/api/x".to_owned(),
            status: 200,
            cache_status: Some("rampart-edge; fwd=uri-miss".to_owned()),
            end_ms: 1_700_000_000_020,
        };
        let body = otlp_json(&span, &ending);
        let resource = &body["resourceSpans"][0];
        assert_eq!(
            resource["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "rampart-edge"}})
        );
        let out = &resource["scopeSpans"][0]["spans"][0];
        assert_eq!(out["traceId"], TRACE);
        assert_eq!(out["spanId"], span.span_id.as_str());
        assert_eq!(out["parentSpanId"], PARENT);
        assert_eq!(out["name"], "GET /api/*");
        assert_eq!(out["kind"], 2);
        assert_eq!(out["startTimeUnixNano"], "1700000000001000000");
        assert_eq!(out["endTimeUnixNano"], "1700000000020000000");
        let attribute = |key: &str| {
            out["attributes"]
                .as_array()
                .and_then(|all| all.iter().find(|a| a["key"] == key))
                .map(|a| a["value"].clone())
        };
        assert_eq!(
            attribute("http.request.method"),
            Some(json!({"stringValue": "GET"}))
        );
        assert_eq!(
            attribute("url.path"),
            Some(json!({"stringValue": "/api/x"}))
        );
        assert_eq!(
            attribute("http.response.status_code"),
            Some(json!({"intValue": "200"}))
        );
        assert_eq!(
            attribute("rampart.cache.outcome"),
            Some(json!({"stringValue": "miss"}))
        );
        assert_eq!(
            attribute("rampart.cache.key"),
            Some(json!({"stringValue": "GET|example.com|/api/x"}))
        );
        assert_eq!(
            attribute("rampart.origin.duration_ms"),
            Some(json!({"doubleValue": 15.0}))
        );
        assert_eq!(attribute("rampart.image.conversion_ms"), None);
    }

    #[test]
    fn a_root_span_has_no_parent_and_a_method_name() {
        let span = Span::start(None, 1.0, &mut counting(), 5);
        let ending = Ending {
            method: "POST".to_owned(),
            path: "/x".to_owned(),
            status: 502,
            cache_status: None,
            end_ms: 4,
        };
        let body = otlp_json(&span, &ending);
        let out = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert!(out.get("parentSpanId").is_none());
        assert_eq!(out["name"], "POST");
        assert_eq!(out["endTimeUnixNano"], out["startTimeUnixNano"]);
        assert_eq!(out["status"]["code"], 2);
    }
}
