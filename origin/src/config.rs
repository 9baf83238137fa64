//! Origin configuration, read from the environment through a replaceable source.

use std::net::SocketAddr;

/// `ORIGIN_ADDR`: where the origin listens.
pub const ENV_ADDR: &str = "ORIGIN_ADDR";
/// The default listen address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// `LOG_FORMAT`: `pretty` (default) or `json`.
pub const ENV_LOG_FORMAT: &str = "LOG_FORMAT";

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
        Ok(Self { addr, log_format })
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
    }
}
