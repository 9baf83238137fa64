//! The request's server span, made on the OpenTelemetry API directly rather than through a
//! `tracing` span: a cached hit is the origin's cheapest request, and the bridge's per-span
//! bookkeeping (a registry slot, field visitors, enter and exit timing) would cost it more than
//! the span itself. Spans made with `tracing` inside the request (database, Redis, outbound)
//! find this one as their parent through the OpenTelemetry context the request runs in.
//!
//! The span is named after the route template once the router has matched one
//! (`GET /api/tasks/{id}`, as OpenTelemetry's HTTP conventions say), else after the method.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::{Arc, LazyLock, OnceLock, RwLock};

use axum::http::{HeaderMap, HeaderName, Method};
use axum::response::Response;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use crate::core::layers::request_id::REQUEST_ID;
use crate::core::route::RouteTemplate;

/// W3C Trace Context's headers.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The tracer server spans are made with; set once when traces are exported.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Makes server spans with `tracer` from now on.
pub(super) fn install(tracer: SdkTracer) {
    let _ = TRACER.set(tracer);
}

/// One request's server span, in the context its request runs in.
#[derive(Debug)]
pub struct ServerSpan {
    context: Context,
    method: Method,
}

impl ServerSpan {
    /// Starts the span of a request, child of the caller's `traceparent` when it sent one;
    /// `None` when traces are not exported.
    pub fn start(method: &Method, path: &str, headers: &HeaderMap) -> Option<Self> {
        let tracer = TRACER.get()?;
        let parent = parent_of(headers);
        let span = tracer
            .span_builder(method_name(method))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", method_name(method)),
                KeyValue::new("url.path", path.to_owned()),
            ])
            .start_with_context(tracer, &parent);
        Some(Self {
            context: parent.with_span(span),
            method: method.clone(),
        })
    }

    /// The context the request runs in: the parent of every span made while it is served.
    pub fn context(&self) -> Context {
        self.context.clone()
    }

    /// The span's trace id.
    pub fn trace_id(&self) -> TraceId {
        self.context.span().span_context().trace_id()
    }

    /// Ends the span with what `response` says: the route, the status and the request id.
    pub fn end(self, response: &Response) {
        let span = self.context.span();
        if let Some(RouteTemplate(route)) = response.extensions().get::<RouteTemplate>() {
            span.update_name(name_of(&self.method, route));
            span.set_attribute(KeyValue::new("http.route", Arc::clone(route)));
        }
        let status = response.status();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        if let Some(id) = response.headers().get(&REQUEST_ID) {
            let id = id.to_str().unwrap_or("-").to_owned();
            span.set_attribute(KeyValue::new("request_id", id));
        }
        if status.is_server_error() {
            span.set_status(Status::error(status.as_str().to_owned()));
        }
        span.end();
    }
}

/// The method as a span name or attribute, without allocating for the standard ones.
fn method_name(method: &Method) -> Cow<'static, str> {
    let name = match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => return Cow::Owned(method.as_str().to_owned()),
    };
    Cow::Borrowed(name)
}

/// The span names given so far, `{method} {route}`: a handful per application, made once.
static NAMES: LazyLock<RwLock<Names>> = LazyLock::new(RwLock::default);

/// Span names by method and route template.
type Names = HashMap<(Method, Arc<str>), &'static str>;

/// `{method} {route}`, made once per pair and kept (routes are the router's templates, so the
/// set is small and fixed; other methods than the standard ones are named afresh each time).
fn name_of(method: &Method, route: &Arc<str>) -> Cow<'static, str> {
    if matches!(method_name(method), Cow::Owned(_)) {
        return Cow::Owned(format!("{method} {route}"));
    }
    let key = (method.clone(), Arc::clone(route));
    if let Some(name) = NAMES.read().ok().and_then(|names| names.get(&key).copied()) {
        return Cow::Borrowed(name);
    }
    let mut names = NAMES
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let name = *names
        .entry(key)
        .or_insert_with(|| Box::leak(format!("{method} {route}").into_boxed_str()));
    Cow::Borrowed(name)
}

/// The caller's span, from its W3C `traceparent` (and `tracestate`); an empty context when it
/// sent none or an invalid one, which starts a new trace.
fn parent_of(headers: &HeaderMap) -> Context {
    let Some(remote) = headers
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .and_then(remote_span)
    else {
        return Context::new();
    };
    let state = headers
        .get(TRACESTATE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| TraceState::from_str(value).ok())
        .unwrap_or_default();
    let (trace_id, span_id, flags) = remote;
    Context::new().with_remote_span_context(SpanContext::new(trace_id, span_id, flags, true, state))
}

/// A `traceparent`'s ids and sampled flag, as W3C Trace Context parses it: a known version
/// (`00` has exactly four fields; later ones may add more), lower-case hex of the right
/// lengths, ids not all zeros.
fn remote_span(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let mut fields = value.trim().split('-');
    let (version, trace, span, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let hex = |text: &str, len: usize| {
        text.len() == len
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let known = hex(version, 2) && version != "ff" && (version != "00" || fields.next().is_none());
    if !(known && hex(trace, 32) && hex(span, 16) && hex(flags, 2)) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace)
        .ok()
        .filter(|id| *id != TraceId::INVALID)?;
    let span_id = SpanId::from_hex(span)
        .ok()
        .filter(|id| *id != SpanId::INVALID)?;
    let flags = u8::from_str_radix(flags, 16).ok()? & TraceFlags::SAMPLED.to_u8();
    Some((trace_id, span_id, TraceFlags::new(flags)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_parsed_as_w3c_says() {
        let parsed =
            remote_span("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        assert_eq!(parsed.0.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.1.to_string(), "00f067aa0ba902b7");
        assert!(parsed.2.is_sampled());
        let unsampled = remote_span("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
        assert!(!unsampled.expect("valid").2.is_sampled());
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert!(
            remote_span(later).is_some(),
            "a later version may add fields"
        );
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
        ] {
            assert!(remote_span(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn names_are_the_method_and_route() {
        let route: Arc<str> = Arc::from("/api/tasks/{id}");
        assert_eq!(name_of(&Method::GET, &route), "GET /api/tasks/{id}");
        assert_eq!(name_of(&Method::GET, &route), "GET /api/tasks/{id}");
        let custom = Method::from_bytes(b"PURGE").expect("a method");
        assert_eq!(name_of(&custom, &route), "PURGE /api/tasks/{id}");
    }
}
