//! Origin configuration, read from the environment through a replaceable source.

use std::net::SocketAddr;

use shared::rate_limit::RateLimit;

use crate::core::dependencies::breaker::BreakerSettings;
use crate::core::dependencies::outbound::OutboundSettings;
use crate::core::dependencies::retry::RetryPolicy;
use crate::core::http::client::{parse_proxies, EdgeTrust};
use crate::core::layers::admission::AdmissionLimits;
use crate::core::layers::rate_limit::Budgets;

/// `ORIGIN_ADDR`: where the origin listens.
pub const ENV_ADDR: &str = "ORIGIN_ADDR";
/// The default listen address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// `LOG_FORMAT`: `pretty` (default) or `json`.
pub const ENV_LOG_FORMAT: &str = "LOG_FORMAT";
/// `IMAGE_SIGNING_KEY`: the key the edge checks `/cdn-cgi/image/` URLs with; the pages' image
/// URLs are signed with it (unset: unsigned URLs).
pub const ENV_IMAGE_SIGNING_KEY: &str = "IMAGE_SIGNING_KEY";
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
/// `CACHE_MAX_SIZE`: size of the in-process cache level, in bytes.
pub const ENV_CACHE_MAX_SIZE: &str = "CACHE_MAX_SIZE";
/// The default in-process cache size (64 MiB).
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 64 << 20;
/// `CACHE_MAX_BODY_BYTES`: larger responses are never cached.
pub const ENV_CACHE_MAX_BODY_BYTES: &str = "CACHE_MAX_BODY_BYTES";
/// The default largest cached body (4 MiB).
pub const DEFAULT_CACHE_MAX_BODY_BYTES: u64 = 4 << 20;
/// `CACHE_ENABLED`: `false` turns the origin's response cache off (headers still go out).
pub const ENV_CACHE_ENABLED: &str = "CACHE_ENABLED";
/// `CACHE_TTL`: seconds the origin keeps any cacheable response fresh; unset follows the policy.
pub const ENV_CACHE_TTL: &str = "CACHE_TTL";
/// `COMMENTS_CACHE_TTL`: seconds the origin keeps a task's comments fresh.
pub const ENV_COMMENTS_CACHE_TTL: &str = "COMMENTS_CACHE_TTL";
/// The default comments lifetime.
pub const DEFAULT_COMMENTS_CACHE_TTL: u64 = 300;
/// `CACHE_STALE_WHILE_REVALIDATE_TTL`: seconds a stale entry is still served while refreshed.
pub const ENV_CACHE_SWR_TTL: &str = "CACHE_STALE_WHILE_REVALIDATE_TTL";
/// The default stale-while-revalidate window of the origin's cache.
pub const DEFAULT_CACHE_SWR_TTL: u64 = 600;
/// `CACHE_WARM_PATHS`: comma-separated paths loaded into the cache at start.
pub const ENV_CACHE_WARM_PATHS: &str = "CACHE_WARM_PATHS";
/// The default hot paths.
pub const DEFAULT_CACHE_WARM_PATHS: &str = "/api/stats,/api/tasks/popular,/api/tasks,/";
/// `CACHE_WARM_HOST`: the `Host` warming requests carry (the host the edge forwards to).
pub const ENV_CACHE_WARM_HOST: &str = "CACHE_WARM_HOST";
/// `DATABASE_URL`: `sqlite:path` (default) or `postgres://…`.
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";
/// The default database: an SQLite file, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:data/rampart.db";
/// `DATABASE_POOL_SIZE`: most open connections.
pub const ENV_DATABASE_POOL_SIZE: &str = "DATABASE_POOL_SIZE";
/// The default pool size.
pub const DEFAULT_DATABASE_POOL_SIZE: u64 = 10;
/// `DATABASE_QUERY_TIMEOUT_MS`: bound on every query and on waiting for a connection.
pub const ENV_DATABASE_QUERY_TIMEOUT_MS: &str = "DATABASE_QUERY_TIMEOUT_MS";
/// The default query timeout.
pub const DEFAULT_DATABASE_QUERY_TIMEOUT_MS: u64 = 5000;
/// `DEMO_DATA`: what an empty database is filled with: `full`, `small` or `none`.
pub const ENV_DEMO_DATA: &str = "DEMO_DATA";
/// `UPLOAD_MAX_BYTES`: largest image upload.
pub const ENV_UPLOAD_MAX_BYTES: &str = "UPLOAD_MAX_BYTES";
/// The default largest upload (10 MiB).
pub const DEFAULT_UPLOAD_MAX_BYTES: u64 = 10 << 20;
/// `UPLOAD_MAX_PIXELS`: most pixels of an uploaded image.
pub const ENV_UPLOAD_MAX_PIXELS: &str = "UPLOAD_MAX_PIXELS";
/// The default pixel bound (40 megapixels).
pub const DEFAULT_UPLOAD_MAX_PIXELS: u64 = 40_000_000;
/// `MAX_HEADER_SIZE`: largest request head (request line and headers) in bytes; larger gets 431.
pub const ENV_MAX_HEADER_SIZE: &str = "MAX_HEADER_SIZE";
/// The default largest request head (16 KiB, as Node and Envoy allow; at least 8 KiB).
pub const DEFAULT_MAX_HEADER_SIZE: u64 = 16 * 1024;
/// `HEADER_READ_TIMEOUT_MS`: time a client has to send a request head (and idle keep-alive time).
pub const ENV_HEADER_READ_TIMEOUT_MS: &str = "HEADER_READ_TIMEOUT_MS";
/// The default head timeout.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 30_000;
/// `SHUTDOWN_TIMEOUT`: milliseconds in-flight requests may run after SIGTERM.
pub const ENV_SHUTDOWN_TIMEOUT: &str = "SHUTDOWN_TIMEOUT";
/// The default drain time.
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 30_000;
/// `MAX_CONCURRENT_REQUESTS`: requests the application serves at once.
pub const ENV_MAX_CONCURRENT_REQUESTS: &str = "MAX_CONCURRENT_REQUESTS";
/// `MAX_QUEUED_REQUESTS`: requests that may wait for a slot; beyond, 503 at once.
pub const ENV_MAX_QUEUED_REQUESTS: &str = "MAX_QUEUED_REQUESTS";
/// `QUEUE_TIMEOUT_MS`: how long a request may wait for a slot.
pub const ENV_QUEUE_TIMEOUT_MS: &str = "QUEUE_TIMEOUT_MS";
/// `REQUEST_TIMEOUT`: milliseconds the application has to produce a response head.
pub const ENV_REQUEST_TIMEOUT: &str = "REQUEST_TIMEOUT";
/// `REQUEST_TIMEOUT_RULES`: per-rule request timeouts, `rule=ms` pairs separated by commas.
pub const ENV_REQUEST_TIMEOUT_RULES: &str = "REQUEST_TIMEOUT_RULES";
/// `SLOW_REQUEST_MS`: requests slower than this are logged as warnings.
pub const ENV_SLOW_REQUEST_MS: &str = "SLOW_REQUEST_MS";
/// The default slow-request threshold.
pub const DEFAULT_SLOW_REQUEST_MS: u64 = 5000;
/// `RATE_LIMIT_ENABLED`: `false` turns every rate limit off.
pub const ENV_RATE_LIMIT_ENABLED: &str = "RATE_LIMIT_ENABLED";
/// `RATE_LIMIT_WINDOW_MS`: the window of the default and crawler budgets.
pub const ENV_RATE_LIMIT_WINDOW_MS: &str = "RATE_LIMIT_WINDOW_MS";
/// `RATE_LIMIT_MAX_REQUESTS`: requests per window of an ordinary client.
pub const ENV_RATE_LIMIT_MAX_REQUESTS: &str = "RATE_LIMIT_MAX_REQUESTS";
/// `RATE_LIMIT_CRAWLER_MAX_REQUESTS`: requests per window of a crawler.
pub const ENV_RATE_LIMIT_CRAWLER_MAX_REQUESTS: &str = "RATE_LIMIT_CRAWLER_MAX_REQUESTS";
/// `ORIGIN_AUTH_TOKEN`: the secret the edge sends; with it, the edge's client address is believed.
pub const ENV_ORIGIN_AUTH_TOKEN: &str = "ORIGIN_AUTH_TOKEN";
/// `TRUSTED_PROXIES`: comma-separated CIDR ranges whose `CF-Connecting-IP` is believed.
pub const ENV_TRUSTED_PROXIES: &str = "TRUSTED_PROXIES";
/// `CIRCUIT_BREAKER_ERROR_THRESHOLD`: failures within 120 s that open a breaker.
pub const ENV_BREAKER_THRESHOLD: &str = "CIRCUIT_BREAKER_ERROR_THRESHOLD";
/// `CIRCUIT_BREAKER_RESET_TIMEOUT`: milliseconds an open breaker waits before a trial call.
pub const ENV_BREAKER_RESET_TIMEOUT: &str = "CIRCUIT_BREAKER_RESET_TIMEOUT";
/// `CIRCUIT_BREAKER_TIMEOUT`: milliseconds a call guarded by the outbound breaker may take.
pub const ENV_BREAKER_TIMEOUT: &str = "CIRCUIT_BREAKER_TIMEOUT";
/// The default bound on a guarded outbound call.
pub const DEFAULT_BREAKER_TIMEOUT_MS: u64 = 10_000;
/// `RETRY_MAX_ATTEMPTS`: attempts of an idempotent call, the first included.
pub const ENV_RETRY_MAX_ATTEMPTS: &str = "RETRY_MAX_ATTEMPTS";
/// `RETRY_INITIAL_DELAY_MS`: backoff bound before the first retry.
pub const ENV_RETRY_INITIAL_DELAY_MS: &str = "RETRY_INITIAL_DELAY_MS";
/// `RETRY_MAX_DELAY_MS`: the largest backoff bound.
pub const ENV_RETRY_MAX_DELAY_MS: &str = "RETRY_MAX_DELAY_MS";
/// `RETRY_BACKOFF_FACTOR`: how much the backoff bound grows per retry.
pub const ENV_RETRY_BACKOFF_FACTOR: &str = "RETRY_BACKOFF_FACTOR";
/// `RETRY_BUDGET_PERCENT`: retries may be at most this share of calls.
pub const ENV_RETRY_BUDGET_PERCENT: &str = "RETRY_BUDGET_PERCENT";
/// The default retry budget.
pub const DEFAULT_RETRY_BUDGET_PERCENT: u64 = 20;
/// `OUTBOUND_ALLOW_PRIVATE`: `true` lets outbound fetches reach private and loopback addresses.
pub const ENV_OUTBOUND_ALLOW_PRIVATE: &str = "OUTBOUND_ALLOW_PRIVATE";
/// `EDGE_PURGE_URL`: the edge's purge endpoint, told about every tag invalidation.
pub const ENV_EDGE_PURGE_URL: &str = "EDGE_PURGE_URL";
/// `EDGE_PURGE_TOKEN`: the bearer token the edge's purge endpoint wants.
pub const ENV_EDGE_PURGE_TOKEN: &str = "EDGE_PURGE_TOKEN";
/// `OUTBOUND_MAX_BYTES`: most bytes read of a fetched page.
pub const ENV_OUTBOUND_MAX_BYTES: &str = "OUTBOUND_MAX_BYTES";
/// `METRICS_ADDR`: a second listener serving `/metrics` alone (the seed used port 9464).
pub const ENV_METRICS_ADDR: &str = "METRICS_ADDR";

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
    /// The key image transformation URLs are signed with, if the edge requires signatures.
    pub image_signing_key: Option<String>,
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
    /// Whether the origin caches responses.
    pub cache_enabled: bool,
    /// Origin freshness for every cacheable route, overriding the policy's, in seconds.
    pub cache_ttl: Option<u64>,
    /// Origin freshness of a task's comments, in seconds.
    pub comments_cache_ttl: u64,
    /// Origin stale-while-revalidate window, in seconds.
    pub cache_stale_while_revalidate_ttl: u64,
    /// Paths loaded into the cache at start.
    pub cache_warm_paths: Vec<String>,
    /// The `Host` of warming requests; `None` uses the listen address.
    pub cache_warm_host: Option<String>,
    /// The database URL.
    pub database_url: String,
    /// Most open database connections.
    pub database_pool_size: u32,
    /// Bound on each query, in milliseconds.
    pub database_query_timeout_ms: u64,
    /// What an empty database is filled with.
    pub demo_data: DemoData,
    /// Largest image upload, in bytes.
    pub upload_max_bytes: u64,
    /// Most pixels of an uploaded image.
    pub upload_max_pixels: u64,
    /// Largest request head, in bytes.
    pub max_header_bytes: u64,
    /// Time a client has to send a request head, in milliseconds.
    pub header_read_timeout_ms: u64,
    /// Drain time after a shutdown signal, in milliseconds.
    pub shutdown_timeout_ms: u64,
    /// Requests slower than this many milliseconds are logged as warnings.
    pub slow_request_ms: u64,
    /// Concurrency limit, wait queue and request timeout.
    pub admission: AdmissionLimits,
    /// Request timeouts of particular policy rules.
    pub request_timeout_rules: Vec<(String, std::time::Duration)>,
    /// Rate limits; `None` when turned off.
    pub rate_limits: Option<Budgets>,
    /// What proves a request came through the edge.
    pub edge_trust: EdgeTrust,
    /// When circuit breakers open and close.
    pub breakers: BreakerSettings,
    /// Retries of idempotent calls.
    pub retry: RetryPolicy,
    /// Retries may be at most this share of calls, in percent.
    pub retry_budget_percent: u64,
    /// Outbound HTTP (link previews).
    pub outbound: OutboundSettings,
    /// A listener for `/metrics` alone, besides the main port.
    pub metrics_addr: Option<SocketAddr>,
    /// The edge's purge endpoint and its token.
    pub edge_purge: Option<(String, Option<String>)>,
}

impl Default for Config {
    /// The embedded defaults: no Redis, a 64 MiB in-process cache.
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log_format: LogFormat::Pretty,
            admin_token: None,
            image_signing_key: None,
            redis_url: None,
            redis_key_prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
            redis_timeout_ms: DEFAULT_REDIS_TIMEOUT_MS,
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            cache_max_body_bytes: DEFAULT_CACHE_MAX_BODY_BYTES,
            cache_enabled: true,
            cache_ttl: None,
            comments_cache_ttl: DEFAULT_COMMENTS_CACHE_TTL,
            cache_stale_while_revalidate_ttl: DEFAULT_CACHE_SWR_TTL,
            cache_warm_paths: split_paths(DEFAULT_CACHE_WARM_PATHS),
            cache_warm_host: None,
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            database_pool_size: DEFAULT_DATABASE_POOL_SIZE as u32,
            database_query_timeout_ms: DEFAULT_DATABASE_QUERY_TIMEOUT_MS,
            demo_data: DemoData::Full,
            upload_max_bytes: DEFAULT_UPLOAD_MAX_BYTES,
            upload_max_pixels: DEFAULT_UPLOAD_MAX_PIXELS,
            max_header_bytes: DEFAULT_MAX_HEADER_SIZE,
            header_read_timeout_ms: DEFAULT_HEADER_READ_TIMEOUT_MS,
            shutdown_timeout_ms: DEFAULT_SHUTDOWN_TIMEOUT_MS,
            slow_request_ms: DEFAULT_SLOW_REQUEST_MS,
            admission: AdmissionLimits::default(),
            request_timeout_rules: Vec::new(),
            rate_limits: Some(Budgets::default()),
            edge_trust: EdgeTrust::default(),
            breakers: BreakerSettings::default(),
            retry: RetryPolicy::default(),
            retry_budget_percent: DEFAULT_RETRY_BUDGET_PERCENT,
            outbound: OutboundSettings::default(),
            metrics_addr: None,
            edge_purge: None,
        }
    }
}

fn split_paths(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|path| !path.is_empty())
        .map(str::to_owned)
        .collect()
}

fn invalid(variable: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError {
        variable,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

fn boolean(
    source: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match source(variable).as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(invalid(variable, other, "expected true or false")),
    }
}

fn demo_data(source: &impl Fn(&str) -> Option<String>) -> Result<DemoData, ConfigError> {
    match source(ENV_DEMO_DATA).as_deref().map(str::trim) {
        None | Some("" | "full") => Ok(DemoData::Full),
        Some("small") => Ok(DemoData::Small),
        Some("none") => Ok(DemoData::None),
        Some(other) => Err(invalid(
            ENV_DEMO_DATA,
            other,
            "expected `full`, `small` or `none`",
        )),
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

fn rate_limits(source: &impl Fn(&str) -> Option<String>) -> Result<Option<Budgets>, ConfigError> {
    if !boolean(source, ENV_RATE_LIMIT_ENABLED, true)? {
        return Ok(None);
    }
    let defaults = Budgets::default();
    let window_ms = number(
        source,
        ENV_RATE_LIMIT_WINDOW_MS,
        u64::from(defaults.default.window_seconds) * 1000,
    )?;
    let window_seconds = u32::try_from(window_ms.div_ceil(1000).max(1)).unwrap_or(u32::MAX);
    let budget = |variable, default: u32| -> Result<RateLimit, ConfigError> {
        let max = number(source, variable, u64::from(default))?;
        Ok(RateLimit {
            max_requests: u32::try_from(max.max(1)).unwrap_or(u32::MAX),
            window_seconds,
        })
    };
    Ok(Some(Budgets {
        default: budget(ENV_RATE_LIMIT_MAX_REQUESTS, defaults.default.max_requests)?,
        crawler: budget(
            ENV_RATE_LIMIT_CRAWLER_MAX_REQUESTS,
            defaults.crawler.max_requests,
        )?,
        aggressive: defaults.aggressive,
    }))
}

fn admission(source: &impl Fn(&str) -> Option<String>) -> Result<AdmissionLimits, ConfigError> {
    let defaults = AdmissionLimits::default();
    let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let count = |variable, default: usize| -> Result<usize, ConfigError> {
        let value = number(source, variable, default as u64)?;
        Ok(usize::try_from(value).unwrap_or(usize::MAX))
    };
    Ok(AdmissionLimits {
        max_concurrent: count(ENV_MAX_CONCURRENT_REQUESTS, defaults.max_concurrent)?.max(1),
        max_queued: count(ENV_MAX_QUEUED_REQUESTS, defaults.max_queued)?,
        queue_timeout: std::time::Duration::from_millis(number(
            source,
            ENV_QUEUE_TIMEOUT_MS,
            millis(defaults.queue_timeout),
        )?),
        request_timeout: std::time::Duration::from_millis(number(
            source,
            ENV_REQUEST_TIMEOUT,
            millis(defaults.request_timeout),
        )?),
    })
}

/// `REQUEST_TIMEOUT_RULES`, each rule checked against the embedded policy.
fn rule_timeouts(
    source: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, std::time::Duration)>, ConfigError> {
    let Some(text) = source(ENV_REQUEST_TIMEOUT_RULES) else {
        return Ok(Vec::new());
    };
    let policy = shared::policy::Policy::default();
    let known = |rule: &str| policy.rules().iter().any(|r| r.name == rule);
    let mut timeouts = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = pair
            .split_once('=')
            .and_then(|(rule, ms)| Some((rule.trim(), ms.trim().parse::<u64>().ok()?)));
        match parsed {
            Some((rule, ms)) if known(rule) => {
                timeouts.push((rule.to_owned(), std::time::Duration::from_millis(ms)))
            }
            Some((rule, _)) => {
                return Err(invalid(
                    ENV_REQUEST_TIMEOUT_RULES,
                    &text,
                    &format!("no policy rule is named {rule:?}"),
                ))
            }
            None => {
                return Err(invalid(
                    ENV_REQUEST_TIMEOUT_RULES,
                    &text,
                    "expected rule=milliseconds pairs separated by commas",
                ))
            }
        }
    }
    Ok(timeouts)
}

fn breakers(source: &impl Fn(&str) -> Option<String>) -> Result<BreakerSettings, ConfigError> {
    let defaults = BreakerSettings::default();
    Ok(BreakerSettings {
        failure_threshold: u32::try_from(
            number(
                source,
                ENV_BREAKER_THRESHOLD,
                defaults.failure_threshold.into(),
            )?
            .max(1),
        )
        .unwrap_or(u32::MAX),
        reset_timeout: std::time::Duration::from_millis(number(
            source,
            ENV_BREAKER_RESET_TIMEOUT,
            u64::try_from(defaults.reset_timeout.as_millis()).unwrap_or(60_000),
        )?),
        ..defaults
    })
}

fn retry(source: &impl Fn(&str) -> Option<String>) -> Result<RetryPolicy, ConfigError> {
    let defaults = RetryPolicy::default();
    let millis = |variable, default: std::time::Duration| -> Result<_, ConfigError> {
        let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        Ok(std::time::Duration::from_millis(number(
            source, variable, default,
        )?))
    };
    let factor = match source(ENV_RETRY_BACKOFF_FACTOR) {
        None => defaults.factor,
        Some(text) => match text.trim().parse::<f64>() {
            Ok(factor) if (1.0..=10.0).contains(&factor) => factor,
            _ => {
                return Err(invalid(
                    ENV_RETRY_BACKOFF_FACTOR,
                    &text,
                    "expected a number from 1 to 10",
                ))
            }
        },
    };
    Ok(RetryPolicy {
        attempts: u32::try_from(
            number(source, ENV_RETRY_MAX_ATTEMPTS, defaults.attempts.into())?.max(1),
        )
        .unwrap_or(u32::MAX),
        initial_delay: millis(ENV_RETRY_INITIAL_DELAY_MS, defaults.initial_delay)?,
        max_delay: millis(ENV_RETRY_MAX_DELAY_MS, defaults.max_delay)?,
        factor,
    })
}

fn outbound(source: &impl Fn(&str) -> Option<String>) -> Result<OutboundSettings, ConfigError> {
    let defaults = OutboundSettings::default();
    Ok(OutboundSettings {
        timeout: std::time::Duration::from_millis(number(
            source,
            ENV_BREAKER_TIMEOUT,
            DEFAULT_BREAKER_TIMEOUT_MS,
        )?),
        allow_private: boolean(source, ENV_OUTBOUND_ALLOW_PRIVATE, defaults.allow_private)?,
        max_bytes: usize::try_from(number(
            source,
            ENV_OUTBOUND_MAX_BYTES,
            defaults.max_bytes as u64,
        )?)
        .unwrap_or(usize::MAX),
    })
}

fn address(
    source: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<Option<SocketAddr>, ConfigError> {
    match source(variable).filter(|text| !text.trim().is_empty()) {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|e: std::net::AddrParseError| invalid(variable, &text, &e.to_string())),
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
            image_signing_key: source(ENV_IMAGE_SIGNING_KEY).filter(|key| !key.is_empty()),
            redis_url: source(ENV_REDIS_URL).filter(|url| !url.trim().is_empty()),
            redis_key_prefix: source(ENV_REDIS_KEY_PREFIX)
                .unwrap_or_else(|| DEFAULT_REDIS_KEY_PREFIX.to_owned()),
            redis_timeout_ms: number(&source, ENV_REDIS_TIMEOUT_MS, DEFAULT_REDIS_TIMEOUT_MS)?,
            cache_max_bytes: number(&source, ENV_CACHE_MAX_SIZE, DEFAULT_CACHE_MAX_BYTES)?,
            cache_max_body_bytes: number(
                &source,
                ENV_CACHE_MAX_BODY_BYTES,
                DEFAULT_CACHE_MAX_BODY_BYTES,
            )?,
            cache_enabled: boolean(&source, ENV_CACHE_ENABLED, true)?,
            cache_ttl: match source(ENV_CACHE_TTL) {
                Some(text) if !text.trim().is_empty() => Some(number(&source, ENV_CACHE_TTL, 0)?),
                _ => None,
            },
            comments_cache_ttl: number(
                &source,
                ENV_COMMENTS_CACHE_TTL,
                DEFAULT_COMMENTS_CACHE_TTL,
            )?,
            cache_stale_while_revalidate_ttl: number(
                &source,
                ENV_CACHE_SWR_TTL,
                DEFAULT_CACHE_SWR_TTL,
            )?,
            cache_warm_paths: split_paths(
                &source(ENV_CACHE_WARM_PATHS)
                    .unwrap_or_else(|| DEFAULT_CACHE_WARM_PATHS.to_owned()),
            ),
            cache_warm_host: source(ENV_CACHE_WARM_HOST).filter(|host| !host.trim().is_empty()),
            database_url: source(ENV_DATABASE_URL)
                .filter(|url| !url.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            database_pool_size: u32::try_from(number(
                &source,
                ENV_DATABASE_POOL_SIZE,
                DEFAULT_DATABASE_POOL_SIZE,
            )?)
            .unwrap_or(u32::MAX),
            database_query_timeout_ms: number(
                &source,
                ENV_DATABASE_QUERY_TIMEOUT_MS,
                DEFAULT_DATABASE_QUERY_TIMEOUT_MS,
            )?,
            demo_data: demo_data(&source)?,
            upload_max_bytes: number(&source, ENV_UPLOAD_MAX_BYTES, DEFAULT_UPLOAD_MAX_BYTES)?,
            upload_max_pixels: number(&source, ENV_UPLOAD_MAX_PIXELS, DEFAULT_UPLOAD_MAX_PIXELS)?,
            max_header_bytes: match number(&source, ENV_MAX_HEADER_SIZE, DEFAULT_MAX_HEADER_SIZE)? {
                bytes if bytes < 8192 => {
                    return Err(invalid(
                        ENV_MAX_HEADER_SIZE,
                        &bytes.to_string(),
                        "must be at least 8192",
                    ))
                }
                bytes => bytes,
            },
            header_read_timeout_ms: number(
                &source,
                ENV_HEADER_READ_TIMEOUT_MS,
                DEFAULT_HEADER_READ_TIMEOUT_MS,
            )?,
            shutdown_timeout_ms: number(
                &source,
                ENV_SHUTDOWN_TIMEOUT,
                DEFAULT_SHUTDOWN_TIMEOUT_MS,
            )?,
            slow_request_ms: number(&source, ENV_SLOW_REQUEST_MS, DEFAULT_SLOW_REQUEST_MS)?,
            admission: admission(&source)?,
            request_timeout_rules: rule_timeouts(&source)?,
            rate_limits: rate_limits(&source)?,
            edge_trust: EdgeTrust {
                token: source(ENV_ORIGIN_AUTH_TOKEN).filter(|token| !token.is_empty()),
                proxies: match source(ENV_TRUSTED_PROXIES) {
                    None => Vec::new(),
                    Some(text) => parse_proxies(&text)
                        .map_err(|reason| invalid(ENV_TRUSTED_PROXIES, &text, &reason))?,
                },
            },
            breakers: breakers(&source)?,
            retry: retry(&source)?,
            retry_budget_percent: number(
                &source,
                ENV_RETRY_BUDGET_PERCENT,
                DEFAULT_RETRY_BUDGET_PERCENT,
            )?
            .min(100),
            outbound: outbound(&source)?,
            metrics_addr: address(&source, ENV_METRICS_ADDR)?,
            edge_purge: match source(ENV_EDGE_PURGE_URL).filter(|url| !url.is_empty()) {
                None => None,
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => Some((
                    url,
                    source(ENV_EDGE_PURGE_TOKEN).filter(|token| !token.is_empty()),
                )),
                Some(url) => {
                    return Err(invalid(ENV_EDGE_PURGE_URL, &url, "must be an http(s) URL"))
                }
            },
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
            Config::from_source(|name| (name == ENV_CACHE_MAX_SIZE).then(|| "lots".to_owned()));
        assert!(bad_size
            .expect_err("not a number")
            .to_string()
            .starts_with("CACHE_MAX_SIZE="));
        let off = Config::from_source(|name| (name == ENV_CACHE_ENABLED).then(|| "false".into()))
            .expect("valid");
        assert!(!off.cache_enabled);
        assert!(
            Config::from_source(|name| (name == ENV_DEMO_DATA).then(|| "lots".into())).is_err()
        );
        let warm =
            Config::from_source(|name| (name == ENV_CACHE_WARM_PATHS).then(|| " /a , ,/b".into()))
                .expect("valid");
        assert_eq!(warm.cache_warm_paths, ["/a", "/b"]);
        let rules = |text: &str| {
            let text = text.to_owned();
            Config::from_source(move |name| {
                (name == ENV_REQUEST_TIMEOUT_RULES).then(|| text.clone())
            })
        };
        let parsed = rules("stats=60000, task-links=1500").expect("valid");
        assert_eq!(
            parsed.request_timeout_rules,
            [
                ("stats".to_owned(), std::time::Duration::from_secs(60)),
                (
                    "task-links".to_owned(),
                    std::time::Duration::from_millis(1500)
                ),
            ]
        );
        let unknown = rules("statz=1").expect_err("no such rule").to_string();
        assert!(unknown.contains("statz"), "{unknown}");
        assert!(rules("stats").is_err());
    }
}
