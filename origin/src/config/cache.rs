//! The origin's response cache: whether it runs, its in-process size, what it stores for how
//! long, and what it loads at start.

use std::str::FromStr;
use std::time::Duration;

use axum::http::uri::{Authority, PathAndQuery};

use super::read;
use super::{saturating_u64, ConfigError, Problem, Range};

/// `CACHE_ENABLED`: `false` turns the origin's response cache off (headers still go out).
pub const ENV_CACHE_ENABLED: &str = "CACHE_ENABLED";
/// `CACHE_MAX_SIZE`: size of the in-process cache level, in bytes.
pub const ENV_CACHE_MAX_SIZE: &str = "CACHE_MAX_SIZE";
/// `CACHE_MAX_BODY_BYTES`: larger responses are never cached.
pub const ENV_CACHE_MAX_BODY_BYTES: &str = "CACHE_MAX_BODY_BYTES";
/// `CACHE_TTL`: seconds the origin keeps any cacheable response fresh; unset follows the policy.
pub const ENV_CACHE_TTL: &str = "CACHE_TTL";
/// `CACHE_STALE_WHILE_REVALIDATE_TTL`: seconds a stale entry is still served while refreshed.
pub const ENV_CACHE_SWR_TTL: &str = "CACHE_STALE_WHILE_REVALIDATE_TTL";
/// `CACHE_WARM_PATHS`: comma-separated paths loaded into the cache at start (empty: none).
pub const ENV_CACHE_WARM_PATHS: &str = "CACHE_WARM_PATHS";
/// `CACHE_WARM_HOST`: the `Host` warming requests carry (the host the edge forwards to).
pub const ENV_CACHE_WARM_HOST: &str = "CACHE_WARM_HOST";

/// Every variable this concern reads.
pub const VARIABLES: &[&str] = &[
    ENV_CACHE_ENABLED,
    ENV_CACHE_MAX_SIZE,
    ENV_CACHE_MAX_BODY_BYTES,
    ENV_CACHE_TTL,
    ENV_CACHE_SWR_TTL,
    ENV_CACHE_WARM_PATHS,
    ENV_CACHE_WARM_HOST,
];

/// From 1 MiB to 1 TiB of keys and bodies.
pub const CACHE_MAX_SIZE: Range = Range::new(1 << 20, 1 << 40);
/// From 1 byte to the whole cache (`CACHE_MAX_SIZE` bounds it too).
pub const CACHE_MAX_BODY_BYTES: Range = Range::new(1, 1 << 40);
/// From 0 s to a year.
pub const CACHE_TTL: Range = Range::new(0, 31_536_000);
/// From 0 s (stale entries are never served) to a year.
pub const CACHE_SWR_TTL: Range = Range::new(0, 31_536_000);
/// What `CACHE_WARM_PATHS` accepts.
pub const WARM_PATHS: &str = "comma-separated paths starting with /, such as /api/stats,/";
/// What `CACHE_WARM_HOST` accepts.
pub const WARM_HOST: &str = "a host name or address with an optional port, such as app.example";

/// The response cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Whether the origin caches responses.
    pub enabled: bool,
    /// In-process cache size in bytes.
    pub max_bytes: u64,
    /// Largest cached response body in bytes.
    pub max_body_bytes: usize,
    /// Origin freshness for every cacheable route, overriding the policy's.
    pub ttl: Option<Duration>,
    /// Origin stale-while-revalidate window.
    pub stale_while_revalidate: Duration,
    /// Paths loaded into the cache at start.
    pub warm_paths: Vec<String>,
    /// The `Host` of warming requests; `None` uses the listen address.
    pub warm_host: Option<String>,
}

impl Default for CacheConfig {
    /// Enabled, 64 MiB in process, bodies up to 4 MiB, the policy's lifetimes with a 600 s
    /// stale-while-revalidate window, the hot pages warmed.
    fn default() -> Self {
        Self {
            enabled: true,
            max_bytes: 64 << 20,
            max_body_bytes: 4 << 20,
            ttl: None,
            stale_while_revalidate: Duration::from_secs(600),
            warm_paths: ["/api/stats", "/api/tasks/popular", "/api/tasks", "/"]
                .map(str::to_owned)
                .to_vec(),
            warm_host: None,
        }
    }
}

impl CacheConfig {
    /// Reads this concern's variables from `source`; unset ones keep their defaults.
    pub fn from_source(source: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let config = Self {
            enabled: read::flag(source, ENV_CACHE_ENABLED)?.unwrap_or(defaults.enabled),
            max_bytes: read::whole(source, ENV_CACHE_MAX_SIZE, CACHE_MAX_SIZE)?
                .unwrap_or(defaults.max_bytes),
            max_body_bytes: read::whole(source, ENV_CACHE_MAX_BODY_BYTES, CACHE_MAX_BODY_BYTES)?
                .unwrap_or(defaults.max_body_bytes),
            ttl: read::seconds(source, ENV_CACHE_TTL, CACHE_TTL)?.or(defaults.ttl),
            stale_while_revalidate: read::seconds(source, ENV_CACHE_SWR_TTL, CACHE_SWR_TTL)?
                .unwrap_or(defaults.stale_while_revalidate),
            // Set but empty turns warming off, so this one is not read as unset when blank.
            warm_paths: match source(ENV_CACHE_WARM_PATHS) {
                Some(text) => split_paths(&text),
                None => defaults.warm_paths,
            },
            warm_host: read::trimmed(source, ENV_CACHE_WARM_HOST).or(defaults.warm_host),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every value against what its variable accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        CACHE_MAX_SIZE.check(ENV_CACHE_MAX_SIZE, self.max_bytes)?;
        let body = saturating_u64(self.max_body_bytes);
        CACHE_MAX_BODY_BYTES.check(ENV_CACHE_MAX_BODY_BYTES, body)?;
        if body > self.max_bytes {
            return Err(ConfigError::new(
                ENV_CACHE_MAX_BODY_BYTES,
                body.to_string(),
                Problem::AboveOther {
                    min: CACHE_MAX_BODY_BYTES.min,
                    other: ENV_CACHE_MAX_SIZE,
                    max: self.max_bytes,
                },
            ));
        }
        if let Some(ttl) = self.ttl {
            CACHE_TTL.check_seconds(ENV_CACHE_TTL, ttl)?;
        }
        CACHE_SWR_TTL.check_seconds(ENV_CACHE_SWR_TTL, self.stale_while_revalidate)?;
        if !self.warm_paths.iter().all(|path| is_path(path)) {
            let text = self.warm_paths.join(",");
            return Err(read::malformed(ENV_CACHE_WARM_PATHS, &text, WARM_PATHS));
        }
        match &self.warm_host {
            Some(host) if Authority::from_str(host).is_err() || host.contains('@') => {
                Err(read::malformed(ENV_CACHE_WARM_HOST, host, WARM_HOST))
            }
            _ => Ok(()),
        }
    }
}

/// `" /a , ,/b"` → `["/a", "/b"]`.
fn split_paths(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|path| !path.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether `path` is a request target a warming request can carry.
fn is_path(path: &str) -> bool {
    path.starts_with('/') && PathAndQuery::from_str(path).is_ok()
}
