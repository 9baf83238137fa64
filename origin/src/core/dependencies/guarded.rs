//! One guarded call to a dependency: skipped while its circuit breaker is open, bounded by a
//! timeout, its outcome told to the breaker and recorded for the metrics. The database, Redis
//! (shared cache and rate limits) and outbound HTTP all call through [`Guard::call`].

use std::future::Future;
use std::time::{Duration, Instant};

use crate::core::dependencies::breaker::CircuitBreaker;

/// How a guarded call ended; [`Outcome::as_str`] is the `outcome` label of the call metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The dependency answered.
    Ok,
    /// The dependency answered with an error.
    Error,
    /// The dependency did not answer within the timeout.
    Timeout,
    /// The breaker was open: the call was not attempted.
    CircuitOpen,
}

impl Outcome {
    /// The metric label: `ok`, `error`, `timeout` or `circuit_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::CircuitOpen => "circuit_open",
        }
    }
}

/// Why a guarded call gave no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure<E> {
    /// The dependency's own error.
    Error(E),
    /// No answer within this timeout.
    Timeout(Duration),
    /// The breaker was open: the call was not attempted.
    CircuitOpen,
}

/// A dependency's breaker (if any) and call timeout.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Open: calls fail at once. `None`: calls are never skipped.
    pub breaker: Option<CircuitBreaker>,
    /// The bound on every call.
    pub timeout: Duration,
}

impl Guard {
    /// Calls are bounded by `timeout` and never skipped.
    pub fn unguarded(timeout: Duration) -> Self {
        Self {
            breaker: None,
            timeout,
        }
    }

    /// Runs `call` unless the breaker is open, within the timeout. Timeouts and the errors
    /// `is_outage` accepts count against the dependency's health; other errors (the caller's
    /// mistakes, such as a constraint violation) count as answers. `record` gets the outcome
    /// and how long the call took (zero when it was not attempted).
    pub async fn call<T, E>(
        &self,
        call: impl Future<Output = Result<T, E>>,
        is_outage: impl FnOnce(&E) -> bool,
        record: impl FnOnce(Outcome, Duration),
    ) -> Result<T, Failure<E>> {
        if self.breaker.as_ref().is_some_and(|b| !b.allows()) {
            record(Outcome::CircuitOpen, Duration::ZERO);
            return Err(Failure::CircuitOpen);
        }
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, call).await;
        let (outcome, healthy) = match &result {
            Ok(Ok(_)) => (Outcome::Ok, true),
            Ok(Err(error)) => (Outcome::Error, !is_outage(error)),
            Err(_) => (Outcome::Timeout, false),
        };
        record(outcome, started.elapsed());
        if let Some(breaker) = &self.breaker {
            if healthy {
                breaker.succeeded();
            } else {
                breaker.failed();
            }
        }
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(Failure::Error(error)),
            Err(_) => Err(Failure::Timeout(self.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dependencies::breaker::BreakerSettings;
    use std::sync::Mutex;

    fn guard(timeout_ms: u64) -> Guard {
        let settings = BreakerSettings {
            failure_threshold: 2,
            ..BreakerSettings::default()
        };
        Guard {
            breaker: Some(CircuitBreaker::new("test", settings)),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_are_recorded_and_outages_open_the_breaker() {
        let guard = guard(100);
        let seen = Mutex::new(Vec::new());
        let record = |outcome: Outcome, _| seen.lock().expect("lock").push(outcome.as_str());
        let ok = guard.call(async { Ok::<_, ()>(1) }, |_| true, record).await;
        assert_eq!(ok, Ok(1));
        let mistake = guard.call(async { Err::<(), _>("bad input") }, |_| false, record);
        assert_eq!(mistake.await, Err(Failure::Error("bad input")));
        let slow = guard.call(
            async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<(), ()>(())
            },
            |_| true,
            record,
        );
        assert_eq!(
            slow.await,
            Err(Failure::Timeout(Duration::from_millis(100)))
        );
        let down = guard.call(async { Err::<(), _>("refused") }, |_| true, record);
        assert_eq!(down.await, Err(Failure::Error("refused")));
        let skipped = guard.call(async { Ok::<_, ()>(2) }, |_| true, record).await;
        assert_eq!(skipped, Err(Failure::CircuitOpen));
        assert_eq!(
            *seen.lock().expect("lock"),
            ["ok", "error", "timeout", "error", "circuit_open"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unguarded_call_is_still_bounded() {
        let guard = Guard::unguarded(Duration::from_millis(5));
        let never = guard.call(
            std::future::pending::<Result<(), ()>>(),
            |_| true,
            |_, _| {},
        );
        assert_eq!(never.await, Err(Failure::Timeout(Duration::from_millis(5))));
    }
}
