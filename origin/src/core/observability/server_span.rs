//! The request's server span, made without a `tracing` span or an SDK span: a cached hit is
//! the origin's cheapest request, and either would cost it more than the span itself. The
//! SDK's sampler and id generator decide and name it (so `OTEL_TRACES_SAMPLER` applies), the
//! request's log labels carry its span context ([`super::log_context`]), so that spans made
//! with `tracing` inside it (database, Redis, outbound) find it as their parent, and when it
//! ends a sampled span is handed to [`super::span_export`] as a plain record.
//!
//! The span is named after the route template once the router has matched one
//! (`GET /api/tasks/{id}`, as OpenTelemetry's HTTP conventions say), else after the method.

use std::borrow::Cow;
use std::str::FromStr as _;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderName, Method, Uri};
use axum::response::Response;
use opentelemetry::trace::{
    SamplingDecision, SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId,
    TraceState,
};
use opentelemetry::Context;
use opentelemetry_sdk::trace::{IdGenerator, ShouldSample};

use super::span_export::{Finished, SpanExport};
use crate::core::http::header_values::standard_method;
use crate::core::layers::request_id::REQUEST_ID;
use crate::core::route::RouteTemplate;

/// W3C Trace Context's headers.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// What makes and sends server spans; set once when traces are exported.
#[derive(Debug)]
pub(super) struct Spans {
    pub sampler: Box<dyn ShouldSample>,
    /// Whether the sampler follows a parent's decision (`parentbased_*`, the default): then a
    /// span with a parent is decided without asking it.
    pub follows_parents: bool,
    pub ids: Box<dyn IdGenerator>,
    pub export: Arc<SpanExport>,
}

static SPANS: OnceLock<Spans> = OnceLock::new();

impl Spans {
    /// The sampler's decision on a server span named `name` in `trace_id` under `parent`: its
    /// trace flags and the `tracestate` it carries on.
    fn decide(
        &self,
        parent: Option<&SpanContext>,
        trace_id: TraceId,
        name: &str,
    ) -> (TraceFlags, TraceState) {
        if let Some(parent) = parent.filter(|_| self.follows_parents) {
            let flags = TraceFlags::default().with_sampled(parent.is_sampled());
            return (flags, parent.trace_state().clone());
        }
        let context = parent.map_or_else(Context::new, |parent| {
            Context::new().with_remote_span_context(parent.clone())
        });
        let result =
            self.sampler
                .should_sample(Some(&context), trace_id, name, &SpanKind::Server, &[], &[]);
        let flags = match result.decision {
            SamplingDecision::RecordAndSample => TraceFlags::SAMPLED,
            _ => TraceFlags::default(),
        };
        (flags, result.trace_state)
    }
}

/// Makes server spans with `spans` from now on.
pub(super) fn install(spans: Spans) {
    let _ = SPANS.set(spans);
}

/// One request's server span.
#[derive(Debug)]
pub struct ServerSpan {
    own: SpanContext,
    parent: SpanId,
    remote_parent: bool,
    start: SystemTime,
    method: Method,
    target: Uri,
}

impl ServerSpan {
    /// Starts the span of a request, child of the caller's `traceparent` when it sent one;
    /// `None` when traces are not exported.
    pub fn start(method: &Method, target: &Uri, headers: &HeaderMap) -> Option<Self> {
        let spans = SPANS.get()?;
        let parent = parent_of(headers);
        let trace_id = parent
            .as_ref()
            .map_or_else(|| spans.ids.new_trace_id(), SpanContext::trace_id);
        let (flags, trace_state) = spans.decide(parent.as_ref(), trace_id, &method_name(method));
        let own = SpanContext::new(trace_id, spans.ids.new_span_id(), flags, false, trace_state);
        Some(Self {
            own,
            parent: parent
                .as_ref()
                .map_or(SpanId::INVALID, SpanContext::span_id),
            remote_parent: parent.is_some(),
            start: SystemTime::now(),
            method: method.clone(),
            target: target.clone(),
        })
    }

    /// The span's context: the parent of every span made while the request is served.
    pub fn span_context(&self) -> SpanContext {
        self.own.clone()
    }

    /// Ends the span with what `response` says (the route, the status and the request id) and,
    /// when it is sampled, hands it to the exporter.
    pub fn end(self, response: &Response) {
        let own = self.own;
        let Some(spans) = SPANS.get().filter(|_| own.is_sampled()) else {
            return;
        };
        let route = response.extensions().get::<RouteTemplate>();
        let request_id = response.headers().get(&REQUEST_ID);
        spans.export.record(&Finished {
            trace_id: own.trace_id(),
            span_id: own.span_id(),
            parent: self.parent,
            remote_parent: self.remote_parent,
            trace_state: own.trace_state().header(),
            start: self.start,
            end: SystemTime::now(),
            method: self.method.as_str(),
            path: self.target.path(),
            route: route.map(|RouteTemplate(route)| &**route),
            status: response.status().as_u16(),
            request_id: request_id.and_then(|id| id.to_str().ok()),
        });
    }
}

/// The method as a span name or attribute, without allocating for the standard ones.
fn method_name(method: &Method) -> Cow<'static, str> {
    standard_method(method).map_or_else(|| Cow::Owned(method.as_str().to_owned()), Cow::Borrowed)
}

/// The caller's span, from its W3C `traceparent` (and `tracestate`); `None` when it sent none
/// or an invalid one, which starts a new trace.
fn parent_of(headers: &HeaderMap) -> Option<SpanContext> {
    let remote = headers
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .and_then(remote_span)?;
    let state = headers
        .get(TRACESTATE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| TraceState::from_str(value).ok())
        .unwrap_or_default();
    let (trace_id, span_id, flags) = remote;
    Some(SpanContext::new(trace_id, span_id, flags, true, state))
}

/// A `traceparent`'s ids and sampled flag, as W3C Trace Context parses it: a known version
/// (`00` has exactly four fields; later ones may add more), lower-case hex of the right
/// lengths, ids not all zeros. Read byte by byte in one pass: every request from the edge
/// carries one, traced or not.
pub(super) fn remote_span(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    // `vv-{32 hex}-{16 hex}-ff`: the dashes sit at 2, 35 and 52.
    const LENGTH: usize = 55;
    let text = value.trim().as_bytes();
    let (head, rest) = text.split_at_checked(LENGTH)?;
    if head[2] != b'-' || head[35] != b'-' || head[52] != b'-' {
        return None;
    }
    let version = lower_hex(&head[..2])?;
    let extended = !rest.is_empty();
    if version == 0xff || (extended && (version == 0 || rest[0] != b'-')) {
        return None;
    }
    let trace = lower_hex(&head[3..35]).filter(|id| *id != 0)?;
    let span = lower_hex(&head[36..52]).filter(|id| *id != 0)?;
    let flags = u8::try_from(lower_hex(&head[53..])?).ok()? & TraceFlags::SAMPLED.to_u8();
    Some((
        TraceId::from_bytes(trace.to_be_bytes()),
        SpanId::from_bytes(u64::try_from(span).ok()?.to_be_bytes()),
        TraceFlags::new(flags),
    ))
}

/// The number lower-case hex `digits` (at most 32) write; `None` for any other byte.
fn lower_hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |number, &digit| {
        let value = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return None,
        };
        Some(number << 4 | u128::from(value))
    })
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
        let plain_later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(remote_span(plain_later).is_some(), "or none");
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "garbage",
        ] {
            assert!(remote_span(bad).is_none(), "{bad}");
        }
    }
}
