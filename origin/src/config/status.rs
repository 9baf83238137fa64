//! The operator's status page (`GET /status`): the networks that may open it without the admin
//! token, what counts as a slow request there, and how often its charts take a sample.

use std::time::Duration;

use ipnet::IpNet;

use super::read;
use super::{ConfigError, Range};
use crate::core::http::client::parse_proxies;

/// `STATUS_ALLOW_NETWORKS`: comma-separated CIDR ranges whose TCP peers may open `/status`
/// without the admin token.
pub const ENV_STATUS_ALLOW_NETWORKS: &str = "STATUS_ALLOW_NETWORKS";
/// `STATUS_SLOW_MS`: requests at least this slow are listed on the status page.
pub const ENV_STATUS_SLOW_MS: &str = "STATUS_SLOW_MS";
/// `STATUS_SAMPLE_SECONDS`: seconds between two samples of the status page's charts.
pub const ENV_STATUS_SAMPLE_SECONDS: &str = "STATUS_SAMPLE_SECONDS";

/// Every variable this concern reads.
pub const VARIABLES: &[&str] = &[
    ENV_STATUS_ALLOW_NETWORKS,
    ENV_STATUS_SLOW_MS,
    ENV_STATUS_SAMPLE_SECONDS,
];

/// From 1 ms to an hour.
pub const STATUS_SLOW_MS: Range = Range::new(1, 3_600_000);
/// From 1 s to a minute (the page keeps 90 samples: 90 s to 90 min).
pub const STATUS_SAMPLE_SECONDS: Range = Range::new(1, 60);
/// What `STATUS_ALLOW_NETWORKS` accepts.
pub const STATUS_ALLOW_NETWORKS: &str =
    "comma-separated IP addresses or CIDR ranges, such as 127.0.0.1/32,10.0.0.0/8";

/// The status page's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    /// Peers in these networks need no token (empty: the token alone opens the page).
    pub allow_networks: Vec<IpNet>,
    /// Requests at least this slow are listed.
    pub slow_request: Duration,
    /// Time between two samples of the charts.
    pub sample_interval: Duration,
}

impl Default for StatusConfig {
    /// The token alone, slow from 500 ms, a sample every 10 s (15 minutes of charts).
    fn default() -> Self {
        Self {
            allow_networks: Vec::new(),
            slow_request: Duration::from_millis(500),
            sample_interval: Duration::from_secs(10),
        }
    }
}

impl StatusConfig {
    /// Reads this concern's variables from `source`; unset ones keep their defaults.
    pub fn from_source(source: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let networks = read::trimmed(source, ENV_STATUS_ALLOW_NETWORKS)
            .map(|text| {
                parse_proxies(&text).map_err(|_| {
                    read::malformed(ENV_STATUS_ALLOW_NETWORKS, &text, STATUS_ALLOW_NETWORKS)
                })
            })
            .transpose()?;
        let config = Self {
            allow_networks: networks.unwrap_or(defaults.allow_networks),
            slow_request: read::millis(source, ENV_STATUS_SLOW_MS, STATUS_SLOW_MS)?
                .unwrap_or(defaults.slow_request),
            sample_interval: read::seconds(
                source,
                ENV_STATUS_SAMPLE_SECONDS,
                STATUS_SAMPLE_SECONDS,
            )?
            .unwrap_or(defaults.sample_interval),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every value against the range its variable accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        STATUS_SLOW_MS.check_millis(ENV_STATUS_SLOW_MS, self.slow_request)?;
        STATUS_SAMPLE_SECONDS.check_seconds(ENV_STATUS_SAMPLE_SECONDS, self.sample_interval)
    }
}
