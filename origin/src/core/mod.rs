//! The reusable origin core: layers any axum application can wrap itself in.

pub mod admin;
pub mod cache;
pub mod errors;
pub mod metrics;
pub mod policy_headers;
pub mod response_cache;
pub mod shutdown;
