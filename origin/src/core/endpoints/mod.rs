//! The routes the core adds to every application: health and readiness ([`health`]), the
//! operator's admin API ([`admin`], [`jobs`], [`cache_ops`]), `GET /metrics` ([`metrics`]) and
//! the operator's status page ([`status`], drawn by [`status_page`], [`status_charts`] and
//! [`status_format`]).

pub mod admin;
pub mod cache_ops;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod status;
pub mod status_charts;
pub mod status_format;
pub mod status_page;
