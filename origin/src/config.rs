//! Origin configuration, read from the environment through a replaceable source.

use std::net::SocketAddr;

/// `ORIGIN_ADDR`: where the origin listens.
pub const ENV_ADDR: &str = "ORIGIN_ADDR";
/// The default listen address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// `LOG_FORMAT`: `pretty` (default) or `json`.
pub const ENV_LOG_FORMAT: &str = "LOG_FORMAT";
/// `ADMIN_TOKEN`: bearer token for admin routes; unset disables them (403 `ADMIN_DISABLED`).
pub const ENV_ADMIN_TOKEN: &str = "ADMIN_TOKEN";
/// `REDIS_URL`: the shared cache level; unset runs on the in-process level alone.
pub const ENV_REDIS_URL: &str = "REDIS_URL";
/// `REDIS_KEY_PREFIX`: prefix of every Redis key and channel of this deployment.
pub const ENV_REDIS_KEY_PREFIX: &str = "REDIS_KEY_PREFIX";
/// The default Redis key prefix.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "rampart:";
/// `REDIS_TIMEOUT_MS`: bound on every Redis call.
pub const ENV_REDIS_TIMEOUT_MS: &str = "REDIS_TIMEOUT_MS";
/// The default Redis call timeout.
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 250;
/// `CACHE_MAX_BYTES`: size of the in-process cache level.
pub const ENV_CACHE_MAX_BYTES: &str = "CACHE_MAX_BYTES";
/// The default in-process cache size (64 MiB).
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 64 << 20;
/// `CACHE_MAX_BODY_BYTES`: larger responses are never cached.
pub const ENV_CACHE_MAX_BODY_BYTES: &str = "CACHE_MAX_BODY_BYTES";
/// The default largest cached body (4 MiB).
pub const DEFAULT_CACHE_MAX_BODY_BYTES: u64 = 4 << 20;

/// Bad configuration, naming the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("{variable}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The origin's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub addr: SocketAddr,
    /// Log line format.
    pub log_format: LogFormat,
    /// The admin bearer token, if admin routes are enabled.
    pub admin_token: Option<String>,
    /// The shared cache level, if any.
    pub redis_url: Option<String>,
    /// Prefix of Redis keys and channels.
    pub redis_key_prefix: String,
    /// Bound on every Redis call, in milliseconds.
    pub redis_timeout_ms: u64,
    /// In-process cache size in bytes.
    pub cache_max_bytes: u64,
    /// Largest cached response body in bytes.
    pub cache_max_body_bytes: u64,
}

impl Default for Config {
    /// The embedded defaults: no Redis, a 64 MiB in-process cache.
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log_format: LogFormat::Pretty,
            admin_token: None,
            redis_url: None,
            redis_key_prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
            redis_timeout_ms: DEFAULT_REDIS_TIMEOUT_MS,
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            cache_max_body_bytes: DEFAULT_CACHE_MAX_BODY_BYTES,
        }
    }
}

fn number(
    source: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match source(variable) {
        None => Ok(default),
        Some(text) => text.trim().parse().map_err(|_| ConfigError {
            variable,
            value: text.clone(),
            reason: "expected a non-negative integer".into(),
        }),
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(|name| std::env::var(name).ok())
    }

    /// Reads the configuration from `source` (tests pass a map).
    pub fn from_source(source: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let addr_text = source(ENV_ADDR).unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        let addr = addr_text
            .parse()
            .map_err(|e: std::net::AddrParseError| ConfigError {
                variable: ENV_ADDR,
                value: addr_text.clone(),
                reason: e.to_string(),
            })?;
        let log_format = match source(ENV_LOG_FORMAT).as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError {
                    variable: ENV_LOG_FORMAT,
                    value: other.to_owned(),
                    reason: "expected `pretty` or `json`".into(),
                })
            }
        };
        Ok(Self {
            addr,
            log_format,
            admin_token: source(ENV_ADMIN_TOKEN).filter(|token| !token.is_empty()),
            redis_url: source(ENV_REDIS_URL).filter(|url| !url.trim().is_empty()),
            redis_key_prefix: source(ENV_REDIS_KEY_PREFIX)
                .unwrap_or_else(|| DEFAULT_REDIS_KEY_PREFIX.to_owned()),
            redis_timeout_ms: number(&source, ENV_REDIS_TIMEOUT_MS, DEFAULT_REDIS_TIMEOUT_MS)?,
            cache_max_bytes: number(&source, ENV_CACHE_MAX_BYTES, DEFAULT_CACHE_MAX_BYTES)?,
            cache_max_body_bytes: number(
                &source,
                ENV_CACHE_MAX_BODY_BYTES,
                DEFAULT_CACHE_MAX_BODY_BYTES,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_name_the_variable() {
        let config = Config::from_source(|_| None).expect("defaults are valid");
        assert_eq!(config.addr.to_string(), DEFAULT_ADDR);
        let bad = Config::from_source(|name| (name == ENV_ADDR).then(|| "nope".to_owned()));
        let message = bad.expect_err("invalid address").to_string();
        assert!(message.starts_with("ORIGIN_ADDR=\"nope\""), "{message}");
        let bad_log =
            Config::from_source(|name| (name == ENV_LOG_FORMAT).then(|| "xml".to_owned()));
        assert!(bad_log.is_err());
        let bad_size =
            Config::from_source(|name| (name == ENV_CACHE_MAX_BYTES).then(|| "lots".to_owned()));
        assert!(bad_size
            .expect_err("not a number")
            .to_string()
            .starts_with("CACHE_MAX_BYTES="));
    }
}
