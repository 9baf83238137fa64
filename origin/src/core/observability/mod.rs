//! What operators see: Prometheus [`metrics`] (request counts and latencies, with the
//! dependencies' own in [`dependency_metrics`] and gauges read at scrape time in
//! [`collectors`]), logs and OpenTelemetry traces ([`telemetry`]), and the recent past the
//! status page draws ([`history`]).

pub mod collectors;
pub mod dependency_metrics;
pub mod history;
pub mod metrics;
pub mod telemetry;
