//! Recovery probes: while a dependency's breaker is open, a cheap probe (`SELECT 1`, a Redis
//! `PING`) asks every [`PROBE_EVERY`] whether the dependency answers again, and the first
//! success lets trial calls through at once instead of after the whole reset timeout. A
//! database back from a restart serves again within about a second, not a minute; one still
//! down costs one probe a second, and calls stay refused.

use std::future::Future;
use std::time::Duration;

use super::breaker::{BreakerState, CircuitBreaker};

/// How often an open breaker's dependency is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Probes with `probe` every [`PROBE_EVERY`] while `breaker` is open, and half-opens it when
/// the probe succeeds; runs as long as the process.
pub fn spawn<F, Fut>(breaker: &CircuitBreaker, probe: F) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let breaker = breaker.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            if breaker.state() == BreakerState::Open && probe().await {
                tracing::info!(
                    breaker = breaker.name(),
                    "recovery probe answered: letting trial calls through"
                );
                breaker.probe_succeeded();
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::core::dependencies::breaker::BreakerSettings;

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_answers_half_opens_the_breaker_long_before_its_reset_timeout() {
        let breaker = CircuitBreaker::new("database", BreakerSettings::default());
        for _ in 0..5 {
            breaker.failed();
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        let back = Arc::new(AtomicBool::new(false));
        let answers = Arc::clone(&back);
        let _probe = spawn(&breaker, move || {
            let answers = Arc::clone(&answers);
            async move { answers.load(Ordering::SeqCst) }
        });
        tokio::time::sleep(PROBE_EVERY * 3).await;
        assert_eq!(
            breaker.state(),
            BreakerState::Open,
            "still down: still open"
        );
        assert!(!breaker.allows());
        back.store(true, Ordering::SeqCst);
        tokio::time::sleep(PROBE_EVERY * 2).await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(breaker.allows(), "trial calls go through");
        breaker.succeeded();
        breaker.succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
