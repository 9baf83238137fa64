//! Background jobs: how many run at once per queue, how patiently they are retried, how long
//! finished ones are kept, when scheduled ones run, and where purges and webhooks go.

use std::collections::HashMap;

use super::{read, ConfigError, Problem, Range};
use crate::core::jobs::{schedule, JobSettings, Queue};

/// `JOBS_CONCURRENCY`: `queue=n` pairs, jobs run at once per queue on each instance.
pub const ENV_JOBS_CONCURRENCY: &str = "JOBS_CONCURRENCY";
/// `JOBS_VISIBILITY_TIMEOUT_MS`: a job whose worker is silent this long is taken over.
pub const ENV_JOBS_VISIBILITY_TIMEOUT_MS: &str = "JOBS_VISIBILITY_TIMEOUT_MS";
/// `JOBS_RUN_TIMEOUT_MS`: bound on one run of a job.
pub const ENV_JOBS_RUN_TIMEOUT_MS: &str = "JOBS_RUN_TIMEOUT_MS";
/// `JOBS_MAX_ATTEMPTS`: runs per job before it is dead-lettered.
pub const ENV_JOBS_MAX_ATTEMPTS: &str = "JOBS_MAX_ATTEMPTS";
/// `JOBS_RETRY_MAX_DELAY_MS`: the largest backoff bound between a job's attempts.
pub const ENV_JOBS_RETRY_MAX_DELAY_MS: &str = "JOBS_RETRY_MAX_DELAY_MS";
/// `JOBS_KEEP_SECONDS`: how long finished jobs are kept for inspection.
pub const ENV_JOBS_KEEP_SECONDS: &str = "JOBS_KEEP_SECONDS";
/// `JOBS_KEEP_COUNT`: how many finished jobs are kept per queue.
pub const ENV_JOBS_KEEP_COUNT: &str = "JOBS_KEEP_COUNT";
/// `JOBS_MAX_WAIT_SECONDS`: readiness fails when a queue's oldest job waits longer.
pub const ENV_JOBS_MAX_WAIT_SECONDS: &str = "JOBS_MAX_WAIT_SECONDS";
/// `JOBS_BUFFER_MAX`: jobs held in process while Redis is unreachable.
pub const ENV_JOBS_BUFFER_MAX: &str = "JOBS_BUFFER_MAX";
/// `JOBS_WARM_SCHEDULE`: when the hot paths are warmed (cron, UTC; `off`).
pub const ENV_JOBS_WARM_SCHEDULE: &str = "JOBS_WARM_SCHEDULE";
/// `JOBS_CLEANUP_SCHEDULE`: when retention runs (cron, UTC; `off`).
pub const ENV_JOBS_CLEANUP_SCHEDULE: &str = "JOBS_CLEANUP_SCHEDULE";
/// `JOBS_DEAD_REPORT_SCHEDULE`: when dead letters are reported (cron, UTC; `off`).
pub const ENV_JOBS_DEAD_REPORT_SCHEDULE: &str = "JOBS_DEAD_REPORT_SCHEDULE";
/// `AUDIT_RETENTION_DAYS`: audit-log entries older than this are deleted (0 keeps them).
pub const ENV_AUDIT_RETENTION_DAYS: &str = "AUDIT_RETENTION_DAYS";
/// `WEBHOOK_URL`: where task changes are delivered.
pub const ENV_WEBHOOK_URL: &str = "WEBHOOK_URL";
/// `WEBHOOK_SECRET`: the key deliveries are signed with.
pub const ENV_WEBHOOK_SECRET: &str = "WEBHOOK_SECRET";
/// `CLOUDFLARE_ZONE_ID`: the zone whose cache invalidations are purged through Cloudflare's API.
pub const ENV_CLOUDFLARE_ZONE_ID: &str = "CLOUDFLARE_ZONE_ID";
/// `CLOUDFLARE_API_TOKEN`: a token with the zone's Cache Purge permission.
pub const ENV_CLOUDFLARE_API_TOKEN: &str = "CLOUDFLARE_API_TOKEN";
/// `CLOUDFLARE_API_BASE`: Cloudflare's API (a test double in tests).
pub const ENV_CLOUDFLARE_API_BASE: &str = "CLOUDFLARE_API_BASE";

/// Every variable this concern reads.
pub const VARIABLES: &[&str] = &[
    ENV_JOBS_CONCURRENCY,
    ENV_JOBS_VISIBILITY_TIMEOUT_MS,
    ENV_JOBS_RUN_TIMEOUT_MS,
    ENV_JOBS_MAX_ATTEMPTS,
    ENV_JOBS_RETRY_MAX_DELAY_MS,
    ENV_JOBS_KEEP_SECONDS,
    ENV_JOBS_KEEP_COUNT,
    ENV_JOBS_MAX_WAIT_SECONDS,
    ENV_JOBS_BUFFER_MAX,
    ENV_JOBS_WARM_SCHEDULE,
    ENV_JOBS_CLEANUP_SCHEDULE,
    ENV_JOBS_DEAD_REPORT_SCHEDULE,
    ENV_AUDIT_RETENTION_DAYS,
    ENV_WEBHOOK_URL,
    ENV_WEBHOOK_SECRET,
    ENV_CLOUDFLARE_ZONE_ID,
    ENV_CLOUDFLARE_API_TOKEN,
    ENV_CLOUDFLARE_API_BASE,
];

/// Workers per queue: none to 256.
pub const JOBS_CONCURRENCY: Range = Range::new(0, 256);
/// A second to an hour.
pub const JOBS_VISIBILITY_TIMEOUT_MS: Range = Range::new(1000, 3_600_000);
/// Up to an hour.
pub const JOBS_RUN_TIMEOUT_MS: Range = Range::new(1, 3_600_000);
/// 1 to 100 runs.
pub const JOBS_MAX_ATTEMPTS: Range = Range::new(1, 100);
/// Up to a day.
pub const JOBS_RETRY_MAX_DELAY_MS: Range = Range::new(0, 86_400_000);
/// Up to 30 days.
pub const JOBS_KEEP_SECONDS: Range = Range::new(0, 2_592_000);
/// Up to a million per queue.
pub const JOBS_KEEP_COUNT: Range = Range::new(0, 1_000_000);
/// A second to a day.
pub const JOBS_MAX_WAIT_SECONDS: Range = Range::new(1, 86_400);
/// Up to a million jobs.
pub const JOBS_BUFFER_MAX: Range = Range::new(0, 1_000_000);
/// Up to a hundred years.
pub const AUDIT_RETENTION_DAYS: Range = Range::new(0, 36_500);
/// Zone ids are 32 hexadecimal characters; anything visible up to 64 is accepted.
pub const CLOUDFLARE_ZONE_ID: Range = Range::new(1, 64);
/// What the schedules accept.
pub const SCHEDULE: &str = "a 5-field cron expression in UTC, such as 17 3 * * *, or off";
/// What `JOBS_CONCURRENCY` accepts.
pub const CONCURRENCY: &str = "queue=workers pairs separated by commas, the queues being cache-refresh, edge-purge, crawler, cleanup and notifications, each between 0 and 256";
/// What the URLs accept.
pub const HTTP_URL: &str = "an http:// or https:// URL";

/// A webhook target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// Where deliveries go.
    pub url: String,
    /// The signing key.
    pub secret: String,
}

/// Cloudflare's purge API for one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudflareTarget {
    /// The API's base URL.
    pub api_base: String,
    /// The zone.
    pub zone_id: String,
    /// The API token.
    pub token: String,
}

/// Background jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobsConfig {
    /// How the queues run (the backoff's first bound and factor are the origin's retry settings).
    pub settings: JobSettings,
    /// When the hot paths are warmed; `None`: never.
    pub warm_schedule: Option<String>,
    /// When retention runs; `None`: never.
    pub cleanup_schedule: Option<String>,
    /// When dead letters are reported; `None`: never.
    pub dead_report_schedule: Option<String>,
    /// Audit-log entries are kept this many days; 0 keeps them forever.
    pub audit_retention_days: u32,
    /// Where task changes are delivered, if anywhere.
    pub webhook: Option<WebhookTarget>,
    /// Cloudflare's purge API, if invalidations go there too.
    pub cloudflare: Option<CloudflareTarget>,
}

impl Default for JobsConfig {
    /// [`JobSettings::default`]; warm-up every 10 minutes, retention daily at 03:17, dead
    /// letters reported hourly; audit entries kept 90 days; no webhook, no Cloudflare.
    fn default() -> Self {
        Self {
            settings: JobSettings::default(),
            warm_schedule: Some("*/10 * * * *".to_owned()),
            cleanup_schedule: Some("17 3 * * *".to_owned()),
            dead_report_schedule: Some("0 * * * *".to_owned()),
            audit_retention_days: 90,
            webhook: None,
            cloudflare: None,
        }
    }
}

impl JobsConfig {
    /// Reads this concern's variables from `source`; unset ones keep their defaults.
    pub fn from_source(source: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let d = &defaults.settings;
        let mut concurrency = d.concurrency.clone();
        if let Some(pairs) = read::parsed(source, ENV_JOBS_CONCURRENCY, CONCURRENCY, parse_pairs)? {
            concurrency.extend(pairs);
        }
        let millis = |variable, range| read::millis(source, variable, range);
        let seconds = |variable, range| read::seconds(source, variable, range);
        let settings = JobSettings {
            concurrency,
            visibility_timeout: millis(ENV_JOBS_VISIBILITY_TIMEOUT_MS, JOBS_VISIBILITY_TIMEOUT_MS)?
                .unwrap_or(d.visibility_timeout),
            run_timeout: millis(ENV_JOBS_RUN_TIMEOUT_MS, JOBS_RUN_TIMEOUT_MS)?
                .unwrap_or(d.run_timeout),
            retry: crate::core::dependencies::retry::RetryPolicy {
                attempts: read::whole(source, ENV_JOBS_MAX_ATTEMPTS, JOBS_MAX_ATTEMPTS)?
                    .unwrap_or(d.retry.attempts),
                max_delay: millis(ENV_JOBS_RETRY_MAX_DELAY_MS, JOBS_RETRY_MAX_DELAY_MS)?
                    .unwrap_or(d.retry.max_delay),
                ..d.retry
            },
            retention: crate::core::jobs::Retention {
                keep_for: seconds(ENV_JOBS_KEEP_SECONDS, JOBS_KEEP_SECONDS)?
                    .unwrap_or(d.retention.keep_for),
                keep_count: read::whole(source, ENV_JOBS_KEEP_COUNT, JOBS_KEEP_COUNT)?
                    .unwrap_or(d.retention.keep_count),
            },
            max_wait: seconds(ENV_JOBS_MAX_WAIT_SECONDS, JOBS_MAX_WAIT_SECONDS)?
                .unwrap_or(d.max_wait),
            buffer_max: read::whole(source, ENV_JOBS_BUFFER_MAX, JOBS_BUFFER_MAX)?
                .unwrap_or(d.buffer_max),
        };
        let schedule = |variable, default: &Option<String>| {
            read::parsed(source, variable, SCHEDULE, parse_schedule)
                .map(|read| read.unwrap_or_else(|| default.clone()))
        };
        let config = Self {
            settings,
            warm_schedule: schedule(ENV_JOBS_WARM_SCHEDULE, &defaults.warm_schedule)?,
            cleanup_schedule: schedule(ENV_JOBS_CLEANUP_SCHEDULE, &defaults.cleanup_schedule)?,
            dead_report_schedule: schedule(
                ENV_JOBS_DEAD_REPORT_SCHEDULE,
                &defaults.dead_report_schedule,
            )?,
            audit_retention_days: read::whole(
                source,
                ENV_AUDIT_RETENTION_DAYS,
                AUDIT_RETENTION_DAYS,
            )?
            .unwrap_or(defaults.audit_retention_days),
            webhook: webhook(source)?,
            cloudflare: cloudflare(source)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every value against what its variable accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (queue, workers) in &self.settings.concurrency {
            if !(JOBS_CONCURRENCY.min..=JOBS_CONCURRENCY.max).contains(&(*workers as u64)) {
                let value = format!("{queue}={workers}");
                return Err(read::malformed(ENV_JOBS_CONCURRENCY, &value, CONCURRENCY));
            }
        }
        let s = &self.settings;
        JOBS_VISIBILITY_TIMEOUT_MS
            .check_millis(ENV_JOBS_VISIBILITY_TIMEOUT_MS, s.visibility_timeout)?;
        JOBS_RUN_TIMEOUT_MS.check_millis(ENV_JOBS_RUN_TIMEOUT_MS, s.run_timeout)?;
        JOBS_MAX_ATTEMPTS.check(ENV_JOBS_MAX_ATTEMPTS, u64::from(s.retry.attempts))?;
        JOBS_RETRY_MAX_DELAY_MS.check_millis(ENV_JOBS_RETRY_MAX_DELAY_MS, s.retry.max_delay)?;
        JOBS_KEEP_SECONDS.check(ENV_JOBS_KEEP_SECONDS, s.retention.keep_for.as_secs())?;
        JOBS_KEEP_COUNT.check(ENV_JOBS_KEEP_COUNT, s.retention.keep_count)?;
        JOBS_MAX_WAIT_SECONDS.check(ENV_JOBS_MAX_WAIT_SECONDS, s.max_wait.as_secs())?;
        JOBS_BUFFER_MAX.check(ENV_JOBS_BUFFER_MAX, s.buffer_max as u64)?;
        AUDIT_RETENTION_DAYS.check(
            ENV_AUDIT_RETENTION_DAYS,
            u64::from(self.audit_retention_days),
        )?;
        if let Some(hook) = &self.webhook {
            check_url(ENV_WEBHOOK_URL, &hook.url)?;
            read::check_secret(ENV_WEBHOOK_SECRET, &hook.secret, read::SECRET_LENGTH)?;
        }
        if let Some(cloudflare) = &self.cloudflare {
            check_url(ENV_CLOUDFLARE_API_BASE, &cloudflare.api_base)?;
            read::check_text(
                ENV_CLOUDFLARE_ZONE_ID,
                &cloudflare.zone_id,
                CLOUDFLARE_ZONE_ID,
            )?;
            read::check_secret(
                ENV_CLOUDFLARE_API_TOKEN,
                &cloudflare.token,
                read::SECRET_LENGTH,
            )?;
        }
        Ok(())
    }
}

fn parse_pairs(text: &str) -> Option<HashMap<Queue, usize>> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (queue, workers) = pair.split_once('=')?;
            let workers: usize = workers.trim().parse().ok()?;
            (workers as u64 <= JOBS_CONCURRENCY.max)
                .then_some((Queue::from_name(queue.trim())?, workers))
        })
        .collect()
}

fn parse_schedule(text: &str) -> Option<Option<String>> {
    if text == "off" {
        return Some(None);
    }
    schedule::parse(text).ok().map(|_| Some(text.to_owned()))
}

fn check_url(variable: &'static str, url: &str) -> Result<(), ConfigError> {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(()),
        _ => Err(read::malformed(variable, url, HTTP_URL)),
    }
}

fn webhook(source: &impl Fn(&str) -> Option<String>) -> Result<Option<WebhookTarget>, ConfigError> {
    let secret = read::secret(source, ENV_WEBHOOK_SECRET, read::SECRET_LENGTH)?;
    let Some(url) = read::trimmed(source, ENV_WEBHOOK_URL) else {
        return Ok(None);
    };
    check_url(ENV_WEBHOOK_URL, &url)?;
    let Some(secret) = secret else {
        return Err(ConfigError::new(
            ENV_WEBHOOK_SECRET,
            "",
            Problem::Malformed {
                expected: "set when WEBHOOK_URL is: deliveries are always signed",
            },
        ));
    };
    Ok(Some(WebhookTarget { url, secret }))
}

fn cloudflare(
    source: &impl Fn(&str) -> Option<String>,
) -> Result<Option<CloudflareTarget>, ConfigError> {
    let token = read::secret(source, ENV_CLOUDFLARE_API_TOKEN, read::SECRET_LENGTH)?;
    let api_base = read::trimmed(source, ENV_CLOUDFLARE_API_BASE).unwrap_or_else(|| {
        crate::core::dependencies::cloudflare_purge::DEFAULT_API_BASE.to_owned()
    });
    check_url(ENV_CLOUDFLARE_API_BASE, &api_base)?;
    let Some(zone_id) = read::trimmed(source, ENV_CLOUDFLARE_ZONE_ID) else {
        return Ok(None);
    };
    read::check_text(ENV_CLOUDFLARE_ZONE_ID, &zone_id, CLOUDFLARE_ZONE_ID)?;
    let Some(token) = token else {
        return Err(ConfigError::new(
            ENV_CLOUDFLARE_API_TOKEN,
            "",
            Problem::Malformed {
                expected: "set when CLOUDFLARE_ZONE_ID is: the API needs a token",
            },
        ));
    };
    Ok(Some(CloudflareTarget {
        api_base,
        zone_id,
        token,
    }))
}
