//! Redis, the shared cache level, rate-limit store and job store: where it is (one node or a
//! cluster, with or without TLS), the prefix of this deployment's keys, and how long a call may
//! take.

use std::path::PathBuf;
use std::time::Duration;

use super::read;
use super::{ConfigError, Problem, Range};
use crate::core::dependencies::database::redact;
use crate::core::dependencies::redis::{cluster_nodes, RedisSetupError, RedisTarget};

/// `REDIS_URL`: the shared cache level; unset runs on the in-process level alone.
pub const ENV_REDIS_URL: &str = "REDIS_URL";
/// `REDIS_KEY_PREFIX`: prefix of every Redis key and channel of this deployment.
pub const ENV_REDIS_KEY_PREFIX: &str = "REDIS_KEY_PREFIX";
/// `REDIS_TIMEOUT_MS`: bound on every Redis call.
pub const ENV_REDIS_TIMEOUT_MS: &str = "REDIS_TIMEOUT_MS";
/// `REDIS_CLUSTER_NODES`: seed nodes of a Redis Cluster, instead of `REDIS_URL`.
pub const ENV_REDIS_CLUSTER_NODES: &str = "REDIS_CLUSTER_NODES";
/// `REDIS_TLS_CA_FILE`: PEM file of the CA that signed the servers' certificates (`rediss://`).
pub const ENV_REDIS_TLS_CA_FILE: &str = "REDIS_TLS_CA_FILE";

/// Every variable this concern reads.
pub const VARIABLES: &[&str] = &[
    ENV_REDIS_URL,
    ENV_REDIS_KEY_PREFIX,
    ENV_REDIS_TIMEOUT_MS,
    ENV_REDIS_CLUSTER_NODES,
    ENV_REDIS_TLS_CA_FILE,
];

/// Prefixes of up to 256 characters; empty shares the keyspace with everything else.
pub const REDIS_KEY_PREFIX: Range = Range::new(0, 256);
/// From 1 ms to a minute: Redis is skipped when slow, so a long bound only delays requests.
pub const REDIS_TIMEOUT_MS: Range = Range::new(1, 60_000);
/// What `REDIS_URL` accepts.
pub const REDIS_URL: &str = "a Redis URL such as redis://127.0.0.1:6379, \
     rediss://:password@host:6380/0 (TLS) or redis+cluster://host1:7000,host2:7000 (a cluster)";

/// What `REDIS_CLUSTER_NODES` accepts.
pub const REDIS_CLUSTER_NODES: &str =
    "comma-separated host:port pairs or node URLs, such as 10.0.0.1:7000,10.0.0.2:7000";

/// The shared cache level and rate-limit store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// The shared cache level, if any: one node, or a cluster (`redis+cluster://`).
    pub url: Option<String>,
    /// Seed nodes of a cluster, as node URLs (instead of `url`).
    pub cluster_nodes: Vec<String>,
    /// The CA that signed the servers' certificates, instead of the system's.
    pub tls_ca_file: Option<PathBuf>,
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
            cluster_nodes: Vec::new(),
            tls_ca_file: None,
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
            cluster_nodes: read::trimmed(source, ENV_REDIS_CLUSTER_NODES)
                .map_or(defaults.cluster_nodes, |list| cluster_nodes(&list)),
            tls_ca_file: read::trimmed(source, ENV_REDIS_TLS_CA_FILE)
                .map(PathBuf::from)
                .or(defaults.tls_ca_file),
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
        self.check_target()?;
        read::check_text(ENV_REDIS_KEY_PREFIX, &self.key_prefix, REDIS_KEY_PREFIX)?;
        REDIS_TIMEOUT_MS.check_millis(ENV_REDIS_TIMEOUT_MS, self.timeout)
    }

    /// Checks that the URL, cluster nodes and CA file make a usable target.
    fn check_target(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            let alone = Self {
                cluster_nodes: Vec::new(),
                tls_ca_file: None,
                ..self.clone()
            };
            if RedisTarget::from_config(&alone).is_err() {
                return Err(read::malformed(ENV_REDIS_URL, &redact(url), REDIS_URL));
            }
        }
        let ca_file = || {
            self.tls_ca_file
                .as_ref()
                .map(|path| path.display().to_string())
                .unwrap_or_default()
        };
        match RedisTarget::from_config(self) {
            Ok(_) => Ok(()),
            Err(RedisSetupError::Url { .. }) => Err(read::malformed(
                ENV_REDIS_CLUSTER_NODES,
                &self.cluster_nodes.join(","),
                REDIS_CLUSTER_NODES,
            )),
            Err(RedisSetupError::CaFile { reason, .. }) => Err(ConfigError::new(
                ENV_REDIS_TLS_CA_FILE,
                ca_file(),
                Problem::Unusable {
                    expected: "a readable PEM file of CA certificates",
                    reason,
                },
            )),
            Err(RedisSetupError::CaWithoutTls) => Err(ConfigError::new(
                ENV_REDIS_TLS_CA_FILE,
                ca_file(),
                Problem::Unusable {
                    expected: "set only with rediss:// (TLS) Redis URLs",
                    reason: "the Redis URL is not rediss://".to_owned(),
                },
            )),
        }
    }
}
