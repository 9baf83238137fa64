//! The layers a request passes through, outermost first: [`compression`], then the
//! [`pipeline`] (request id, [`policy_headers`], [`rate_limit`], [`response_cache`],
//! [`admission`], metrics and log) around the application's router; [`response_freshness`]
//! judges responses whose own headers say how long they are kept. See
//! [`crate::core::stack`] for the order and why.

pub mod admission;
pub mod compression;
pub mod pipeline;
pub mod policy_headers;
pub mod rate_limit;
pub mod request_id;
pub mod response_cache;
pub mod response_freshness;
