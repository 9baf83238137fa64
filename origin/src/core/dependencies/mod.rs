//! What the core calls outside the process, each call bounded by a timeout and guarded by a
//! circuit breaker ([`guarded`]), idempotent ones retried within a budget ([`retry`]): the
//! [`database`], outbound HTTP ([`outbound`]) and the edge's purge endpoint ([`edge_purge`]).
//! Redis is called by the cache's shared level (`crate::core::cache`) and by the rate limiter.

pub mod breaker;
pub mod database;
pub mod edge_purge;
pub mod guarded;
pub mod outbound;
pub mod retry;
