//! What the core calls outside the process, each call bounded by a timeout and guarded by a
//! circuit breaker ([`guarded`]), idempotent ones retried within a budget ([`retry`]): the
//! [`database`], outbound HTTP ([`outbound`]), the edge's purge endpoint ([`edge_purge`]),
//! Cloudflare's purge API ([`cloudflare_purge`]) and signed webhook deliveries ([`webhook`]).
//! Redis, on one node or a cluster, in the clear or over TLS ([`redis`]), serves the cache's
//! shared level (`crate::core::cache`), the rate limiter and the job store.

pub mod breaker;
pub mod cloudflare_purge;
pub mod database;
pub mod edge_purge;
pub mod guarded;
pub mod outbound;
pub mod recovery_probe;
pub mod redis;
pub mod retry;
pub mod webhook;
