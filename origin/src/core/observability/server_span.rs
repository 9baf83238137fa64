//! The request's server span, made on the OpenTelemetry API directly rather than through a
//! `tracing` span: a cached hit is the origin's cheapest request, and the bridge's per-span
//! bookkeeping (a registry slot, field visitors, enter and exit timing) would cost it more than
//! the span itself. Spans made with `tracing` inside the request (database, Redis, outbound)
//! find this one as their parent through the OpenTelemetry context the request runs in.
//!
//! The span is named after the route template once the router has matched one
//! (`GET /api/tasks/{id}`, as OpenTelemetry's HTTP conventions say), else after the method.

use std::borrow::Cow;
use std::sync::OnceLock;

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, TraceId, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracer;

use crate::core::layers::request_id::REQUEST_ID;
use crate::core::route::RouteTemplate;

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
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
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
            span.update_name(format!("{} {route}", self.method));
            span.set_attribute(KeyValue::new("http.route", route.to_string()));
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

/// Reads propagation headers from a request's header map.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}
