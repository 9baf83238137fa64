//! What operators see: Prometheus [`metrics`] (request counts and latencies, with the
//! dependencies' own in [`dependency_metrics`] and the database pool's in [`db_pool`], and
//! gauges read at scrape time in [`collectors`] and [`process`]), logs and OpenTelemetry
//! traces ([`telemetry`], with each request's server span in [`server_span`], sent by
//! [`span_export`], and the request every log line names in [`log_context`]), the recent past
//! the status page draws ([`history`]), and `Server-Timing` ([`timing`]).

pub mod collectors;
pub mod db_pool;
pub mod dependency_metrics;
pub mod history;
pub mod log_context;
pub mod metrics;
pub mod process;
pub mod server_span;
pub mod span_export;
pub mod telemetry;
pub mod timing;

/// `work`, to run in a task of its own on behalf of the current request: it keeps the
/// request's span, its log labels (with its server span) and its `Server-Timing` bookkeeping.
pub fn carried<F: std::future::Future>(work: F) -> impl std::future::Future<Output = F::Output> {
    use tracing::Instrument as _;
    timing::carried(log_context::carried(work)).in_current_span()
}
