//! Origin configuration, one struct per concern, read from the environment through a
//! replaceable source (tests pass a map).
//!
//! Each concern ([`ListenerConfig`], [`CacheConfig`], [`RedisConfig`], [`DatabaseConfig`],
//! [`ResilienceConfig`], [`ApplicationConfig`], [`JobsConfig`], [`StatusConfig`],
//! [`ShieldConfig`]) writes its defaults once, in `Default`, reads its
//! variables with `from_source`, and checks itself with `validate`. A value that does not parse,
//! or parses to something outside the range its variable accepts, is a [`ConfigError`] naming
//! the variable, the value and what is accepted (`DATABASE_POOL_SIZE=0: must be between 1 and
//! 1000`); nothing is clamped into range silently. An empty value is the same as an unset one,
//! except where the README's configuration table says otherwise.

pub mod application;
pub mod cache;
pub mod database;
pub mod jobs;
pub mod listener;
mod read;
pub mod redis;
pub mod resilience;
pub mod shield;
pub mod status;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use application::{ApplicationConfig, EdgePurgeTarget};
pub use cache::CacheConfig;
pub use database::{DatabaseConfig, DemoData};
pub use jobs::JobsConfig;
pub use listener::ListenerConfig;
pub use redis::RedisConfig;
pub use resilience::ResilienceConfig;
pub use shield::ShieldConfig;
pub use status::StatusConfig;

/// The origin's settings, by concern.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// Listening, connection limits and logging.
    pub listener: ListenerConfig,
    /// The response cache.
    pub cache: CacheConfig,
    /// The shared cache level and rate-limit store.
    pub redis: RedisConfig,
    /// The application's database.
    pub database: DatabaseConfig,
    /// Breakers, retries, admission, rate limits, outbound calls and edge trust.
    pub resilience: ResilienceConfig,
    /// What the application served out of the box reads.
    pub application: ApplicationConfig,
    /// Background jobs.
    pub jobs: JobsConfig,
    /// The operator's status page.
    pub status: StatusConfig,
    /// Shield mode: the upstream applications proxied to, when set.
    pub shield: ShieldConfig,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(|name| std::env::var(name).ok())
    }

    /// Reads the configuration from `source` (tests pass a map); the result is valid.
    pub fn from_source(source: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let config = Self {
            listener: ListenerConfig::from_source(&source)?,
            cache: CacheConfig::from_source(&source)?,
            redis: RedisConfig::from_source(&source)?,
            database: DatabaseConfig::from_source(&source)?,
            resilience: ResilienceConfig::from_source(&source)?,
            application: ApplicationConfig::from_source(&source)?,
            jobs: JobsConfig::from_source(&source)?,
            status: StatusConfig::from_source(&source)?,
            shield: ShieldConfig::from_source(&source)?,
        };
        let mut config = config;
        // Jobs back off as every other retry does; their attempts and longest wait are their own.
        config.jobs.settings.retry.initial_delay = config.resilience.retry.initial_delay;
        config.jobs.settings.retry.factor = config.resilience.retry.factor;
        config.validate()?;
        Ok(config)
    }

    /// Checks every concern: the first value outside what its variable accepts is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listener.validate()?;
        self.cache.validate()?;
        self.redis.validate()?;
        self.database.validate()?;
        self.resilience.validate()?;
        self.application.validate()?;
        self.jobs.validate()?;
        self.status.validate()?;
        self.shield.validate()
    }

    /// Every environment variable the origin's configuration reads.
    pub fn variables() -> impl Iterator<Item = &'static str> {
        [
            listener::VARIABLES,
            cache::VARIABLES,
            redis::VARIABLES,
            database::VARIABLES,
            resilience::VARIABLES,
            application::VARIABLES,
            jobs::VARIABLES,
            status::VARIABLES,
            shield::VARIABLES,
        ]
        .into_iter()
        .flatten()
        .copied()
    }
}

/// Bad configuration: the variable at fault, its value, and what it accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{variable}={value}: {problem}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// Its value as shown: secrets are not repeated, URLs lose their password.
    pub value: String,
    /// What is wrong with it, and what would be accepted.
    pub problem: Problem,
}

impl ConfigError {
    /// `variable`'s `value` is refused for `problem`.
    pub fn new(variable: &'static str, value: impl Into<String>, problem: Problem) -> Self {
        Self {
            variable,
            value: value.into(),
            problem,
        }
    }
}

/// Why a value is refused; each says what the variable accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// Not a whole number.
    #[error("must be a whole number between {} and {}", .0.min, .0.max)]
    NotANumber(Range),
    /// A whole number outside the range.
    #[error("must be between {} and {}", .0.min, .0.max)]
    OutOfRange(Range),
    /// Within the range but not a multiple of `step`.
    #[error("must be a multiple of {step} between {} and {}", .range.min, .range.max)]
    NotAMultiple {
        /// The granularity the value is used at.
        step: u64,
        /// The accepted range.
        range: Range,
    },
    /// Larger than another variable's value, which bounds it.
    #[error("must be between {min} and {other} ({max})")]
    AboveOther {
        /// The smallest accepted value.
        min: u64,
        /// The variable whose value is the largest accepted.
        other: &'static str,
        /// That value.
        max: u64,
    },
    /// Not a number in a range of decimals.
    #[error("must be a number between {min} and {max}")]
    NotInDecimalRange {
        /// The smallest accepted value.
        min: f64,
        /// The largest accepted value.
        max: f64,
    },
    /// Not one of the accepted words.
    #[error("must be one of {}", .0.join(", "))]
    NotOneOf(&'static [&'static str]),
    /// Text of a length outside `.0`, or with spaces, control or non-ASCII characters.
    #[error("must be {} to {} visible ASCII characters (no spaces)", .0.min, .0.max)]
    NotVisibleText(Range),
    /// Not of the accepted form, which `expected` describes.
    #[error("must be {expected}")]
    Malformed {
        /// The accepted form.
        expected: &'static str,
    },
    /// Well formed, but unusable for `reason` (a file that cannot be read, settings that
    /// contradict each other).
    #[error("must be {expected} ({reason})")]
    Unusable {
        /// What would be accepted.
        expected: &'static str,
        /// Why this value is not.
        reason: String,
    },
    /// `rule=milliseconds` pairs badly written or with a duration outside `.0`.
    #[error("must be rule=milliseconds pairs separated by commas, each between {} and {}", .0.min, .0.max)]
    NotRuleTimeouts(Range),
    /// A rule name the embedded policy does not have.
    #[error("must be pairs naming rules of the policy, one of {}; none is named {rule:?}", .known.join(", "))]
    UnknownRule {
        /// The unknown name.
        rule: String,
        /// The policy's rule names.
        known: Vec<String>,
    },
}

/// The whole numbers a variable accepts, in its own unit (bytes, milliseconds, seconds, …),
/// bounds included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The smallest accepted value.
    pub min: u64,
    /// The largest accepted value.
    pub max: u64,
}

impl Range {
    /// `min..=max`.
    pub const fn new(min: u64, max: u64) -> Self {
        Self { min, max }
    }

    /// `value` of `variable`, refused unless within the range.
    pub fn check(self, variable: &'static str, value: u64) -> Result<(), ConfigError> {
        if (self.min..=self.max).contains(&value) {
            Ok(())
        } else {
            Err(ConfigError::new(
                variable,
                value.to_string(),
                Problem::OutOfRange(self),
            ))
        }
    }

    /// A duration set in milliseconds, refused unless within the range.
    pub fn check_millis(self, variable: &'static str, value: Duration) -> Result<(), ConfigError> {
        self.check(variable, saturating_u64(value.as_millis()))
    }

    /// A duration set in seconds, refused unless within the range.
    pub fn check_seconds(self, variable: &'static str, value: Duration) -> Result<(), ConfigError> {
        self.check(variable, value.as_secs())
    }
}

/// A count or size held in a `usize`, as the `u64` ranges are written in.
fn saturating_u64(value: impl TryInto<u64>) -> u64 {
    value.try_into().unwrap_or(u64::MAX)
}
