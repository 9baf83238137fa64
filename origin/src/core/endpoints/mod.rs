//! The routes the core adds to every application: health and readiness ([`health`]), the
//! operator's admin API ([`admin`]) and `GET /metrics` ([`metrics`]).

pub mod admin;
pub mod health;
pub mod metrics;
