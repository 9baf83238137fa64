//! The reusable origin core: everything any axum application gets by being wrapped in it. It
//! never names the application's routes or resources; the application hands it what it needs
//! (its router, its database, per-rule cache lifetimes).
//!
//! | where | what |
//! | --- | --- |
//! | [`stack`] | [`Core`](stack::Core) and the one function that assembles every layer, in request order |
//! | [`layers`] | the layers a request passes: compression, the pipeline (request id, policy, rate limit, cache, admission, metrics, log) |
//! | [`cache`] | the two-level response cache (in-process + Redis), single flight, tags |
//! | [`dependencies`] | database, outbound HTTP, edge purge: each call timed, guarded by a breaker, retried within a budget |
//! | [`endpoints`] | routes the core adds: health, admin, metrics, the status page |
//! | [`observability`] | Prometheus metrics, logs, OpenTelemetry traces, the status page's history |
//! | [`serving`] | the listener, shutdown |
//! | [`jobs`] | background jobs on Redis (or in process): refreshes, warm-ups, purges, clean-up, and the application's own |
//! | [`http`] | the error model, extractors, pagination, client address, header values |
//! | [`service`], [`route`] | plumbing: what a wrapped service is; which route answered |

pub mod cache;
pub mod dependencies;
pub mod endpoints;
pub mod http;
pub mod jobs;
pub mod layers;
pub mod observability;
pub mod route;
pub mod service;
pub mod serving;
pub mod stack;
