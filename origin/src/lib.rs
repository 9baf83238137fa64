//! Rampart's origin: an axum server that the edge forwards cache misses to.
//!
//! Two halves, kept apart:
//! - [`core`] is reusable by any axum application: the shared caching policy applied to every
//!   response, the two-level response cache with tag invalidation and warming, the database
//!   handle (SQLite or PostgreSQL, timed, counted, behind a circuit breaker, reads retried
//!   within a budget), a guarded outbound HTTP client, rate limits, load shedding, compression,
//!   the error model and its extractors, Prometheus metrics, OpenTelemetry traces and graceful
//!   shutdown. It never names the application's resources.
//! - [`app`] is the application served out of the box: the task tracker's API, pages and store.
//!
//! [`server::run`] assembles both and serves until a shutdown signal; tests call it on port 0.
//! [`shield::run`] serves the core in front of other applications instead of [`app`].

pub mod app;
pub mod config;
pub mod core;
pub mod server;
pub mod shield;
