//! The routes the core adds to every application: health and readiness ([`health`]), the
//! operator's admin API ([`admin`], [`jobs`], [`cache_ops`]) and `GET /metrics` ([`metrics`]).

pub mod admin;
pub mod cache_ops;
pub mod health;
pub mod jobs;
pub mod metrics;
