//! The reusable origin core: layers any axum application can wrap itself in.

pub mod admin;
pub mod admission;
pub mod breaker;
pub mod cache;
pub mod client;
pub mod compression;
pub mod database;
pub mod edge_purge;
pub mod errors;
pub mod extract;
pub mod header_values;
pub mod health;
pub mod listener;
pub mod metrics;
pub mod outbound;
pub mod pagination;
pub mod pipeline;
pub mod policy_headers;
pub mod rate_limit;
pub mod response_cache;
pub mod retry;
pub mod shutdown;
pub mod telemetry;
pub mod warm;
