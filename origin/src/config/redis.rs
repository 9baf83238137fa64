//! Redis, the shared cache level and rate-limit store: where it is, the prefix of this
//! deployment's keys, and how long a call may take.

use std::time::Duration;

use super::read;
use super::{ConfigError, Range};
use crate::core::dependencies::database::redact;

/// `REDIS_URL`: the shared cache level; unset runs on the in-process level alone.
pub const ENV_REDIS_URL: &str = "REDIS_URL";
/// `REDIS_KEY_PREFIX`: prefix of every Redis key and channel of this deployment.
pub const ENV_REDIS_KEY_PREFIX: &str = "REDIS_KEY_PREFIX";
/// `REDIS_TIMEOUT_MS`: bound on every Redis call.
pub const ENV_REDIS_TIMEOUT_MS: &str = "REDIS_TIMEOUT_MS";

/// Every variable this concern reads.
pub const VARIABLES: &[&str] = &[ENV_REDIS_URL, ENV_REDIS_KEY_PREFIX, ENV_REDIS_TIMEOUT_MS];

/// Prefixes of up to 256 characters; empty shares the keyspace with everything else.
pub const REDIS_KEY_PREFIX: Range = Range::new(0, 256);
/// From 1 ms to a minute: Redis is skipped when slow, so a long bound only delays requests.
pub const REDIS_TIMEOUT_MS: Range = Range::new(1, 60_000);
/// What `REDIS_URL` accepts.
pub const REDIS_URL: &str =
    "a Redis URL such as redis://127.0.0.1:6379 or redis://:password@host:6379/0";

/// The shared cache level and rate-limit store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// The shared cache level, if any.
    pub url: Option<String>,
    /// Prefix of Redis keys and channels.
    pub key_prefix: String,
    /// Bound on every Redis call.
    pub timeout: Duration,
}

impl Default for RedisConfig {
    /// No Redis; keys under `rampart:`; 250 ms per call.
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "rampart:".to_owned(),
            timeout: Duration::from_millis(250),
        }
    }
}

impl RedisConfig {
    /// Reads this concern's variables from `source`; unset ones keep their defaults.
    pub fn from_source(source: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let config = Self {
            url: read::trimmed(source, ENV_REDIS_URL).or(defaults.url),
            // Set but empty is an empty prefix, as it always was.
            key_prefix: source(ENV_REDIS_KEY_PREFIX).unwrap_or(defaults.key_prefix),
            timeout: read::millis(source, ENV_REDIS_TIMEOUT_MS, REDIS_TIMEOUT_MS)?
                .unwrap_or(defaults.timeout),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every value against what its variable accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            if ::redis::Client::open(url.as_str()).is_err() {
                return Err(read::malformed(ENV_REDIS_URL, &redact(url), REDIS_URL));
            }
        }
        read::check_text(ENV_REDIS_KEY_PREFIX, &self.key_prefix, REDIS_KEY_PREFIX)?;
        REDIS_TIMEOUT_MS.check_millis(ENV_REDIS_TIMEOUT_MS, self.timeout)
    }
}
