//! What operators see: Prometheus [`metrics`] (request counts and latencies, with the
//! dependencies' own in [`dependency_metrics`] and gauges read at scrape time in
//! [`collectors`]), and logs and OpenTelemetry traces ([`telemetry`]).

pub mod collectors;
pub mod dependency_metrics;
pub mod metrics;
pub mod telemetry;
