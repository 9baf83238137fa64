//! Listening and connections: the addresses, the request-head limits, the drain on shutdown,
//! log lines and the slow-request threshold.

use std::net::SocketAddr;
use std::time::Duration;

use super::read;
use super::{saturating_u64, ConfigError, Range};
use crate::core::observability::telemetry::LogFormat;
use crate::core::serving::listener::ConnectionLimits;

/// `ORIGIN_ADDR`: where the origin listens.
pub const ENV_ADDR: &str = "ORIGIN_ADDR";
/// `METRICS_ADDR`: a second listener serving `/metrics` alone (the seed used port 9464).
pub const ENV_METRICS_ADDR: &str = "METRICS_ADDR";
/// `ADMIN_ADDR`: a listener of their own for the core's routes (health, metrics, status page,
/// admin API), which the main one then leaves to the application (or the shield's upstreams).
pub const ENV_ADMIN_ADDR: &str = "ADMIN_ADDR";
/// `LOG_FORMAT`: `pretty` or `json`.
pub const ENV_LOG_FORMAT: &str = "LOG_FORMAT";
/// `MAX_HEADER_SIZE`: largest request head (request line and headers) in bytes; larger gets 431.
pub const ENV_MAX_HEADER_SIZE: &str = "MAX_HEADER_SIZE";
/// `HEADER_READ_TIMEOUT_MS`: time a client has to send a request head (and idle keep-alive time).
pub const ENV_HEADER_READ_TIMEOUT_MS: &str = "HEADER_READ_TIMEOUT_MS";
/// `SHUTDOWN_TIMEOUT`: milliseconds in-flight requests may run after SIGTERM.
pub const ENV_SHUTDOWN_TIMEOUT: &str = "SHUTDOWN_TIMEOUT";
/// `SHUTDOWN_DELAY_MS`: how long the origin keeps accepting and answering after SIGTERM,
/// announcing its drain, before it stops accepting connections.
pub const ENV_SHUTDOWN_DELAY_MS: &str = "SHUTDOWN_DELAY_MS";
/// `SLOW_REQUEST_MS`: requests slower than this are logged as warnings.
pub const ENV_SLOW_REQUEST_MS: &str = "SLOW_REQUEST_MS";

/// Every variable this concern reads.
pub const VARIABLES: &[&str] = &[
    ENV_ADDR,
    ENV_METRICS_ADDR,
    ENV_ADMIN_ADDR,
    ENV_LOG_FORMAT,
    ENV_MAX_HEADER_SIZE,
    ENV_HEADER_READ_TIMEOUT_MS,
    ENV_SHUTDOWN_TIMEOUT,
    ENV_SHUTDOWN_DELAY_MS,
    ENV_SLOW_REQUEST_MS,
];

/// Request heads from 8 KiB (hyper's least) to 1 MiB.
pub const MAX_HEADER_SIZE: Range = Range::new(8192, 1 << 20);
/// From 1 ms to an hour: a zero head timeout would close every connection at once.
pub const HEADER_READ_TIMEOUT_MS: Range = Range::new(1, 3_600_000);
/// From no drain at all to an hour.
pub const SHUTDOWN_TIMEOUT: Range = Range::new(0, 3_600_000);
/// From none to ten minutes.
pub const SHUTDOWN_DELAY_MS: Range = Range::new(0, 600_000);
/// From every request (0) to an hour.
pub const SLOW_REQUEST_MS: Range = Range::new(0, 3_600_000);

/// What `ORIGIN_ADDR` and `METRICS_ADDR` accept.
pub const ADDRESS: &str = "an IP address and a port from 0 to 65535, such as 127.0.0.1:8080";
/// What `LOG_FORMAT` accepts.
pub const LOG_FORMATS: &[&str] = &["pretty", "json"];

/// Listening, connection limits and logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Listen address.
    pub addr: SocketAddr,
    /// A listener for `/metrics` alone, besides the main port.
    pub metrics_addr: Option<SocketAddr>,
    /// A listener for the core's own routes, which the main one then leaves to the
    /// application: a shield's upstream keeps its own `/health`, `/metrics` and `/status`.
    pub admin_addr: Option<SocketAddr>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// Time a client has to send a request head.
    pub header_read_timeout: Duration,
    /// Drain time after a shutdown signal.
    pub shutdown_timeout: Duration,
    /// Time the listener stays open after a shutdown signal, announcing the drain.
    pub shutdown_delay: Duration,
    /// Requests slower than this are logged as warnings.
    pub slow_request: Duration,
}

impl Default for ListenerConfig {
    /// Loopback port 8080, pretty logs, 16 KiB heads (as Node and Envoy allow) read within
    /// 30 s, 30 s of drain, slow beyond 5 s.
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_addr: None,
            admin_addr: None,
            log_format: LogFormat::Pretty,
            max_header_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            shutdown_delay: Duration::ZERO,
            slow_request: Duration::from_secs(5),
        }
    }
}

impl ListenerConfig {
    /// Reads this concern's variables from `source`; unset ones keep their defaults.
    pub fn from_source(source: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let address = |variable| read::parsed(source, variable, ADDRESS, |t| t.parse().ok());
        let config = Self {
            addr: address(ENV_ADDR)?.unwrap_or(defaults.addr),
            metrics_addr: address(ENV_METRICS_ADDR)?.or(defaults.metrics_addr),
            admin_addr: address(ENV_ADMIN_ADDR)?.or(defaults.admin_addr),
            log_format: read::choice(source, ENV_LOG_FORMAT, LOG_FORMATS, |word| match word {
                "pretty" => Some(LogFormat::Pretty),
                "json" => Some(LogFormat::Json),
                _ => None,
            })?
            .unwrap_or(defaults.log_format),
            max_header_bytes: read::whole(source, ENV_MAX_HEADER_SIZE, MAX_HEADER_SIZE)?
                .unwrap_or(defaults.max_header_bytes),
            header_read_timeout: read::millis(
                source,
                ENV_HEADER_READ_TIMEOUT_MS,
                HEADER_READ_TIMEOUT_MS,
            )?
            .unwrap_or(defaults.header_read_timeout),
            shutdown_timeout: read::millis(source, ENV_SHUTDOWN_TIMEOUT, SHUTDOWN_TIMEOUT)?
                .unwrap_or(defaults.shutdown_timeout),
            shutdown_delay: read::millis(source, ENV_SHUTDOWN_DELAY_MS, SHUTDOWN_DELAY_MS)?
                .unwrap_or(defaults.shutdown_delay),
            slow_request: read::millis(source, ENV_SLOW_REQUEST_MS, SLOW_REQUEST_MS)?
                .unwrap_or(defaults.slow_request),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every value against the range its variable accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        MAX_HEADER_SIZE.check(ENV_MAX_HEADER_SIZE, saturating_u64(self.max_header_bytes))?;
        HEADER_READ_TIMEOUT_MS
            .check_millis(ENV_HEADER_READ_TIMEOUT_MS, self.header_read_timeout)?;
        SHUTDOWN_TIMEOUT.check_millis(ENV_SHUTDOWN_TIMEOUT, self.shutdown_timeout)?;
        SHUTDOWN_DELAY_MS.check_millis(ENV_SHUTDOWN_DELAY_MS, self.shutdown_delay)?;
        SLOW_REQUEST_MS.check_millis(ENV_SLOW_REQUEST_MS, self.slow_request)
    }

    /// The limits the connection listener applies.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_header_bytes: self.max_header_bytes,
            header_read_timeout: self.header_read_timeout,
            shutdown_timeout: self.shutdown_timeout,
        }
    }
}
