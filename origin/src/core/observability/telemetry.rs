//! Logs and traces: `tracing` lines (pretty or JSON, each naming the request it is about, see
//! [`super::log_context`]) and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, OpenTelemetry traces
//! exported over OTLP/HTTP: one server span per request ([`super::server_span`]), continuing the
//! W3C `traceparent` the edge (or any caller) sent, with client spans under it.
//!
//! The exporter follows the OpenTelemetry SDK's standard variables (`OTEL_SERVICE_NAME`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_SCHEDULE_DELAY`, …). Without an endpoint no span is
//! made at all, so requests pay nothing for tracing they do not use.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{Format, JsonFields};
use tracing_subscriber::layer::{Layer as _, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use super::log_context::{self, Shape, WithRequest};
use super::server_span;
use super::span_export::{Settings, SpanExport};

/// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL (`/v1/traces` is appended).
pub const ENV_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

static TRACING: AtomicBool = AtomicBool::new(false);

/// Whether request spans are exported.
pub fn enabled() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// The installed telemetry; [`Telemetry::shutdown`] flushes what is not exported yet.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    server_spans: Option<Arc<SpanExport>>,
}

/// Why traces could not be set up (logging still works).
#[derive(Debug, thiserror::Error)]
#[error("OTLP exporter: {0}")]
pub struct TelemetryError(String);

/// Installs the global subscriber: log lines in `format`, plus OTLP traces when configured.
/// Call it outside the async runtime (the exporter's HTTP client blocks on its own thread).
pub fn init(format: LogFormat) -> Result<Telemetry, TelemetryError> {
    let provider = match std::env::var(ENV_OTLP_ENDPOINT) {
        Ok(endpoint) if !endpoint.trim().is_empty() => Some(provider()?),
        _ => None,
    };
    let server_spans = match &provider {
        Some(_) => Some(server_spans()?),
        None => None,
    };
    // Traces take the origin's own spans whatever `RUST_LOG` says; `RUST_LOG` filters lines.
    // The spans carry what they were made with: no source locations, threads or busy time.
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("rampart-origin"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(Targets::new().with_target("origin", Level::INFO))
    });
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(otel);
    match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(WithRequest::new(Format::default().json(), Shape::Json))
                    .fmt_fields(JsonFields::new())
                    .with_filter(filter()),
            )
            .init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(WithRequest::new(
                        Format::default().with_ansi(std::io::stdout().is_terminal()),
                        Shape::Text,
                    ))
                    .with_filter(filter()),
            )
            .init(),
    }
    TRACING.store(provider.is_some(), Ordering::Relaxed);
    Ok(Telemetry {
        provider,
        server_spans,
    })
}

/// Starts the export of server spans and installs what makes them: the SDK's sampler and id
/// generator, as the environment configures them.
fn server_spans() -> Result<Arc<SpanExport>, TelemetryError> {
    let config = opentelemetry_sdk::trace::Config::default();
    let resource = resource()
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    let settings = Settings::from_env(resource).map_err(|e| TelemetryError(e.to_string()))?;
    let export = SpanExport::start(settings).map_err(|e| TelemetryError(e.to_string()))?;
    let export = Arc::new(export);
    server_span::install(server_span::Spans {
        sampler: config.sampler,
        follows_parents: follows_parents(std::env::var("OTEL_TRACES_SAMPLER").ok().as_deref()),
        ids: config.id_generator,
        export: Arc::clone(&export),
    });
    Ok(export)
}

/// Whether the sampler `OTEL_TRACES_SAMPLER` names follows a parent's decision: every one but
/// the three that ignore parents (the SDK's default, the `parentbased_*` ones and the names it
/// falls back to its default for all do).
fn follows_parents(sampler: Option<&str>) -> bool {
    !matches!(
        sampler.map(str::trim),
        Some("always_on" | "always_off" | "traceidratio")
    )
}

/// The resource every span is sent with: the service's name (`OTEL_SERVICE_NAME`) and version,
/// and what `OTEL_RESOURCE_ATTRIBUTES` adds.
fn resource() -> Resource {
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "rampart-origin".into());
    Resource::builder()
        .with_service_name(service)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build()
}

fn provider() -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| TelemetryError(e.to_string()))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build())
}

impl Telemetry {
    /// Exports the spans still buffered and stops the exporter (blocks; call it after the
    /// runtime stopped).
    pub fn shutdown(self) {
        if let Some(server_spans) = self.server_spans {
            server_spans.shutdown();
        }
        if let Some(provider) = self.provider {
            if let Err(error) = provider.shutdown() {
                eprintln!("origin: flushing traces failed: {error}");
            }
        }
    }
}

/// The current span's context as a `traceparent` value, when traces are exported and a span is
/// current: what a job carries to link its run to the request that enqueued it.
pub fn current_traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&current_context(), &mut carrier);
    carrier.remove("traceparent")
}

/// The span of one run of a job: a trace of its own (a run may happen long after, and many
/// times), linked to the span that enqueued it (`enqueued_by`, a `traceparent`). Free when
/// traces are off.
pub fn job_span(queue: &str, kind: &str, id: &str, enqueued_by: Option<&str>) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "job",
        otel.name = %format!("{queue} {kind}"),
        otel.kind = "consumer",
        messaging.system = "redis",
        messaging.destination.name = %queue,
        messaging.message.id = %id,
    );
    let _ = span.set_parent(opentelemetry::Context::new());
    if let Some(traceparent) = enqueued_by {
        let carrier =
            std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        let context = TraceContextPropagator::new().extract(&carrier);
        let enqueuer = context.span().span_context().clone();
        if enqueuer.is_valid() {
            span.add_link(enqueuer);
        }
    }
    span
}

/// The OpenTelemetry context of the code running now: the current `tracing` span's, or else
/// the request's server span's (see [`super::server_span`]).
fn current_context() -> opentelemetry::Context {
    let context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        return context;
    }
    match log_context::server_span() {
        Some(server) => opentelemetry::Context::new().with_remote_span_context(server),
        None => opentelemetry::Context::current(),
    }
}

/// `span`, child of the current span or else of the request's server span.
fn under_current(span: tracing::Span) -> tracing::Span {
    let _ = span.set_parent(current_context());
    span
}

/// A client span for one call to a dependency (a database query, a Redis call), child of the
/// current span: named `<operation> <target>` as OpenTelemetry's database conventions say.
/// Free when traces are off.
pub fn dependency_span(system: &'static str, operation: &str, target: &str) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    under_current(tracing::info_span!(
        "dependency",
        otel.name = %format!("{operation} {target}"),
        otel.kind = "client",
        db.system.name = system,
        db.operation.name = %operation,
        db.collection.name = %target,
    ))
}

/// A client span for one outbound HTTP request. Free when traces are off.
pub fn outbound_span(method: &'static str, url: &str) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    under_current(tracing::info_span!(
        "outbound",
        otel.name = method,
        otel.kind = "client",
        http.request.method = method,
        url.full = %url,
        http.response.status_code = tracing::field::Empty,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_samplers_that_ignore_parents_are_asked_about_a_child() {
        for follows in [
            None,
            Some(""),
            Some("parentbased_traceidratio"),
            Some("xray"),
        ] {
            assert!(follows_parents(follows), "{follows:?}");
        }
        for ignores in ["always_on", "always_off", "traceidratio"] {
            assert!(!follows_parents(Some(ignores)), "{ignores}");
        }
    }
}
