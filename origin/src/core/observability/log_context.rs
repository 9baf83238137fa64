//! The request a log line is about: every line logged while a request is served (in the
//! request's own task, or in a task that carries it, such as a cache load) names the request's
//! `request_id` and `trace_id`, whether or not traces are exported.
//!
//! The ids live in a task-local set by the pipeline (with, when traces are exported, the
//! server span's context, the parent of the spans made while the request is served); [`WithRequest`] wraps the log formatter and
//! adds them to each line: as top-level fields of a JSON line, as `request_id=… trace_id=…` at
//! the end of a pretty one. Requests that log nothing pay one task-local scope, no formatting.

use std::fmt::{self, Write as _};
use std::future::Future;

use axum::http::HeaderValue;
use futures::future::Either;
use opentelemetry::trace::SpanContext;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::server_span::remote_span;

tokio::task_local! {
    static REQUEST: Labels;
}

/// What names a request in its log lines.
#[derive(Debug, Clone)]
pub struct Labels {
    request_id: HeaderValue,
    trace: Option<Trace>,
}

/// Where a request's trace id comes from.
#[derive(Debug, Clone)]
enum Trace {
    /// The server span's, when traces are exported.
    Exported(SpanContext),
    /// The caller's `traceparent`, read only when a line is written.
    Given(HeaderValue),
}

impl Labels {
    /// The labels of a request with id `request_id`, in the trace of `exported` (the server
    /// span's context, when traces are exported) or else the one `traceparent` names.
    pub fn new(
        request_id: HeaderValue,
        exported: Option<SpanContext>,
        traceparent: Option<HeaderValue>,
    ) -> Self {
        let trace = match exported {
            Some(id) => Some(Trace::Exported(id)),
            None => traceparent.map(Trace::Given),
        };
        Self { request_id, trace }
    }

    /// The request id, as logged.
    pub fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or("-")
    }

    /// The trace id as 32 lower-case hex digits; empty when the request is in no trace.
    pub fn trace_id(&self) -> String {
        match &self.trace {
            Some(Trace::Exported(span)) => span.trace_id().to_string(),
            Some(Trace::Given(traceparent)) => trace_id_of(traceparent).unwrap_or_default(),
            None => String::new(),
        }
    }
}

/// The trace id a W3C `traceparent` names, when it is a valid one.
pub fn trace_id_of(traceparent: &HeaderValue) -> Option<String> {
    let (trace_id, _, _) = remote_span(traceparent.as_bytes())?;
    Some(trace_id.to_string())
}

/// Runs `work` as the request `labels` name. A plain function rather than an `async fn`, so
/// that the future holds `work` once (an `async fn` would keep its argument beside the scoped
/// future it makes of it, doubling the size a request's future moves around).
pub fn scope<F: Future>(labels: Labels, work: F) -> impl Future<Output = F::Output> {
    REQUEST.scope(labels, work)
}

/// `work`, to run in a task of its own, still logging as the current request. Holds `work`
/// once, as [`scope`] does.
pub fn carried<F: Future>(work: F) -> impl Future<Output = F::Output> {
    match REQUEST.try_with(Labels::clone) {
        Ok(labels) => Either::Left(REQUEST.scope(labels, work)),
        Err(_) => Either::Right(work),
    }
}

/// The current request's labels, outside a request `None`.
pub fn current() -> Option<Labels> {
    REQUEST.try_with(Labels::clone).ok()
}

/// The current request's server span, when traces are exported.
pub fn server_span() -> Option<SpanContext> {
    REQUEST
        .try_with(|labels| match &labels.trace {
            Some(Trace::Exported(span)) => Some(span.clone()),
            _ => None,
        })
        .ok()
        .flatten()
}

/// How the wrapped formatter's lines end, and so where the labels go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One JSON object per line: the labels become top-level fields.
    Json,
    /// Human-readable text: the labels are appended as `key=value`.
    Text,
}

/// A log formatter that adds the current request's labels to the lines of `F`.
#[derive(Debug)]
pub struct WithRequest<F> {
    inner: F,
    shape: Shape,
}

impl<F> WithRequest<F> {
    /// Wraps `inner`, whose lines have the given `shape`.
    pub fn new(inner: F, shape: Shape) -> Self {
        Self { inner, shape }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithRequest<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(labels) = current() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&labelled(&line, &labels, self.shape))
    }
}

/// `line` with `labels` added in the place `shape` gives them.
fn labelled(line: &str, labels: &Labels, shape: Shape) -> String {
    let body = line.trim_end_matches('\n');
    let mut out = String::with_capacity(line.len() + 96);
    match shape {
        Shape::Json => {
            let Some(open) = body.strip_suffix('}') else {
                return line.to_owned();
            };
            let _ = write!(
                out,
                "{open},\"request_id\":{},\"trace_id\":{}}}",
                json_string(labels.request_id()),
                json_string(&labels.trace_id()),
            );
        }
        Shape::Text => {
            let _ = write!(
                out,
                "{body} request_id={} trace_id={}",
                labels.request_id(),
                labels.trace_id()
            );
        }
    }
    out.push('\n');
    out
}

fn json_string(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(traceparent: Option<&'static str>) -> Labels {
        Labels::new(
            HeaderValue::from_static("req-1"),
            None,
            traceparent.map(HeaderValue::from_static),
        )
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn json_lines_get_top_level_fields() {
        let line = "{\"level\":\"WARN\",\"fields\":{\"message\":\"slow\"}}\n";
        let out = labelled(line, &labels(Some(PARENT)), Shape::Json);
        let value: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        assert_eq!(value["request_id"], "req-1");
        assert_eq!(value["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(value["fields"]["message"], "slow");
        assert!(out.ends_with("}\n"));
    }

    #[test]
    fn text_lines_end_with_the_labels() {
        let out = labelled("WARN origin: slow\n", &labels(None), Shape::Text);
        assert_eq!(out, "WARN origin: slow request_id=req-1 trace_id=\n");
    }

    #[test]
    fn only_valid_traceparents_name_a_trace() {
        let id = |value: &'static str| trace_id_of(&HeaderValue::from_static(value));
        assert_eq!(
            id(PARENT).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            id("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(
            id("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(id("garbage"), None);
    }

    #[tokio::test]
    async fn carried_work_logs_as_the_request() {
        let seen = scope(labels(None), async {
            tokio::spawn(carried(async {
                current().map(|l| l.request_id().to_owned())
            }))
            .await
            .expect("joined")
        })
        .await;
        assert_eq!(seen.as_deref(), Some("req-1"));
        assert!(current().is_none());
    }
}
