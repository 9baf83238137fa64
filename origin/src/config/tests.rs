//! The configuration read from maps: defaults, a full environment, and every variable's bad
//! values refused with the variable, the value and the accepted range.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use shared::rate_limit::RateLimit;

use super::shield::Balance;
use super::*;
use crate::app::UploadLimits;
use crate::core::dependencies::breaker::BreakerSettings;
use crate::core::dependencies::outbound::OutboundSettings;
use crate::core::dependencies::retry::RetryPolicy;
use crate::core::http::client::EdgeTrust;
use crate::core::layers::admission::AdmissionLimits;
use crate::core::layers::rate_limit::Budgets;
use crate::core::observability::telemetry::LogFormat;

/// A source holding `pairs` alone.
fn source(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn refused(pairs: &[(&str, &str)]) -> ConfigError {
    Config::from_source(source(pairs)).expect_err("refused")
}

#[test]
fn unset_variables_leave_what_default_says() {
    let config = Config::from_source(|_| None).expect("the defaults are valid");
    assert_eq!(config, Config::default());
    assert_eq!(Config::default().validate(), Ok(()));
    // Empty is unset, except where the README says otherwise; so is blank, but for secrets,
    // where spaces are refused.
    let raw = [cache::ENV_CACHE_WARM_PATHS, redis::ENV_REDIS_KEY_PREFIX];
    let secrets = [
        application::ENV_ADMIN_TOKEN,
        application::ENV_IMAGE_SIGNING_KEY,
        application::ENV_EDGE_PURGE_TOKEN,
        resilience::ENV_ORIGIN_AUTH_TOKEN,
        jobs::ENV_WEBHOOK_SECRET,
        jobs::ENV_CLOUDFLARE_API_TOKEN,
    ];
    for blank in ["", "  "] {
        let config = Config::from_source(|name| match name {
            _ if raw.contains(&name) => None,
            _ if secrets.contains(&name) => Some(String::new()),
            _ => Some(blank.to_owned()),
        });
        assert_eq!(config, Ok(Config::default()), "{blank:?}");
    }
}

#[test]
fn the_defaults_are_the_documented_ones() {
    let config = Config::default();
    assert_eq!(config.listener.addr.to_string(), "127.0.0.1:8080");
    assert_eq!(config.listener.max_header_bytes, 16384);
    assert_eq!(config.cache.max_bytes, 67_108_864);
    assert_eq!(
        config.cache.warm_paths.join(","),
        "/api/stats,/api/tasks/popular,/api/tasks,/"
    );
    assert_eq!(config.redis.key_prefix, "rampart:");
    assert_eq!(config.redis.timeout, Duration::from_millis(250));
    assert_eq!(config.database.url, "sqlite:data/rampart.db");
    assert_eq!(config.database.pool_size, 10);
    assert_eq!(config.resilience.outbound.timeout, Duration::from_secs(10));
    assert_eq!(config.resilience.retry_budget_percent, 20);
    assert_eq!(
        config.application.comments_cache_ttl,
        Duration::from_secs(300)
    );
    assert!(config.status.allow_networks.is_empty(), "token only");
    assert_eq!(config.status.slow_request, Duration::from_millis(500));
    assert_eq!(config.status.sample_interval, Duration::from_secs(10));
}

/// Every variable set to a valid value other than its default.
/// Where the full environment's Redis CA file is written (see [`write_full_ca_file`]).
const FULL_CA_FILE: &str = "/tmp/rampart-config-tests/redis-ca.pem";

/// Where the full environment's shield policy is written (see [`write_full_ca_file`]).
const FULL_POLICY_FILE: &str = "/tmp/rampart-config-tests/shield-policy.toml";

/// Writes a CA certificate made now at [`FULL_CA_FILE`], and the shield's policy at
/// [`FULL_POLICY_FILE`] (replaced whole, so tests running at
/// once never read half a file).
fn write_full_ca_file() {
    let key = rcgen::KeyPair::generate().expect("a key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let pem = params.self_signed(&key).expect("a certificate").pem();
    let path = std::path::Path::new(FULL_CA_FILE);
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("folder");
    let partial = path.with_extension(format!("{}.part", std::process::id()));
    std::fs::write(&partial, pem).expect("written");
    std::fs::rename(partial, path).expect("renamed");
    let policy = std::path::Path::new(FULL_POLICY_FILE);
    let partial = policy.with_extension(format!("{}.part", std::process::id()));
    std::fs::write(&partial, shared::policy::SHIELD_POLICY_TOML).expect("written");
    std::fs::rename(partial, policy).expect("renamed");
}

const FULL: &[(&str, &str)] = &[
    ("ORIGIN_ADDR", "0.0.0.0:9000"),
    ("METRICS_ADDR", "[::1]:9464"),
    ("ADMIN_ADDR", "127.0.0.1:9901"),
    ("LOG_FORMAT", "json"),
    ("MAX_HEADER_SIZE", "8192"),
    ("HEADER_READ_TIMEOUT_MS", "1500"),
    ("SHUTDOWN_TIMEOUT", "0"),
    ("SHUTDOWN_DELAY_MS", "600000"),
    ("SLOW_REQUEST_MS", "250"),
    ("CACHE_ENABLED", "off"),
    ("CACHE_MAX_SIZE", "1048576"),
    ("CACHE_MAX_BODY_BYTES", "1048576"),
    ("CACHE_TTL", "0"),
    ("CACHE_STALE_WHILE_REVALIDATE_TTL", "31536000"),
    ("CACHE_WARM_PATHS", " /a?x=1 , ,/b"),
    ("CACHE_WARM_HOST", "app.example:8443"),
    ("REDIS_URL", "rediss://:secret@127.0.0.1:6380/2"),
    ("REDIS_KEY_PREFIX", ""),
    ("REDIS_TIMEOUT_MS", "60000"),
    ("REDIS_CLUSTER_NODES", " 127.0.0.1:7001 ,127.0.0.1:7002"),
    ("REDIS_TLS_CA_FILE", FULL_CA_FILE),
    ("DATABASE_URL", "postgres://app@db/rampart"),
    ("DATABASE_POOL_SIZE", "1000"),
    ("DATABASE_QUERY_TIMEOUT_MS", "1"),
    ("DEMO_DATA", "none"),
    ("MAX_CONCURRENT_REQUESTS", "1"),
    ("MAX_QUEUED_REQUESTS", "0"),
    ("QUEUE_TIMEOUT_MS", "0"),
    ("REQUEST_TIMEOUT", "3600000"),
    ("REQUEST_TIMEOUT_RULES", "stats=60000, task-links=1500"),
    ("RATE_LIMIT_ENABLED", "true"),
    ("RATE_LIMIT_WINDOW_MS", "60000"),
    ("RATE_LIMIT_MAX_REQUESTS", "4294967295"),
    ("RATE_LIMIT_CRAWLER_MAX_REQUESTS", "1"),
    ("ORIGIN_AUTH_TOKEN", "edge-secret"),
    ("TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::1"),
    ("CIRCUIT_BREAKER_ERROR_THRESHOLD", "10000"),
    ("CIRCUIT_BREAKER_RESET_TIMEOUT", "1"),
    ("OUTBOUND_TIMEOUT_MS", "2500"),
    ("CIRCUIT_BREAKER_TIMEOUT", "9999"),
    ("OUTBOUND_ALLOW_PRIVATE", "yes"),
    ("OUTBOUND_MAX_BYTES", "1073741824"),
    ("RETRY_MAX_ATTEMPTS", "10"),
    ("RETRY_INITIAL_DELAY_MS", "0"),
    ("RETRY_MAX_DELAY_MS", "3600000"),
    ("RETRY_BACKOFF_FACTOR", "1.5"),
    ("RETRY_BUDGET_PERCENT", "100"),
    ("ADMIN_TOKEN", "admin-secret"),
    ("IMAGE_SIGNING_KEY", "k3y"),
    ("UPLOAD_MAX_BYTES", "1"),
    ("UPLOAD_MAX_PIXELS", "1000000000"),
    ("COMMENTS_CACHE_TTL", "0"),
    ("EDGE_PURGE_URL", "https://app.example.com/__rampart/purge"),
    ("EDGE_PURGE_TOKEN", "purge-secret"),
    ("JOBS_CONCURRENCY", "crawler=0, cache-refresh=16"),
    ("JOBS_VISIBILITY_TIMEOUT_MS", "5000"),
    ("JOBS_RUN_TIMEOUT_MS", "2000"),
    ("JOBS_MAX_ATTEMPTS", "100"),
    ("JOBS_RETRY_MAX_DELAY_MS", "0"),
    ("JOBS_KEEP_SECONDS", "0"),
    ("JOBS_KEEP_COUNT", "1000000"),
    ("JOBS_MAX_WAIT_SECONDS", "1"),
    ("JOBS_BUFFER_MAX", "0"),
    ("JOBS_WARM_SCHEDULE", "off"),
    ("JOBS_CLEANUP_SCHEDULE", "0 4 * * 1"),
    ("JOBS_DEAD_REPORT_SCHEDULE", "*/15 * * * *"),
    ("AUDIT_RETENTION_DAYS", "0"),
    ("WEBHOOK_URL", "https://hooks.example.com/rampart"),
    ("WEBHOOK_SECRET", "whsec"),
    ("CLOUDFLARE_ZONE_ID", "023e105f4ecef8ad9ca31a8372d0c353"),
    ("CLOUDFLARE_API_TOKEN", "cf-token"),
    ("CLOUDFLARE_API_BASE", "http://127.0.0.1:9999/client/v4"),
    ("STATUS_ALLOW_NETWORKS", "127.0.0.1/32, 10.0.0.0/8,::1"),
    ("STATUS_SLOW_MS", "1"),
    ("STATUS_SAMPLE_SECONDS", "60"),
    (
        "UPSTREAM_URL",
        "http://127.0.0.1:3000, http://10.0.0.2:8080",
    ),
    ("UPSTREAM_BALANCE", "least-loaded"),
    ("UPSTREAM_CONNECT_TIMEOUT_MS", "500"),
    ("UPSTREAM_FIRST_BYTE_TIMEOUT_MS", "9000"),
    ("UPSTREAM_IDLE_TIMEOUT_MS", "7000"),
    ("UPSTREAM_HEALTH_PATH", "/healthz"),
    ("UPSTREAM_HEALTH_INTERVAL_MS", "250"),
    ("UPSTREAM_TLS_CA_FILE", FULL_CA_FILE),
    ("SHIELD_POLICY_FILE", FULL_POLICY_FILE),
];

fn full_expected() -> Config {
    let (ms, secs) = (Duration::from_millis, Duration::from_secs);
    let budget = |max_requests| RateLimit {
        max_requests,
        window_seconds: 60,
    };
    Config {
        listener: ListenerConfig {
            addr: SocketAddr::from(([0, 0, 0, 0], 9000)),
            metrics_addr: Some("[::1]:9464".parse().expect("address")),
            admin_addr: Some("127.0.0.1:9901".parse().expect("address")),
            log_format: LogFormat::Json,
            max_header_bytes: 8192,
            header_read_timeout: ms(1500),
            shutdown_timeout: ms(0),
            shutdown_delay: ms(600_000),
            slow_request: ms(250),
        },
        cache: CacheConfig {
            enabled: false,
            max_bytes: 1 << 20,
            max_body_bytes: 1 << 20,
            ttl: Some(secs(0)),
            stale_while_revalidate: secs(31_536_000),
            warm_paths: vec!["/a?x=1".to_owned(), "/b".to_owned()],
            warm_host: Some("app.example:8443".to_owned()),
        },
        redis: RedisConfig {
            url: Some("rediss://:secret@127.0.0.1:6380/2".to_owned()),
            key_prefix: String::new(),
            timeout: ms(60_000),
            cluster_nodes: vec!["127.0.0.1:7001".to_owned(), "127.0.0.1:7002".to_owned()],
            tls_ca_file: Some(FULL_CA_FILE.into()),
        },
        database: DatabaseConfig {
            url: "postgres://app@db/rampart".to_owned(),
            pool_size: 1000,
            query_timeout: ms(1),
            demo_data: DemoData::None,
        },
        resilience: ResilienceConfig {
            breakers: BreakerSettings {
                failure_threshold: 10_000,
                reset_timeout: ms(1),
                ..BreakerSettings::default()
            },
            retry: RetryPolicy {
                attempts: 10,
                initial_delay: ms(0),
                max_delay: ms(3_600_000),
                factor: 1.5,
            },
            retry_budget_percent: 100,
            admission: AdmissionLimits {
                max_concurrent: 1,
                max_queued: 0,
                queue_timeout: ms(0),
                request_timeout: ms(3_600_000),
            },
            request_timeout_rules: vec![
                ("stats".to_owned(), ms(60_000)),
                ("task-links".to_owned(), ms(1500)),
            ],
            rate_limits: Some(Budgets {
                default: budget(u32::MAX),
                crawler: budget(1),
                ..Budgets::default()
            }),
            outbound: OutboundSettings {
                timeout: ms(2500),
                allow_private: true,
                max_bytes: 1 << 30,
            },
            edge_trust: EdgeTrust {
                token: Some("edge-secret".to_owned()),
                proxies: vec![
                    "10.0.0.0/8".parse().expect("net"),
                    "2001:db8::1/128".parse().expect("net"),
                ],
            },
        },
        application: ApplicationConfig {
            admin_token: Some("admin-secret".to_owned()),
            image_signing_key: Some("k3y".to_owned()),
            uploads: UploadLimits {
                max_bytes: 1,
                max_pixels: 1_000_000_000,
            },
            comments_cache_ttl: secs(0),
            edge_purge: Some(EdgePurgeTarget {
                url: "https://app.example.com/__rampart/purge".to_owned(),
                token: Some("purge-secret".to_owned()),
            }),
        },
        jobs: full_jobs(),
        status: StatusConfig {
            allow_networks: vec![
                "127.0.0.1/32".parse().expect("net"),
                "10.0.0.0/8".parse().expect("net"),
                "::1/128".parse().expect("net"),
            ],
            slow_request: ms(1),
            sample_interval: secs(60),
        },
        shield: ShieldConfig {
            upstreams: vec![
                "http://127.0.0.1:3000".parse().expect("uri"),
                "http://10.0.0.2:8080".parse().expect("uri"),
            ],
            balance: Balance::LeastLoaded,
            connect_timeout: ms(500),
            first_byte_timeout: ms(9000),
            idle_timeout: ms(7000),
            health_path: Some("/healthz".to_owned()),
            health_interval: ms(250),
            tls_ca_file: Some(FULL_CA_FILE.into()),
            policy: Some(shared::policy::Policy::shield()),
        },
    }
}

fn full_jobs() -> JobsConfig {
    use crate::core::jobs::{JobSettings, Queue, Retention};
    let mut concurrency = JobSettings::default().concurrency;
    concurrency.insert(Queue::Crawler, 0);
    concurrency.insert(Queue::CacheRefresh, 16);
    JobsConfig {
        settings: JobSettings {
            concurrency,
            visibility_timeout: Duration::from_millis(5000),
            run_timeout: Duration::from_millis(2000),
            retry: RetryPolicy {
                attempts: 100,
                // The backoff's start and growth are the origin's retry settings.
                initial_delay: Duration::ZERO,
                max_delay: Duration::ZERO,
                factor: 1.5,
            },
            retention: Retention {
                keep_for: Duration::ZERO,
                keep_count: 1_000_000,
            },
            max_wait: Duration::from_secs(1),
            buffer_max: 0,
        },
        warm_schedule: None,
        cleanup_schedule: Some("0 4 * * 1".to_owned()),
        dead_report_schedule: Some("*/15 * * * *".to_owned()),
        audit_retention_days: 0,
        webhook: Some(jobs::WebhookTarget {
            url: "https://hooks.example.com/rampart".to_owned(),
            secret: "whsec".to_owned(),
        }),
        cloudflare: Some(jobs::CloudflareTarget {
            api_base: "http://127.0.0.1:9999/client/v4".to_owned(),
            zone_id: "023e105f4ecef8ad9ca31a8372d0c353".to_owned(),
            token: "cf-token".to_owned(),
        }),
    }
}

#[test]
fn a_full_valid_environment_parses() {
    write_full_ca_file();
    assert_eq!(Config::from_source(source(FULL)), Ok(full_expected()));
}

#[test]
fn the_full_environment_sets_every_variable() {
    let set: BTreeSet<&str> = FULL.iter().map(|(name, _)| *name).collect();
    let known: BTreeSet<&str> = Config::variables().collect();
    assert_eq!(set, known);
}

#[test]
fn only_the_listed_variables_are_read() {
    let asked = RefCell::new(BTreeSet::new());
    Config::from_source(|name| {
        asked.borrow_mut().insert(name.to_owned());
        None
    })
    .expect("defaults");
    let known: BTreeSet<String> = Config::variables().map(str::to_owned).collect();
    assert_eq!(asked.into_inner(), known);
}

#[test]
fn outbound_timeout_under_its_own_name_and_its_former_one() {
    let timeout = |pairs: &[(&str, &str)]| {
        Config::from_source(source(pairs)).map(|c| c.resilience.outbound.timeout)
    };
    let ms = Duration::from_millis;
    assert_eq!(timeout(&[("OUTBOUND_TIMEOUT_MS", "1500")]), Ok(ms(1500)));
    assert_eq!(
        timeout(&[("CIRCUIT_BREAKER_TIMEOUT", "2500")]),
        Ok(ms(2500))
    );
    let both = [
        ("OUTBOUND_TIMEOUT_MS", "1500"),
        ("CIRCUIT_BREAKER_TIMEOUT", "2500"),
    ];
    assert_eq!(timeout(&both), Ok(ms(1500)), "the new name wins");
    let bad_alias = [
        ("OUTBOUND_TIMEOUT_MS", "1500"),
        ("CIRCUIT_BREAKER_TIMEOUT", "0"),
    ];
    let error = timeout(&bad_alias).expect_err("a bad alias is refused too");
    assert_eq!(error.variable, "CIRCUIT_BREAKER_TIMEOUT");
}

#[test]
fn the_message_names_variable_value_and_range() {
    let error = refused(&[("DATABASE_POOL_SIZE", "0")]);
    assert_eq!(
        error.to_string(),
        "DATABASE_POOL_SIZE=0: must be between 1 and 1000"
    );
    assert_eq!(error.problem, Problem::OutOfRange(Range::new(1, 1000)));
}

/// One bad value: the variable, the value, how the message shows it, and the accepted range
/// (or form) the message must state.
struct Bad {
    variable: &'static str,
    value: &'static str,
    shown: &'static str,
    accepted: &'static str,
}

const fn bad(variable: &'static str, value: &'static str, accepted: &'static str) -> Bad {
    Bad {
        variable,
        value,
        shown: value,
        accepted,
    }
}

/// A secret is not repeated in the message: its length is.
const fn secret(variable: &'static str, value: &'static str, shown: &'static str) -> Bad {
    Bad {
        variable,
        value,
        shown,
        accepted: "1 to 1024 visible ASCII characters (no spaces)",
    }
}

const ADDRESS: &str = "an IP address and a port from 0 to 65535";
const FLAG: &str = "one of true, false, 1, 0, yes, no, on, off";
const HOUR_FROM_0: &str = "between 0 and 3600000";
const HOUR_FROM_1: &str = "between 1 and 3600000";
const YEAR: &str = "between 0 and 31536000";
const REQUESTS: &str = "between 1 and 4294967295";

/// Every variable with values it refuses; those marked "clamped" used to be clamped silently.
const BAD: &[Bad] = &[
    bad("ORIGIN_ADDR", "nope", ADDRESS),
    bad("ORIGIN_ADDR", "127.0.0.1:70000", ADDRESS),
    bad("METRICS_ADDR", "localhost", ADDRESS),
    bad("ADMIN_ADDR", ":9901", ADDRESS),
    bad("LOG_FORMAT", "xml", "one of pretty, json"),
    bad("MAX_HEADER_SIZE", "4096", "between 8192 and 1048576"),
    bad("MAX_HEADER_SIZE", "99999999999", "between 8192 and 1048576"), // clamped
    bad(
        "MAX_HEADER_SIZE",
        "big",
        "a whole number between 8192 and 1048576",
    ),
    bad("HEADER_READ_TIMEOUT_MS", "0", HOUR_FROM_1),
    bad("SHUTDOWN_TIMEOUT", "3600001", HOUR_FROM_0),
    bad("SHUTDOWN_TIMEOUT", "-1", HOUR_FROM_0),
    bad("SHUTDOWN_DELAY_MS", "600001", "between 0 and 600000"),
    bad("SLOW_REQUEST_MS", "5s", HOUR_FROM_0),
    bad("CACHE_ENABLED", "maybe", FLAG),
    bad(
        "CACHE_MAX_SIZE",
        "lots",
        "between 1048576 and 1099511627776",
    ),
    bad(
        "CACHE_MAX_SIZE",
        "1000",
        "between 1048576 and 1099511627776",
    ),
    bad("CACHE_MAX_BODY_BYTES", "0", "between 1 and 1099511627776"),
    bad(
        "CACHE_MAX_BODY_BYTES",
        "67108865",
        "between 1 and CACHE_MAX_SIZE (67108864)",
    ),
    bad("CACHE_TTL", "31536001", YEAR),
    bad("CACHE_STALE_WHILE_REVALIDATE_TTL", "-5", YEAR),
    bad("CACHE_WARM_PATHS", "/ok,api/stats", "paths starting with /"),
    bad("CACHE_WARM_HOST", "bad host", "a host name or address"),
    bad("REDIS_URL", "localhost:6379", "a Redis URL"),
    bad(
        "REDIS_KEY_PREFIX",
        "my prefix",
        "0 to 256 visible ASCII characters",
    ),
    bad("REDIS_TIMEOUT_MS", "0", "between 1 and 60000"),
    bad(
        "REDIS_CLUSTER_NODES",
        "127.0.0.1:7001,127.0.0.1:port",
        "comma-separated host:port pairs",
    ),
    bad(
        "REDIS_TLS_CA_FILE",
        "/nonexistent/ca.pem",
        "a readable PEM file of CA certificates",
    ),
    bad(
        "DATABASE_URL",
        "mysql://db/x",
        "sqlite:<file> or postgres://",
    ),
    bad("DATABASE_POOL_SIZE", "0", "between 1 and 1000"),
    bad("DATABASE_POOL_SIZE", "5000000000", "between 1 and 1000"), // clamped
    bad("DATABASE_QUERY_TIMEOUT_MS", "0", HOUR_FROM_1),
    bad("DEMO_DATA", "lots", "one of full, small, none"),
    bad("MAX_CONCURRENT_REQUESTS", "0", "between 1 and 1000000"), // clamped
    bad("MAX_QUEUED_REQUESTS", "1000001", "between 0 and 1000000"),
    bad("QUEUE_TIMEOUT_MS", "soon", HOUR_FROM_0),
    bad("REQUEST_TIMEOUT", "0", HOUR_FROM_1),
    bad("REQUEST_TIMEOUT_RULES", "stats", HOUR_FROM_1),
    bad("REQUEST_TIMEOUT_RULES", "stats=0", HOUR_FROM_1),
    bad(
        "REQUEST_TIMEOUT_RULES",
        "statz=100",
        "one of health, metrics",
    ),
    bad("RATE_LIMIT_ENABLED", "sometimes", FLAG),
    bad("RATE_LIMIT_WINDOW_MS", "0", "between 1000 and 86400000"), // clamped
    bad(
        "RATE_LIMIT_WINDOW_MS",
        "1500",
        "multiple of 1000 between 1000 and 86400000",
    ), // rounded
    bad("RATE_LIMIT_MAX_REQUESTS", "0", REQUESTS),                 // clamped
    bad("RATE_LIMIT_MAX_REQUESTS", "4294967296", REQUESTS),        // clamped
    bad("RATE_LIMIT_CRAWLER_MAX_REQUESTS", "0", REQUESTS),         // clamped
    secret(
        "ORIGIN_AUTH_TOKEN",
        "has space",
        "(9 characters, not shown)",
    ),
    bad(
        "TRUSTED_PROXIES",
        "10.0.0.0/33",
        "IP addresses or CIDR ranges",
    ),
    bad(
        "CIRCUIT_BREAKER_ERROR_THRESHOLD",
        "0",
        "between 1 and 10000",
    ), // clamped
    bad("CIRCUIT_BREAKER_RESET_TIMEOUT", "0", HOUR_FROM_1),
    bad("OUTBOUND_TIMEOUT_MS", "0", HOUR_FROM_1),
    bad("CIRCUIT_BREAKER_TIMEOUT", "0", HOUR_FROM_1),
    bad("OUTBOUND_ALLOW_PRIVATE", "yes please", FLAG),
    bad("OUTBOUND_MAX_BYTES", "0", "between 1 and 1073741824"),
    bad("RETRY_MAX_ATTEMPTS", "0", "between 1 and 10"), // clamped
    bad(
        "RETRY_INITIAL_DELAY_MS",
        "20000",
        "between 0 and RETRY_MAX_DELAY_MS (10000)",
    ), // clamped
    bad("RETRY_MAX_DELAY_MS", "3600001", HOUR_FROM_0),
    bad("RETRY_BACKOFF_FACTOR", "0.5", "a number between 1 and 10"),
    bad("RETRY_BUDGET_PERCENT", "101", "between 0 and 100"), // clamped
    secret("ADMIN_TOKEN", "two words", "(9 characters, not shown)"),
    secret("IMAGE_SIGNING_KEY", "key\n", "(4 characters, not shown)"),
    bad("UPLOAD_MAX_BYTES", "0", "between 1 and 1073741824"),
    bad("UPLOAD_MAX_PIXELS", "0", "between 1 and 1000000000"),
    bad("COMMENTS_CACHE_TTL", "forever", YEAR),
    bad(
        "EDGE_PURGE_URL",
        "ftp://edge/purge",
        "an http:// or https:// URL",
    ),
    secret("EDGE_PURGE_TOKEN", "tab\there", "(8 characters, not shown)"),
    bad("JOBS_CONCURRENCY", "crawler=1000", jobs::CONCURRENCY),
    bad("JOBS_CONCURRENCY", "mail=2", jobs::CONCURRENCY),
    bad(
        "JOBS_VISIBILITY_TIMEOUT_MS",
        "999",
        "between 1000 and 3600000",
    ),
    bad("JOBS_RUN_TIMEOUT_MS", "0", HOUR_FROM_1),
    bad("JOBS_MAX_ATTEMPTS", "0", "between 1 and 100"),
    bad(
        "JOBS_RETRY_MAX_DELAY_MS",
        "86400001",
        "between 0 and 86400000",
    ),
    bad("JOBS_KEEP_SECONDS", "-1", "between 0 and 2592000"),
    bad("JOBS_KEEP_COUNT", "1000001", "between 0 and 1000000"),
    bad("JOBS_MAX_WAIT_SECONDS", "0", "between 1 and 86400"),
    bad("JOBS_BUFFER_MAX", "lots", "between 0 and 1000000"),
    bad("JOBS_WARM_SCHEDULE", "every 5 minutes", jobs::SCHEDULE),
    bad("JOBS_CLEANUP_SCHEDULE", "0 0 3 * * *", jobs::SCHEDULE),
    bad("JOBS_DEAD_REPORT_SCHEDULE", "61 * * * *", jobs::SCHEDULE),
    bad("AUDIT_RETENTION_DAYS", "36501", "between 0 and 36500"),
    bad("WEBHOOK_URL", "mailto:ops@example.com", jobs::HTTP_URL),
    secret("WEBHOOK_SECRET", "two words", "(9 characters, not shown)"),
    bad(
        "CLOUDFLARE_ZONE_ID",
        "zone with spaces",
        "1 to 64 visible ASCII characters",
    ),
    secret(
        "CLOUDFLARE_API_TOKEN",
        "tok en",
        "(6 characters, not shown)",
    ),
    bad("CLOUDFLARE_API_BASE", "api.cloudflare.com", jobs::HTTP_URL),
    bad(
        "STATUS_ALLOW_NETWORKS",
        "127.0.0.1/32,office",
        "IP addresses or CIDR ranges",
    ),
    bad("STATUS_SLOW_MS", "0", HOUR_FROM_1),
    bad("STATUS_SLOW_MS", "half a second", HOUR_FROM_1),
    bad("STATUS_SAMPLE_SECONDS", "0", "between 1 and 60"),
    bad("STATUS_SAMPLE_SECONDS", "61", "between 1 and 60"),
    bad("UPSTREAM_URL", "ftp://app.internal", shield::UPSTREAM_URL),
    bad(
        "UPSTREAM_URL",
        "http://app.internal/api",
        shield::UPSTREAM_URL,
    ),
    bad(
        "UPSTREAM_BALANCE",
        "random",
        "one of round-robin, least-loaded",
    ),
    bad("UPSTREAM_CONNECT_TIMEOUT_MS", "0", "between 1 and 600000"),
    bad(
        "UPSTREAM_FIRST_BYTE_TIMEOUT_MS",
        "600001",
        "between 1 and 600000",
    ),
    bad("UPSTREAM_IDLE_TIMEOUT_MS", "soon", "between 1 and 600000"),
    bad(
        "UPSTREAM_HEALTH_PATH",
        "healthz",
        shield::UPSTREAM_HEALTH_PATH,
    ),
    bad(
        "UPSTREAM_HEALTH_INTERVAL_MS",
        "99",
        "between 100 and 3600000",
    ),
    bad(
        "UPSTREAM_TLS_CA_FILE",
        "/nonexistent/ca.pem",
        "a readable PEM file of CA certificates",
    ),
    bad(
        "SHIELD_POLICY_FILE",
        "/nonexistent/shield-policy.toml",
        "a readable policy file in TOML",
    ),
];

#[test]
fn every_bad_value_is_refused_naming_variable_value_and_range() {
    for case in BAD {
        let error = refused(&[(case.variable, case.value)]);
        let message = error.to_string();
        assert_eq!(error.variable, case.variable, "{message}");
        assert_eq!(error.value, case.shown, "{message}");
        let prefix = format!("{}={}: must be ", case.variable, case.shown);
        assert!(message.starts_with(&prefix), "{message}");
        assert!(message.contains(case.accepted), "{message}");
        if case.shown != case.value {
            assert!(
                !message.contains(case.value),
                "a secret is not shown: {message}"
            );
        }
    }
}

#[test]
fn every_variable_has_a_bad_value_in_the_table() {
    let covered: BTreeSet<&str> = BAD.iter().map(|case| case.variable).collect();
    let known: BTreeSet<&str> = Config::variables().collect();
    assert_eq!(covered, known);
}

#[test]
fn configuration_built_in_code_is_checked_alike() {
    let mut config = Config::default();
    config.database.pool_size = 0;
    let error = config.validate().expect_err("refused");
    assert_eq!(
        error.to_string(),
        "DATABASE_POOL_SIZE=0: must be between 1 and 1000"
    );
    let mut config = Config::default();
    config.resilience.retry_budget_percent = 150;
    let message = config.validate().expect_err("refused").to_string();
    assert_eq!(
        message,
        "RETRY_BUDGET_PERCENT=150: must be between 0 and 100"
    );
    let mut config = Config::default();
    config.listener.header_read_timeout = Duration::ZERO;
    let message = config.validate().expect_err("refused").to_string();
    assert_eq!(
        message,
        "HEADER_READ_TIMEOUT_MS=0: must be between 1 and 3600000"
    );
}

#[test]
fn urls_in_messages_lose_their_password() {
    let error = refused(&[("DATABASE_URL", "mysql://app:hunter2@db/x")]);
    assert_eq!(error.value, "mysql://app:***@db/x");
    assert!(!error.to_string().contains("hunter2"));
}

/// The README's configuration table: `(name, accepted)` of each `origin env` row.
fn readme_rows() -> BTreeMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    readme
        .lines()
        .filter_map(|line| line.strip_prefix("| origin env | `"))
        .filter_map(|rest| {
            let (name, rest) = rest.split_once('`')?;
            let cells: Vec<&str> = rest.split(" | ").collect();
            Some((name.to_owned(), cells.get(2)?.trim().to_owned()))
        })
        .collect()
}

#[test]
fn the_readme_lists_every_variable_with_what_it_accepts() {
    let rows = readme_rows();
    for variable in Config::variables() {
        let accepted = rows
            .get(variable)
            .unwrap_or_else(|| panic!("{variable} in README"));
        assert!(
            !accepted.is_empty(),
            "{variable}: accepted values in README"
        );
    }
    for case in BAD {
        let accepted = case.accepted;
        let Some(range) = accepted
            .strip_prefix("between ")
            .or_else(|| accepted.strip_prefix("a whole number between "))
        else {
            continue;
        };
        let Some((min, max)) = range.split_once(" and ") else {
            continue;
        };
        // A bound set by another variable is documented with that variable.
        if !max.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let documented = &rows[case.variable];
        assert!(
            documented.contains(min) && documented.contains(max),
            "{}: README says {documented:?}, the code {min} to {max}",
            case.variable
        );
    }
}
