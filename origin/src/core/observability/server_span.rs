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

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use axum::response::Response;
use opentelemetry::trace::{
    SamplingDecision, SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId,
    TraceState,
};
use opentelemetry::Context;
use opentelemetry_sdk::trace::{IdGenerator, ShouldSample};

use super::span_export::{Finished, SpanExport};
use crate::core::http::header_values::standard_method;
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
    /// The sampler's decision on a server span named after `method` in `trace_id` under
    /// `parent`: its trace flags and the `tracestate` it carries on.
    fn decide(
        &self,
        parent: Option<&SpanContext>,
        trace_id: TraceId,
        method: &Method,
    ) -> (TraceFlags, TraceState) {
        if let Some(parent) = parent.filter(|_| self.follows_parents) {
            let flags = TraceFlags::default().with_sampled(parent.is_sampled());
            return (flags, parent.trace_state().clone());
        }
        let context = parent.map_or_else(Context::new, |parent| {
            Context::new().with_remote_span_context(parent.clone())
        });
        let name = method_name(method);
        let result = self.sampler.should_sample(
            Some(&context),
            trace_id,
            &name,
            &SpanKind::Server,
            &[],
            &[],
        );
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
}

impl ServerSpan {
    /// Starts the span of a request made with `method`, child of the caller's `traceparent`
    /// when it sent one; `None` when traces are not exported.
    pub fn start(method: &Method, headers: &HeaderMap) -> Option<Self> {
        let spans = SPANS.get()?;
        let parent = parent_of(headers);
        let trace_id = parent
            .as_ref()
            .map_or_else(|| spans.ids.new_trace_id(), SpanContext::trace_id);
        let (flags, trace_state) = spans.decide(parent.as_ref(), trace_id, method);
        let own = SpanContext::new(trace_id, spans.ids.new_span_id(), flags, false, trace_state);
        Some(Self {
            own,
            parent: parent
                .as_ref()
                .map_or(SpanId::INVALID, SpanContext::span_id),
            remote_parent: parent.is_some(),
            start: SystemTime::now(),
        })
    }

    /// The span's context: the parent of every span made while the request is served.
    pub fn span_context(&self) -> SpanContext {
        self.own.clone()
    }

    /// Ends the span of the request for `target` with what `response` says (the route and the
    /// status) and, when it is sampled, hands it to the exporter.
    pub fn end(self, method: &Method, target: &Uri, request_id: &HeaderValue, response: &Response) {
        let own = self.own;
        let Some(spans) = SPANS.get().filter(|_| own.is_sampled()) else {
            return;
        };
        let route = response.extensions().get::<RouteTemplate>();
        spans.export.record(&Finished {
            trace_id: own.trace_id(),
            span_id: own.span_id(),
            parent: self.parent,
            remote_parent: self.remote_parent,
            trace_state: own.trace_state().header(),
            start: self.start,
            end: SystemTime::now(),
            method: method.as_str(),
            path: target.path(),
            route: route.map(|RouteTemplate(route)| &**route),
            status: response.status().as_u16(),
            request_id: request_id.to_str().ok(),
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
    let remote = remote_span(headers.get(TRACEPARENT)?.as_bytes())?;
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
/// lengths, ids not all zeros. Read eight digits at a time: every request from the edge
/// carries one, traced or not.
pub(super) fn remote_span(value: &[u8]) -> Option<(TraceId, SpanId, TraceFlags)> {
    // `vv-{32 hex}-{16 hex}-ff`: the dashes sit at 2, 35 and 52.
    const LENGTH: usize = 55;
    let text = value.trim_ascii();
    let (head, rest) = text.split_at_checked(LENGTH)?;
    if head[2] != b'-' || head[35] != b'-' || head[52] != b'-' {
        return None;
    }
    let version = hex2(&head[..2])?;
    let extended = !rest.is_empty();
    if version == 0xff || (extended && (version == 0 || rest[0] != b'-')) {
        return None;
    }
    let trace = u128::from(hex16(&head[3..19])?) << 64 | u128::from(hex16(&head[19..35])?);
    let span = hex16(&head[36..52])?;
    if trace == 0 || span == 0 {
        return None;
    }
    let flags = hex2(&head[53..])? & TraceFlags::SAMPLED.to_u8();
    Some((
        TraceId::from_bytes(trace.to_be_bytes()),
        SpanId::from_bytes(span.to_be_bytes()),
        TraceFlags::new(flags),
    ))
}

/// The number 16 lower-case hex digits write.
fn hex16(digits: &[u8]) -> Option<u64> {
    let (high, low) = digits.split_first_chunk::<8>()?;
    let low = low.first_chunk::<8>()?;
    Some(u64::from(hex8(*high)?) << 32 | u64::from(hex8(*low)?))
}

/// The number two lower-case hex digits write.
fn hex2(digits: &[u8]) -> Option<u8> {
    let &[first, second] = digits else {
        return None;
    };
    let padded = [b'0', b'0', b'0', b'0', b'0', b'0', first, second];
    hex8(padded).map(|number| number as u8)
}

/// The number eight lower-case hex digits write, read as one 64-bit word (a byte per lane);
/// `None` when any byte is not such a digit.
fn hex8(digits: [u8; 8]) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    let word = u64::from_be_bytes(digits);
    // In a lane below 0x80, adding 0x80 - n sets the lane's high bit exactly when it is at
    // least n, and never carries into the next lane.
    let at_least = |n: u8| word.wrapping_add(ONES * u64::from(0x80 - n));
    let digit = at_least(b'0') & !at_least(b'9' + 1);
    let letter = at_least(b'a') & !at_least(b'f' + 1);
    if (digit | letter) & !word & HIGH != HIGH {
        return None;
    }
    // '0'..'9' keep their low nibble; 'a'..'f' (bit 6 set) add 9 to theirs.
    let nibbles = (word & (ONES * 0x0f)) + ((word >> 6) & ONES) * 9;
    let bytes = (nibbles | nibbles >> 4) & 0x00ff_00ff_00ff_00ff;
    let halves = (bytes | bytes >> 8) & 0x0000_ffff_0000_ffff;
    Some((halves | halves >> 16) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_digits_at_a_time_read_what_one_at_a_time_reads() {
        let alphabet = b"0123456789abcdefABCDEFgz/:`@ \x80\xb0\xe6\xff\x10";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200_000 {
            let mut digits = [0u8; 8];
            for digit in &mut digits {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Mostly valid digits, so that both answers are common.
                let pick = if state.is_multiple_of(4) {
                    state >> 8
                } else {
                    state >> 8 & 15
                };
                *digit = alphabet[(pick % alphabet.len() as u64) as usize];
            }
            let expected = digits
                .iter()
                .all(|d| d.is_ascii_digit() || (b'a'..=b'f').contains(d))
                .then(|| {
                    u32::from_str_radix(std::str::from_utf8(&digits).expect("hex is ASCII"), 16)
                        .expect("hex")
                });
            assert_eq!(hex8(digits), expected, "{digits:?}");
        }
        assert_eq!(hex8(*b"ffffffff"), Some(u32::MAX));
        assert_eq!(hex8(*b"00000000"), Some(0));
        assert_eq!(hex2(b"a"), None);
    }

    #[test]
    fn traceparents_are_parsed_as_w3c_says() {
        let parsed =
            remote_span("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".as_bytes())
                .expect("valid");
        assert_eq!(parsed.0.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.1.to_string(), "00f067aa0ba902b7");
        assert!(parsed.2.is_sampled());
        let unsampled =
            remote_span("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".as_bytes());
        assert!(!unsampled.expect("valid").2.is_sampled());
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert!(
            remote_span(later.as_bytes()).is_some(),
            "a later version may add fields"
        );
        let plain_later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(remote_span(plain_later.as_bytes()).is_some(), "or none");
        for half_zero in [
            "00-00000000000000000000000000000001-0000000000000001-01",
            "00-10000000000000000000000000000000-1000000000000000-01",
        ] {
            let (trace, span, _) = remote_span(half_zero.as_bytes()).expect(half_zero);
            assert_eq!(format!("00-{trace}-{span}-01"), half_zero);
        }
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
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6/3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902B7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\u{e9}",
            "garbage",
        ] {
            assert!(remote_span(bad.as_bytes()).is_none(), "{bad}");
        }
    }
}
