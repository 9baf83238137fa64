//! Resilience: the circuit breakers, retries and their budget, admission (concurrency, queue,
//! request timeouts), rate limits, outbound HTTP and what proves a request came through the
//! edge. The settings are the core's own types; this file reads and checks them.

use std::time::Duration;

use shared::policy::Policy;
use shared::rate_limit::RateLimit;

use super::read;
use super::{saturating_u64, ConfigError, Problem, Range};
use crate::core::dependencies::breaker::BreakerSettings;
use crate::core::dependencies::outbound::OutboundSettings;
use crate::core::dependencies::retry::RetryPolicy;
use crate::core::http::client::{parse_proxies, EdgeTrust};
use crate::core::layers::admission::AdmissionLimits;
use crate::core::layers::rate_limit::Budgets;

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
/// `OUTBOUND_TIMEOUT_MS`: milliseconds each attempt of an outbound HTTP request may take.
pub const ENV_OUTBOUND_TIMEOUT_MS: &str = "OUTBOUND_TIMEOUT_MS";
/// `CIRCUIT_BREAKER_TIMEOUT`: the former name of `OUTBOUND_TIMEOUT_MS`, still accepted; when
/// both are set, `OUTBOUND_TIMEOUT_MS` wins (both must be valid).
pub const ENV_OUTBOUND_TIMEOUT_ALIAS: &str = "CIRCUIT_BREAKER_TIMEOUT";
/// `OUTBOUND_ALLOW_PRIVATE`: `true` lets outbound fetches reach private and loopback addresses.
pub const ENV_OUTBOUND_ALLOW_PRIVATE: &str = "OUTBOUND_ALLOW_PRIVATE";
/// `OUTBOUND_MAX_BYTES`: most bytes read of a fetched page.
pub const ENV_OUTBOUND_MAX_BYTES: &str = "OUTBOUND_MAX_BYTES";
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

/// Every variable this concern reads.
pub const VARIABLES: &[&str] = &[
    ENV_MAX_CONCURRENT_REQUESTS,
    ENV_MAX_QUEUED_REQUESTS,
    ENV_QUEUE_TIMEOUT_MS,
    ENV_REQUEST_TIMEOUT,
    ENV_REQUEST_TIMEOUT_RULES,
    ENV_RATE_LIMIT_ENABLED,
    ENV_RATE_LIMIT_WINDOW_MS,
    ENV_RATE_LIMIT_MAX_REQUESTS,
    ENV_RATE_LIMIT_CRAWLER_MAX_REQUESTS,
    ENV_ORIGIN_AUTH_TOKEN,
    ENV_TRUSTED_PROXIES,
    ENV_BREAKER_THRESHOLD,
    ENV_BREAKER_RESET_TIMEOUT,
    ENV_OUTBOUND_TIMEOUT_MS,
    ENV_OUTBOUND_TIMEOUT_ALIAS,
    ENV_OUTBOUND_ALLOW_PRIVATE,
    ENV_OUTBOUND_MAX_BYTES,
    ENV_RETRY_MAX_ATTEMPTS,
    ENV_RETRY_INITIAL_DELAY_MS,
    ENV_RETRY_MAX_DELAY_MS,
    ENV_RETRY_BACKOFF_FACTOR,
    ENV_RETRY_BUDGET_PERCENT,
];

/// From 1 to a million requests at once.
pub const MAX_CONCURRENT_REQUESTS: Range = Range::new(1, 1_000_000);
/// From no queue (0) to a million waiting requests.
pub const MAX_QUEUED_REQUESTS: Range = Range::new(0, 1_000_000);
/// From no wait (0) to an hour.
pub const QUEUE_TIMEOUT_MS: Range = Range::new(0, 3_600_000);
/// From 1 ms to an hour, for `REQUEST_TIMEOUT` and each rule of `REQUEST_TIMEOUT_RULES`.
pub const REQUEST_TIMEOUT: Range = Range::new(1, 3_600_000);
/// Whole seconds (budgets count in seconds) from 1 s to a day.
pub const RATE_LIMIT_WINDOW_MS: Range = Range::new(1000, 86_400_000);
/// From 1 request per window to the most a budget counts.
pub const RATE_LIMIT_MAX_REQUESTS: Range = Range::new(1, u32::MAX as u64);
/// From 1 failure to 10,000 within the breaker's window.
pub const BREAKER_THRESHOLD: Range = Range::new(1, 10_000);
/// From 1 ms to an hour.
pub const BREAKER_RESET_TIMEOUT: Range = Range::new(1, 3_600_000);
/// From 1 ms to an hour.
pub const OUTBOUND_TIMEOUT_MS: Range = Range::new(1, 3_600_000);
/// From 1 byte to 1 GiB.
pub const OUTBOUND_MAX_BYTES: Range = Range::new(1, 1 << 30);
/// From 1 attempt (no retries) to 10.
pub const RETRY_MAX_ATTEMPTS: Range = Range::new(1, 10);
/// From 0 ms to an hour; the initial delay is bounded by the maximum as well.
pub const RETRY_DELAY_MS: Range = Range::new(0, 3_600_000);
/// The backoff factor, from 1 (constant) to 10.
pub const RETRY_BACKOFF_FACTOR: (f64, f64) = (1.0, 10.0);
/// From 0 % to 100 % of calls.
pub const RETRY_BUDGET_PERCENT: Range = Range::new(0, 100);
/// What `TRUSTED_PROXIES` accepts.
pub const TRUSTED_PROXIES: &str =
    "comma-separated IP addresses or CIDR ranges, such as 10.0.0.0/8,2001:db8::/32";

/// Breakers, retries, admission, rate limits, outbound HTTP and edge trust.
#[derive(Debug, Clone, PartialEq)]
pub struct ResilienceConfig {
    /// When circuit breakers open and close.
    pub breakers: BreakerSettings,
    /// Retries of idempotent calls.
    pub retry: RetryPolicy,
    /// Retries may be at most this share of calls, in percent.
    pub retry_budget_percent: u32,
    /// Concurrency limit, wait queue and request timeout.
    pub admission: AdmissionLimits,
    /// Request timeouts of particular policy rules.
    pub request_timeout_rules: Vec<(String, Duration)>,
    /// Rate limits; `None` when turned off.
    pub rate_limits: Option<Budgets>,
    /// Outbound HTTP (link previews).
    pub outbound: OutboundSettings,
    /// What proves a request came through the edge.
    pub edge_trust: EdgeTrust,
}

impl Default for ResilienceConfig {
    /// The core's defaults for each part, a 20 % retry budget, no per-rule timeouts, rate
    /// limits on, no edge secret or trusted proxy.
    fn default() -> Self {
        Self {
            breakers: BreakerSettings::default(),
            retry: RetryPolicy::default(),
            retry_budget_percent: 20,
            admission: AdmissionLimits::default(),
            request_timeout_rules: Vec::new(),
            rate_limits: Some(Budgets::default()),
            outbound: OutboundSettings::default(),
            edge_trust: EdgeTrust::default(),
        }
    }
}

impl ResilienceConfig {
    /// Reads this concern's variables from `source`; unset ones keep their defaults.
    pub fn from_source(source: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let config = Self {
            breakers: breakers(source, defaults.breakers)?,
            retry: retry(source, defaults.retry)?,
            retry_budget_percent: read::whole(
                source,
                ENV_RETRY_BUDGET_PERCENT,
                RETRY_BUDGET_PERCENT,
            )?
            .unwrap_or(defaults.retry_budget_percent),
            admission: admission(source, defaults.admission)?,
            request_timeout_rules: rule_timeouts(source)?.unwrap_or(defaults.request_timeout_rules),
            rate_limits: rate_limits(source, defaults.rate_limits)?,
            outbound: outbound(source, defaults.outbound)?,
            edge_trust: edge_trust(source, defaults.edge_trust)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every value against what its variable accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let breakers = &self.breakers;
        BREAKER_THRESHOLD.check(ENV_BREAKER_THRESHOLD, breakers.failure_threshold.into())?;
        BREAKER_RESET_TIMEOUT.check_millis(ENV_BREAKER_RESET_TIMEOUT, breakers.reset_timeout)?;
        validate_retry(&self.retry)?;
        let percent = self.retry_budget_percent.into();
        RETRY_BUDGET_PERCENT.check(ENV_RETRY_BUDGET_PERCENT, percent)?;
        validate_admission(&self.admission)?;
        self.request_timeout_rules
            .iter()
            .try_for_each(|(rule, timeout)| validate_rule_timeout(rule, *timeout))?;
        if let Some(budgets) = &self.rate_limits {
            validate_budget(&budgets.default, ENV_RATE_LIMIT_MAX_REQUESTS)?;
            validate_budget(&budgets.crawler, ENV_RATE_LIMIT_CRAWLER_MAX_REQUESTS)?;
        }
        let outbound = &self.outbound;
        OUTBOUND_TIMEOUT_MS.check_millis(ENV_OUTBOUND_TIMEOUT_MS, outbound.timeout)?;
        let max_bytes = saturating_u64(outbound.max_bytes);
        OUTBOUND_MAX_BYTES.check(ENV_OUTBOUND_MAX_BYTES, max_bytes)?;
        match &self.edge_trust.token {
            Some(token) => read::check_secret(ENV_ORIGIN_AUTH_TOKEN, token, read::SECRET_LENGTH),
            None => Ok(()),
        }
    }

    /// The share of calls that may be retries, from 0 to 1.
    pub fn retry_budget_ratio(&self) -> f64 {
        f64::from(self.retry_budget_percent) / 100.0
    }
}

fn breakers(
    source: &impl Fn(&str) -> Option<String>,
    defaults: BreakerSettings,
) -> Result<BreakerSettings, ConfigError> {
    Ok(BreakerSettings {
        failure_threshold: read::whole(source, ENV_BREAKER_THRESHOLD, BREAKER_THRESHOLD)?
            .unwrap_or(defaults.failure_threshold),
        reset_timeout: read::millis(source, ENV_BREAKER_RESET_TIMEOUT, BREAKER_RESET_TIMEOUT)?
            .unwrap_or(defaults.reset_timeout),
        ..defaults
    })
}

fn retry(
    source: &impl Fn(&str) -> Option<String>,
    defaults: RetryPolicy,
) -> Result<RetryPolicy, ConfigError> {
    let delay = |variable, default| -> Result<Duration, ConfigError> {
        Ok(read::millis(source, variable, RETRY_DELAY_MS)?.unwrap_or(default))
    };
    let (min, max) = RETRY_BACKOFF_FACTOR;
    let factor = read::trimmed(source, ENV_RETRY_BACKOFF_FACTOR)
        .map(|text| match text.parse::<f64>() {
            Ok(factor) if (min..=max).contains(&factor) => Ok(factor),
            _ => Err(ConfigError::new(
                ENV_RETRY_BACKOFF_FACTOR,
                text,
                Problem::NotInDecimalRange { min, max },
            )),
        })
        .transpose()?;
    Ok(RetryPolicy {
        attempts: read::whole(source, ENV_RETRY_MAX_ATTEMPTS, RETRY_MAX_ATTEMPTS)?
            .unwrap_or(defaults.attempts),
        initial_delay: delay(ENV_RETRY_INITIAL_DELAY_MS, defaults.initial_delay)?,
        max_delay: delay(ENV_RETRY_MAX_DELAY_MS, defaults.max_delay)?,
        factor: factor.unwrap_or(defaults.factor),
    })
}

fn validate_retry(retry: &RetryPolicy) -> Result<(), ConfigError> {
    RETRY_MAX_ATTEMPTS.check(ENV_RETRY_MAX_ATTEMPTS, retry.attempts.into())?;
    RETRY_DELAY_MS.check_millis(ENV_RETRY_MAX_DELAY_MS, retry.max_delay)?;
    let max = saturating_u64(retry.max_delay.as_millis());
    let initial = Range::new(RETRY_DELAY_MS.min, max);
    initial
        .check_millis(ENV_RETRY_INITIAL_DELAY_MS, retry.initial_delay)
        .map_err(|error| ConfigError {
            problem: Problem::AboveOther {
                min: RETRY_DELAY_MS.min,
                other: ENV_RETRY_MAX_DELAY_MS,
                max,
            },
            ..error
        })?;
    let (min, max) = RETRY_BACKOFF_FACTOR;
    if (min..=max).contains(&retry.factor) {
        Ok(())
    } else {
        Err(ConfigError::new(
            ENV_RETRY_BACKOFF_FACTOR,
            retry.factor.to_string(),
            Problem::NotInDecimalRange { min, max },
        ))
    }
}

fn admission(
    source: &impl Fn(&str) -> Option<String>,
    defaults: AdmissionLimits,
) -> Result<AdmissionLimits, ConfigError> {
    Ok(AdmissionLimits {
        max_concurrent: read::whole(source, ENV_MAX_CONCURRENT_REQUESTS, MAX_CONCURRENT_REQUESTS)?
            .unwrap_or(defaults.max_concurrent),
        max_queued: read::whole(source, ENV_MAX_QUEUED_REQUESTS, MAX_QUEUED_REQUESTS)?
            .unwrap_or(defaults.max_queued),
        queue_timeout: read::millis(source, ENV_QUEUE_TIMEOUT_MS, QUEUE_TIMEOUT_MS)?
            .unwrap_or(defaults.queue_timeout),
        request_timeout: read::millis(source, ENV_REQUEST_TIMEOUT, REQUEST_TIMEOUT)?
            .unwrap_or(defaults.request_timeout),
    })
}

fn validate_admission(limits: &AdmissionLimits) -> Result<(), ConfigError> {
    let concurrent = saturating_u64(limits.max_concurrent);
    MAX_CONCURRENT_REQUESTS.check(ENV_MAX_CONCURRENT_REQUESTS, concurrent)?;
    let queued = saturating_u64(limits.max_queued);
    MAX_QUEUED_REQUESTS.check(ENV_MAX_QUEUED_REQUESTS, queued)?;
    QUEUE_TIMEOUT_MS.check_millis(ENV_QUEUE_TIMEOUT_MS, limits.queue_timeout)?;
    REQUEST_TIMEOUT.check_millis(ENV_REQUEST_TIMEOUT, limits.request_timeout)
}

/// `REQUEST_TIMEOUT_RULES`: `rule=ms` pairs, each rule one of the embedded policy's.
fn rule_timeouts(
    source: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Vec<(String, Duration)>>, ConfigError> {
    let Some(text) = read::trimmed(source, ENV_REQUEST_TIMEOUT_RULES) else {
        return Ok(None);
    };
    let refused = |problem| ConfigError::new(ENV_REQUEST_TIMEOUT_RULES, &text, problem);
    let mut timeouts = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = pair
            .split_once('=')
            .and_then(|(rule, ms)| Some((rule.trim(), ms.trim().parse::<u64>().ok()?)))
            .filter(|(_, ms)| (REQUEST_TIMEOUT.min..=REQUEST_TIMEOUT.max).contains(ms));
        let Some((rule, ms)) = parsed else {
            return Err(refused(Problem::NotRuleTimeouts(REQUEST_TIMEOUT)));
        };
        let timeout = Duration::from_millis(ms);
        validate_rule_timeout(rule, timeout).map_err(|error| refused(error.problem))?;
        timeouts.push((rule.to_owned(), timeout));
    }
    Ok(Some(timeouts))
}

fn validate_rule_timeout(rule: &str, timeout: Duration) -> Result<(), ConfigError> {
    let millis = saturating_u64(timeout.as_millis());
    let pair = format!("{rule}={millis}");
    if !(REQUEST_TIMEOUT.min..=REQUEST_TIMEOUT.max).contains(&millis) {
        let problem = Problem::NotRuleTimeouts(REQUEST_TIMEOUT);
        return Err(ConfigError::new(ENV_REQUEST_TIMEOUT_RULES, pair, problem));
    }
    let policy = Policy::default();
    if policy.rules().iter().any(|known| known.name == rule) {
        return Ok(());
    }
    let problem = Problem::UnknownRule {
        rule: rule.to_owned(),
        known: policy.rules().iter().map(|r| r.name.clone()).collect(),
    };
    Err(ConfigError::new(ENV_REQUEST_TIMEOUT_RULES, pair, problem))
}

/// The budgets, read (and so checked) whether or not `RATE_LIMIT_ENABLED` turns them off.
fn rate_limits(
    source: &impl Fn(&str) -> Option<String>,
    defaults: Option<Budgets>,
) -> Result<Option<Budgets>, ConfigError> {
    let enabled = read::flag(source, ENV_RATE_LIMIT_ENABLED)?.unwrap_or(defaults.is_some());
    let base = defaults.unwrap_or_default();
    let window = window_seconds(source)?;
    let budget = |variable, default: RateLimit| -> Result<RateLimit, ConfigError> {
        Ok(RateLimit {
            max_requests: read::whole(source, variable, RATE_LIMIT_MAX_REQUESTS)?
                .unwrap_or(default.max_requests),
            window_seconds: window.unwrap_or(default.window_seconds),
        })
    };
    let budgets = Budgets {
        default: budget(ENV_RATE_LIMIT_MAX_REQUESTS, base.default)?,
        crawler: budget(ENV_RATE_LIMIT_CRAWLER_MAX_REQUESTS, base.crawler)?,
        aggressive: base.aggressive,
    };
    Ok(enabled.then_some(budgets))
}

/// `RATE_LIMIT_WINDOW_MS` in the whole seconds budgets count in.
fn window_seconds(source: &impl Fn(&str) -> Option<String>) -> Result<Option<u32>, ConfigError> {
    let Some(millis) = read::whole::<u64>(source, ENV_RATE_LIMIT_WINDOW_MS, RATE_LIMIT_WINDOW_MS)?
    else {
        return Ok(None);
    };
    let refused = || {
        let problem = Problem::NotAMultiple {
            step: 1000,
            range: RATE_LIMIT_WINDOW_MS,
        };
        ConfigError::new(ENV_RATE_LIMIT_WINDOW_MS, millis.to_string(), problem)
    };
    if millis % 1000 != 0 {
        return Err(refused());
    }
    u32::try_from(millis / 1000)
        .map(Some)
        .map_err(|_| refused())
}

fn validate_budget(budget: &RateLimit, variable: &'static str) -> Result<(), ConfigError> {
    let window = u64::from(budget.window_seconds) * 1000;
    RATE_LIMIT_WINDOW_MS.check(ENV_RATE_LIMIT_WINDOW_MS, window)?;
    RATE_LIMIT_MAX_REQUESTS.check(variable, budget.max_requests.into())
}

fn outbound(
    source: &impl Fn(&str) -> Option<String>,
    defaults: OutboundSettings,
) -> Result<OutboundSettings, ConfigError> {
    // Both names are read, so a bad value under either is refused; the new name wins.
    let timeout = read::millis(source, ENV_OUTBOUND_TIMEOUT_MS, OUTBOUND_TIMEOUT_MS)?;
    let alias = read::millis(source, ENV_OUTBOUND_TIMEOUT_ALIAS, OUTBOUND_TIMEOUT_MS)?;
    Ok(OutboundSettings {
        timeout: timeout.or(alias).unwrap_or(defaults.timeout),
        allow_private: read::flag(source, ENV_OUTBOUND_ALLOW_PRIVATE)?
            .unwrap_or(defaults.allow_private),
        max_bytes: read::whole(source, ENV_OUTBOUND_MAX_BYTES, OUTBOUND_MAX_BYTES)?
            .unwrap_or(defaults.max_bytes),
    })
}

fn edge_trust(
    source: &impl Fn(&str) -> Option<String>,
    defaults: EdgeTrust,
) -> Result<EdgeTrust, ConfigError> {
    let proxies = read::trimmed(source, ENV_TRUSTED_PROXIES)
        .map(|text| {
            parse_proxies(&text)
                .map_err(|_| read::malformed(ENV_TRUSTED_PROXIES, &text, TRUSTED_PROXIES))
        })
        .transpose()?;
    Ok(EdgeTrust {
        token: read::secret(source, ENV_ORIGIN_AUTH_TOKEN, read::SECRET_LENGTH)?.or(defaults.token),
        proxies: proxies.unwrap_or(defaults.proxies),
    })
}
