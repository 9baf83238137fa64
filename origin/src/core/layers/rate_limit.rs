//! Rate limits per client and tier, with GCRA (the generic cell rate algorithm): a budget of
//! `max` requests per `window` refills continuously, one request every `window / max`, so
//! there is no burst at window boundaries as with fixed windows.
//!
//! With Redis the decision is one atomic script per request, timed by Redis's own clock, so
//! every origin instance draws from the same budget. While Redis is unreachable (its circuit
//! breaker open, or a call failing) an in-process limiter decides alone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shared::rate_limit::{RateLimit, RateLimitTier};
use tracing::Instrument;

use crate::core::dependencies::breaker::CircuitBreaker;
use crate::core::dependencies::guarded::{Failure, Guard, Outcome};
use crate::core::dependencies::redis::{RedisConnection, RedisTarget};
use crate::core::observability::dependency_metrics::RedisMetrics;
use crate::core::observability::telemetry;

/// The budgets per tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Ordinary clients (`RATE_LIMIT_MAX_REQUESTS` per `RATE_LIMIT_WINDOW_MS`).
    pub default: RateLimit,
    /// Crawlers (`RATE_LIMIT_CRAWLER_MAX_REQUESTS` per the same window).
    pub crawler: RateLimit,
    /// Sensitive routes.
    pub aggressive: RateLimit,
}

impl Default for Budgets {
    /// The shared crate's tiers.
    fn default() -> Self {
        let tier = |tier: RateLimitTier| {
            tier.limit().unwrap_or(RateLimit {
                max_requests: u32::MAX,
                window_seconds: 1,
            })
        };
        Self {
            default: tier(RateLimitTier::Default),
            crawler: tier(RateLimitTier::Crawler),
            aggressive: tier(RateLimitTier::Aggressive),
        }
    }
}

impl Budgets {
    /// The budget of `tier`, `None` when unlimited.
    pub fn of(&self, tier: RateLimitTier) -> Option<RateLimit> {
        match tier {
            RateLimitTier::Default => Some(self.default),
            RateLimitTier::Crawler => Some(self.crawler),
            RateLimitTier::Aggressive => Some(self.aggressive),
            RateLimitTier::Unlimited => None,
        }
    }
}

/// One decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The tier's budget.
    pub limit: u32,
    /// Requests left right now.
    pub remaining: u32,
    /// Until the budget is whole again.
    pub reset_after: Duration,
    /// When refused: until the next request would be allowed.
    pub retry_after: Duration,
}

/// The spacing between requests in microseconds (fine enough for budgets far above 1,000
/// requests per second).
fn interval_us(limit: RateLimit) -> u64 {
    (u64::from(limit.window_seconds) * 1_000_000 / u64::from(limit.max_requests.max(1))).max(1)
}

/// GCRA: the decision for a client whose theoretical arrival time is `tat` (µs), at `now` (µs);
/// returns the verdict and the new theoretical arrival time to store when allowed.
pub fn gcra(limit: RateLimit, tat: u64, now: u64) -> (Verdict, u64) {
    let window = u64::from(limit.window_seconds) * 1_000_000;
    let interval = interval_us(limit);
    let tat = tat.max(now);
    let next = tat + interval;
    let allowed = next - now <= window;
    let verdict = if allowed {
        Verdict {
            allowed,
            limit: limit.max_requests,
            remaining: u32::try_from((window - (next - now)) / interval).unwrap_or(u32::MAX),
            reset_after: Duration::from_micros(next - now),
            retry_after: Duration::ZERO,
        }
    } else {
        Verdict {
            allowed,
            limit: limit.max_requests,
            remaining: 0,
            reset_after: Duration::from_micros(tat - now),
            retry_after: Duration::from_micros(next - window - now),
        }
    };
    (verdict, if allowed { next } else { tat })
}

/// The same algorithm inside Redis: KEYS[1] holds the theoretical arrival time; ARGV are the
/// emission interval and the window, in µs. Returns allowed, remaining, reset and retry (µs).
const GCRA_SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next = tat + interval
if next - now <= window then
  -- Formatted by hand: Lua prints large numbers with 14 significant digits only.
  redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.ceil((next - now) / 1000))
  return {1, math.floor((window - (next - now)) / interval), next - now, 0}
end
return {0, 0, tat - now, next - window - now}
";

/// Entries the in-process limiter keeps before dropping the clients whose budget is whole.
const LOCAL_PRUNE_AT: usize = 100_000;

/// The in-process limiter.
#[derive(Debug, Default)]
struct Local {
    arrivals: Mutex<HashMap<(RateLimitTier, IpAddr), u64>>,
}

impl Local {
    fn check(&self, tier: RateLimitTier, limit: RateLimit, client: IpAddr) -> Verdict {
        let now = unix_us();
        let mut arrivals = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        if arrivals.len() >= LOCAL_PRUNE_AT {
            arrivals.retain(|_, tat| *tat > now);
        }
        let tat = arrivals.get(&(tier, client)).copied().unwrap_or(now);
        let (verdict, next) = gcra(limit, tat, now);
        arrivals.insert((tier, client), next);
        verdict
    }
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The shared limiter in Redis.
struct Shared {
    conn: RedisConnection,
    script: redis::Script,
    prefix: String,
    guard: Guard,
    metrics: RedisMetrics,
}

impl Shared {
    async fn check(
        &self,
        tier: RateLimitTier,
        limit: RateLimit,
        client: IpAddr,
    ) -> Option<Verdict> {
        let key = format!("{}rl:{}:{client}", self.prefix, tier.as_str());
        let mut conn = self.conn.clone();
        let mut invocation = self.script.key(key);
        invocation
            .arg(interval_us(limit))
            .arg(u64::from(limit.window_seconds) * 1_000_000);
        let call = invocation.invoke_async::<(u8, u64, u64, u64)>(&mut conn);
        let record = |outcome: Outcome, elapsed| {
            self.metrics.record("rate_limit", outcome.as_str(), elapsed)
        };
        let span = telemetry::dependency_span("redis", "EVALSHA", "rate_limit");
        match self
            .guard
            .call(call, |_| true, record)
            .instrument(span)
            .await
        {
            Ok((allowed, remaining, reset, retry)) => Some(Verdict {
                allowed: allowed == 1,
                limit: limit.max_requests,
                remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
                reset_after: Duration::from_micros(reset),
                retry_after: Duration::from_micros(retry),
            }),
            Err(Failure::CircuitOpen) => None,
            Err(Failure::Error(error)) => self.failed(&error.to_string()),
            Err(Failure::Timeout(_)) => self.failed("timed out"),
        }
    }

    fn failed(&self, why: &str) -> Option<Verdict> {
        tracing::warn!(
            error = why,
            "rate limit via redis failed; deciding in-process"
        );
        None
    }
}

/// Rate limits for every tier.
pub struct RateLimiter {
    budgets: Budgets,
    local: Local,
    shared: Option<Shared>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("budgets", &self.budgets)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// An in-process limiter with `budgets`.
    pub fn local(budgets: Budgets) -> Self {
        Self {
            budgets,
            local: Local::default(),
            shared: None,
        }
    }

    /// Decides in Redis at `target` (keys under `prefix`, one per client and tier, so one slot
    /// per decision on a cluster), guarded by `breaker`; connects lazily.
    pub fn with_redis(
        mut self,
        target: &RedisTarget,
        prefix: &str,
        timeout: Duration,
        breaker: CircuitBreaker,
        metrics: RedisMetrics,
    ) -> redis::RedisResult<Self> {
        metrics.in_use();
        self.shared = Some(Shared {
            conn: target.shared(timeout, 0)?,
            script: redis::Script::new(GCRA_SCRIPT),
            prefix: prefix.to_owned(),
            guard: Guard {
                breaker: Some(breaker),
                timeout,
            },
            metrics,
        });
        Ok(self)
    }

    /// The decision for `client` on a route of `tier`; `None` when the tier is unlimited.
    pub async fn check(&self, tier: RateLimitTier, client: IpAddr) -> Option<Verdict> {
        let limit = self.budgets.of(tier)?;
        if let Some(shared) = &self.shared {
            if let Some(verdict) = shared.check(tier, limit, client).await {
                return Some(verdict);
            }
        }
        Some(self.local.check(tier, limit, client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_PER_SECOND: RateLimit = RateLimit {
        max_requests: 5,
        window_seconds: 1,
    };

    #[test]
    fn a_full_budget_allows_max_requests_then_refills_gradually() {
        let now = 1_000_000;
        let mut tat = now;
        for expected_remaining in (0..5).rev() {
            let (verdict, next) = gcra(FIVE_PER_SECOND, tat, now);
            assert!(verdict.allowed);
            assert_eq!(verdict.remaining, expected_remaining);
            tat = next;
        }
        let (refused, unchanged) = gcra(FIVE_PER_SECOND, tat, now);
        assert!(!refused.allowed);
        assert_eq!(unchanged, tat, "a refusal spends nothing");
        assert_eq!(refused.retry_after, Duration::from_millis(200));
        assert_eq!(refused.reset_after, Duration::from_millis(1000));
        // One interval later exactly one more request fits: no burst at a window boundary.
        let (later, next) = gcra(FIVE_PER_SECOND, tat, now + 200_000);
        assert!(later.allowed);
        assert_eq!(later.remaining, 0);
        assert!(!gcra(FIVE_PER_SECOND, next, now + 200_000).0.allowed);
    }

    #[test]
    fn large_budgets_are_not_capped_by_clock_resolution() {
        let a_million_per_second = RateLimit {
            max_requests: 1_000_000,
            window_seconds: 1,
        };
        let now = 5_000_000;
        let mut tat = now;
        // 20,000 requests within 10 ms fit in a budget of 1,000,000 per second.
        for n in 0..20_000u64 {
            let (verdict, next) = gcra(a_million_per_second, tat, now + n / 2);
            assert!(verdict.allowed, "request {n}");
            tat = next;
        }
    }

    #[tokio::test]
    async fn clients_and_tiers_have_separate_budgets() {
        let limiter = RateLimiter::local(Budgets {
            default: FIVE_PER_SECOND,
            ..Budgets::default()
        });
        let a = IpAddr::from([192, 0, 2, 1]);
        let b = IpAddr::from([192, 0, 2, 2]);
        let allowed = |verdict: Option<Verdict>| verdict.is_some_and(|v| v.allowed);
        for _ in 0..5 {
            assert!(allowed(limiter.check(RateLimitTier::Default, a).await));
        }
        assert!(!allowed(limiter.check(RateLimitTier::Default, a).await));
        assert!(allowed(limiter.check(RateLimitTier::Default, b).await));
        assert!(allowed(limiter.check(RateLimitTier::Aggressive, a).await));
        assert_eq!(limiter.check(RateLimitTier::Unlimited, a).await, None);
    }
}
