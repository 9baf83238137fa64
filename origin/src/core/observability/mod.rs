//! What operators see: Prometheus [`metrics`] (request counts and latencies, with the
//! dependencies' own in [`dependency_metrics`] and the database pool's in [`db_pool`], and
//! gauges read at scrape time in [`collectors`] and [`process`]), logs and OpenTelemetry
//! traces ([`telemetry`]), the recent past the status page draws ([`history`]), and
//! `Server-Timing` ([`timing`]).

pub mod collectors;
pub mod db_pool;
pub mod dependency_metrics;
pub mod history;
pub mod metrics;
pub mod process;
pub mod telemetry;
pub mod timing;
