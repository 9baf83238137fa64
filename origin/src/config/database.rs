//! The application's database: which one, how many connections, how long a query may take,
//! and what an empty one is filled with.

use std::time::Duration;

use super::read;
use super::{ConfigError, Range};
use crate::core::dependencies::database::{redact, Backend, DbSettings};

/// `DATABASE_URL`: `sqlite:path` (default) or `postgres://…`.
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";
/// `DATABASE_POOL_SIZE`: most open connections.
pub const ENV_DATABASE_POOL_SIZE: &str = "DATABASE_POOL_SIZE";
/// `DATABASE_QUERY_TIMEOUT_MS`: bound on every query and on waiting for a connection.
pub const ENV_DATABASE_QUERY_TIMEOUT_MS: &str = "DATABASE_QUERY_TIMEOUT_MS";
/// `DEMO_DATA`: what an empty database is filled with: `full`, `small` or `none`.
pub const ENV_DEMO_DATA: &str = "DEMO_DATA";

/// Every variable this concern reads.
pub const VARIABLES: &[&str] = &[
    ENV_DATABASE_URL,
    ENV_DATABASE_POOL_SIZE,
    ENV_DATABASE_QUERY_TIMEOUT_MS,
    ENV_DEMO_DATA,
];

/// From 1 to 1000 connections.
pub const DATABASE_POOL_SIZE: Range = Range::new(1, 1000);
/// From 1 ms to an hour.
pub const DATABASE_QUERY_TIMEOUT_MS: Range = Range::new(1, 3_600_000);
/// What `DATABASE_URL` accepts.
pub const DATABASE_URL: &str = "sqlite:<file> or postgres://user@host/database";
/// What `DEMO_DATA` accepts.
pub const DEMO_DATA: &[&str] = &["full", "small", "none"];

/// What an empty database is filled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoData {
    /// 1,000 tasks, 200 users, 20,000 comments, 100,000 events, 3 images.
    Full,
    /// A few of each, for tests.
    Small,
    /// Nothing.
    None,
}

/// The application's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// The database URL.
    pub url: String,
    /// Most open database connections.
    pub pool_size: u32,
    /// Bound on each query and on waiting for a connection.
    pub query_timeout: Duration,
    /// What an empty database is filled with.
    pub demo_data: DemoData,
}

impl Default for DatabaseConfig {
    /// An SQLite file created on first start, 10 connections, 5 s per query, the full demo data.
    fn default() -> Self {
        Self {
            url: "sqlite:data/rampart.db".to_owned(),
            pool_size: 10,
            query_timeout: Duration::from_secs(5),
            demo_data: DemoData::Full,
        }
    }
}

impl DatabaseConfig {
    /// Reads this concern's variables from `source`; unset ones keep their defaults.
    pub fn from_source(source: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let config = Self {
            url: read::trimmed(source, ENV_DATABASE_URL).unwrap_or(defaults.url),
            pool_size: read::whole(source, ENV_DATABASE_POOL_SIZE, DATABASE_POOL_SIZE)?
                .unwrap_or(defaults.pool_size),
            query_timeout: read::millis(
                source,
                ENV_DATABASE_QUERY_TIMEOUT_MS,
                DATABASE_QUERY_TIMEOUT_MS,
            )?
            .unwrap_or(defaults.query_timeout),
            demo_data: read::choice(source, ENV_DEMO_DATA, DEMO_DATA, |word| match word {
                "full" => Some(DemoData::Full),
                "small" => Some(DemoData::Small),
                "none" => Some(DemoData::None),
                _ => None,
            })?
            .unwrap_or(defaults.demo_data),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every value against what its variable accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if Backend::of(&self.url).is_err() {
            let shown = redact(&self.url);
            return Err(read::malformed(ENV_DATABASE_URL, &shown, DATABASE_URL));
        }
        DATABASE_POOL_SIZE.check(ENV_DATABASE_POOL_SIZE, self.pool_size.into())?;
        DATABASE_QUERY_TIMEOUT_MS.check_millis(ENV_DATABASE_QUERY_TIMEOUT_MS, self.query_timeout)
    }

    /// The settings the database handle is opened with.
    pub fn settings(&self) -> DbSettings {
        DbSettings {
            url: self.url.clone(),
            pool_size: self.pool_size,
            query_timeout: self.query_timeout,
        }
    }
}
