//! Retries for idempotent calls to a dependency: exponential backoff with full jitter, bounded
//! by a retry budget so that retries cannot amplify an outage.
//!
//! The backoff before retry `n` (counting from 1) is a uniformly random time between zero and
//! `min(max_delay, initial_delay × factor^(n-1))` (AWS's "full jitter"): clients that failed
//! together do not retry together. The budget (after Finagle's and Envoy's) lets retries be at
//! most `ratio` of the calls of the last ten seconds, plus a small floor so that a quiet
//! dependency may still be retried; once spent, failures are returned at once.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 turns retries off.
    pub attempts: u32,
    /// The backoff bound before the first retry.
    pub initial_delay: Duration,
    /// The largest backoff bound.
    pub max_delay: Duration,
    /// How much the bound grows per retry.
    pub factor: f64,
}

impl Default for RetryPolicy {
    /// 3 attempts, backoff bounds of 1 s, 2 s, … up to 10 s.
    fn default() -> Self {
        Self {
            attempts: 3,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            factor: 2.0,
        }
    }
}

impl RetryPolicy {
    /// The backoff bound before retry `retry` (1 for the first retry).
    pub fn bound(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let scaled = self.initial_delay.as_secs_f64() * self.factor.powi(exponent);
        Duration::from_secs_f64(scaled.min(self.max_delay.as_secs_f64()).max(0.0))
    }

    /// A random backoff in `0..=bound(retry)`.
    pub fn backoff(&self, retry: u32) -> Duration {
        self.bound(retry).mul_f64(fastrand::f64())
    }
}

/// Calls and retries per second over the last [`WINDOW_SECONDS`] seconds.
const WINDOW_SECONDS: usize = 10;

#[derive(Debug)]
struct Window {
    /// `(calls, retries)` per second, indexed by second modulo the window.
    slots: [(u64, u64); WINDOW_SECONDS],
    /// The second each slot holds.
    seconds: [u64; WINDOW_SECONDS],
}

/// Bounds retries to a share of calls; cheap to clone (clones share the budget).
#[derive(Debug, Clone)]
pub struct RetryBudget {
    ratio: f64,
    min_retries: u64,
    epoch: Instant,
    window: Arc<Mutex<Window>>,
}

impl Default for RetryBudget {
    /// Retries at most 20% of calls, with a floor of 3 retries per ten seconds.
    fn default() -> Self {
        Self::new(0.2, 3)
    }
}

impl RetryBudget {
    /// Retries may be `ratio` of the calls in the last ten seconds, or `min_retries`, whichever
    /// is more.
    pub fn new(ratio: f64, min_retries: u64) -> Self {
        Self {
            ratio,
            min_retries,
            epoch: Instant::now(),
            window: Arc::new(Mutex::new(Window {
                slots: [(0, 0); WINDOW_SECONDS],
                seconds: [u64::MAX; WINDOW_SECONDS],
            })),
        }
    }

    fn with_window<T>(&self, f: impl FnOnce(&mut Window, usize) -> T) -> T {
        let second = self.epoch.elapsed().as_secs();
        let slot = (second % WINDOW_SECONDS as u64) as usize;
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if window.seconds[slot] != second {
            window.seconds[slot] = second;
            window.slots[slot] = (0, 0);
        }
        // Slots older than the window no longer count.
        for i in 0..WINDOW_SECONDS {
            if second.saturating_sub(window.seconds[i]) >= WINDOW_SECONDS as u64 {
                window.slots[i] = (0, 0);
            }
        }
        f(&mut window, slot)
    }

    /// Records a first attempt.
    pub fn record_call(&self) {
        self.with_window(|window, slot| window.slots[slot].0 += 1);
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn try_retry(&self) -> bool {
        let (ratio, floor) = (self.ratio, self.min_retries);
        self.with_window(|window, slot| {
            let (calls, retries) = window
                .slots
                .iter()
                .fold((0, 0), |(c, r), (calls, retries)| (c + calls, r + retries));
            let allowed = ((calls as f64 * ratio) as u64).max(floor);
            if retries < allowed {
                window.slots[slot].1 += 1;
                true
            } else {
                false
            }
        })
    }
}

/// A policy and the budget it draws from.
#[derive(Debug, Clone, Default)]
pub struct Retrier {
    /// Attempts and backoff.
    pub policy: RetryPolicy,
    /// The shared budget.
    pub budget: RetryBudget,
}

impl Retrier {
    /// Runs `call` until it succeeds, fails with an error `retryable` refuses, runs out of
    /// attempts, or the budget refuses a retry; returns the last result.
    pub async fn run<T, E, F, Fut>(
        &self,
        retryable: impl Fn(&E) -> bool,
        mut call: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        self.budget.record_call();
        let mut attempt = 1;
        loop {
            let error = match call().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if attempt >= self.policy.attempts || !retryable(&error) || !self.budget.try_retry() {
                return Err(error);
            }
            let backoff = self.policy.backoff(attempt);
            tracing::debug!(%error, attempt, ?backoff, "retrying after a retryable failure");
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn bounds_grow_by_the_factor_up_to_the_maximum() {
        let policy = RetryPolicy::default();
        let bounds: Vec<u64> = (1..=6)
            .map(|n| policy.bound(n).as_millis() as u64)
            .collect();
        assert_eq!(bounds, [1000, 2000, 4000, 8000, 10_000, 10_000]);
        for _ in 0..100 {
            assert!(policy.backoff(2) <= Duration::from_secs(2));
        }
    }

    async fn failing_calls(retrier: &Retrier, retryable: bool) -> u32 {
        let calls = AtomicU32::new(0);
        let result: Result<(), String> = retrier
            .run(
                |_| retryable,
                || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err("down".to_owned()) }
                },
            )
            .await;
        assert!(result.is_err());
        calls.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn retries_only_retryable_errors_up_to_the_attempts() {
        let retrier = Retrier::default();
        assert_eq!(failing_calls(&retrier, true).await, 3);
        assert_eq!(failing_calls(&retrier, false).await, 1);
        let calls = AtomicU32::new(0);
        let result: Result<u32, String> = retrier
            .run(
                |_| true,
                || {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n == 0 {
                            Err("once".to_owned())
                        } else {
                            Ok(n)
                        }
                    }
                },
            )
            .await;
        assert_eq!(result, Ok(1), "the second attempt succeeds");
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_keeps_retries_to_a_fifth_of_calls() {
        let retrier = Retrier {
            budget: RetryBudget::new(0.2, 0),
            ..Retrier::default()
        };
        let mut attempts = 0;
        for _ in 0..100 {
            attempts += failing_calls(&retrier, true).await;
        }
        let retries = attempts - 100;
        assert!(
            retries <= 20,
            "{retries} retries for 100 calls: an outage is not amplified"
        );
        assert!(retries >= 15, "the budget is used: {retries}");
    }
}
