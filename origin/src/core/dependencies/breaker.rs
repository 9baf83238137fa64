//! Circuit breakers: stop calling a dependency that keeps failing, and try it again later.
//!
//! `Closed` lets calls through and counts failures inside a sliding window; reaching the
//! threshold opens the breaker. `Open` refuses calls at once (callers fall back: the local rate
//! limiter, the cache's stale copy, a `503 CIRCUIT_OPEN`) until the reset timeout passes; then
//! `HalfOpen` lets calls through, and enough consecutive successes close it again while any
//! failure opens it anew. Transitions are logged and counted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
// Tokio's clock: the same as std's in production, and pausable in tests.
use tokio::time::Instant;

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused.
    Open,
    /// Trial calls go through.
    HalfOpen,
}

impl BreakerState {
    /// Every state, in gauge order.
    pub const ALL: [Self; 3] = [Self::Closed, Self::Open, Self::HalfOpen];

    /// The gauge value of `circuit_breaker_state`: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }

    /// The label value of `circuit_breaker_transitions_total`: `closed`, `open`, `half_open`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

/// How often a breaker went from one state to another, one count per ordered pair of states
/// (indexed `from * 3 + to`; the diagonal stays zero).
#[derive(Debug, Default)]
struct Transitions([AtomicU64; 9]);

impl Transitions {
    fn count(&self, from: BreakerState, to: BreakerState) {
        self.0[from.index() * 3 + to.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self, from: BreakerState, to: BreakerState) -> u64 {
        self.0[from.index() * 3 + to.index()].load(Ordering::Relaxed)
    }

    fn total(&self) -> u64 {
        self.0.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }
}

/// One kind of state change and how often it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransitionCount {
    /// The state left.
    pub from: BreakerState,
    /// The state entered.
    pub to: BreakerState,
    /// How often, since start.
    pub count: u64,
}

/// When a breaker opens and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures within `window` that open the breaker.
    pub failure_threshold: u32,
    /// The window failures are counted in.
    pub window: Duration,
    /// How long an open breaker refuses calls before trying again.
    pub reset_timeout: Duration,
    /// Consecutive successes in half-open that close it.
    pub success_threshold: u32,
}

impl Default for BreakerSettings {
    /// 5 failures within 120 s open it; it tries again after 60 s; 2 successes close it.
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            window: Duration::from_secs(120),
            reset_timeout: Duration::from_secs(60),
            success_threshold: 2,
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: VecDeque<Instant>,
    opened_at: Option<Instant>,
    successes: u32,
    /// When the last failure was recorded.
    last_failure_at: Option<Instant>,
}

/// One dependency's breaker; cheap to clone (clones share state).
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    name: &'static str,
    settings: BreakerSettings,
    inner: Arc<Mutex<Inner>>,
    transitions: Arc<Transitions>,
}

/// A snapshot for health and admin answers.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerReport {
    /// The dependency.
    pub name: &'static str,
    /// Its state now.
    pub state: BreakerState,
    /// Failures inside the window.
    pub recent_failures: usize,
    /// State changes since start.
    pub transitions: u64,
    /// When the last failure was recorded (RFC 3339), if any since start.
    pub last_failure_time: Option<String>,
    /// When an open breaker lets the next trial call through (RFC 3339); `None` unless open.
    pub next_attempt_time: Option<String>,
}

/// When a breaker last saw a failure and when it lets a call through again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreakerTiming {
    /// Time since the last failed call, if any failed.
    pub since_failure: Option<Duration>,
    /// While open: time until a trial call is let through.
    pub retry_in: Option<Duration>,
}

impl CircuitBreaker {
    /// A closed breaker for the dependency `name`.
    pub fn new(name: &'static str, settings: BreakerSettings) -> Self {
        Self {
            name,
            settings,
            inner: Arc::new(Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: VecDeque::new(),
                opened_at: None,
                successes: 0,
                last_failure_at: None,
            })),
            transitions: Arc::default(),
        }
    }

    /// The dependency's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a call may go through now (an open breaker past its reset timeout turns
    /// half-open and lets it).
    pub fn allows(&self) -> bool {
        let mut inner = self.lock();
        if inner.state == BreakerState::Open {
            let waited = inner.opened_at.map_or(Duration::MAX, |at| at.elapsed());
            if waited < self.settings.reset_timeout {
                return false;
            }
            self.enter(&mut inner, BreakerState::HalfOpen);
        }
        true
    }

    /// Records a successful call.
    pub fn succeeded(&self) {
        let mut inner = self.lock();
        if inner.state == BreakerState::HalfOpen {
            inner.successes += 1;
            if inner.successes >= self.settings.success_threshold {
                self.enter(&mut inner, BreakerState::Closed);
            }
        }
    }

    /// Records a failed call.
    pub fn failed(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.last_failure_at = Some(now);
        match inner.state {
            BreakerState::HalfOpen => self.enter(&mut inner, BreakerState::Open),
            BreakerState::Open => {}
            BreakerState::Closed => {
                inner.failures.push_back(now);
                let window = self.settings.window;
                while inner
                    .failures
                    .front()
                    .is_some_and(|at| now.duration_since(*at) > window)
                {
                    inner.failures.pop_front();
                }
                if inner.failures.len() >= self.settings.failure_threshold as usize {
                    self.enter(&mut inner, BreakerState::Open);
                }
            }
        }
    }

    /// Lets trial calls through at once if the breaker is open: a probe found the dependency
    /// answering again (see [`super::recovery_probe`]), so waiting out the reset timeout would
    /// only keep refusing calls that would succeed.
    pub fn probe_succeeded(&self) {
        let mut inner = self.lock();
        if inner.state == BreakerState::Open {
            self.enter(&mut inner, BreakerState::HalfOpen);
        }
    }

    /// Closes the breaker whatever its state (the admin reset).
    pub fn reset(&self) {
        let mut inner = self.lock();
        self.enter(&mut inner, BreakerState::Closed);
    }

    /// The state now, without side effects.
    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// A snapshot for reports.
    pub fn report(&self) -> BreakerReport {
        let inner = self.lock();
        let timing = self.timing_of(&inner);
        let now = SystemTime::now();
        BreakerReport {
            name: self.name,
            state: inner.state,
            recent_failures: inner.failures.len(),
            transitions: self.transitions.total(),
            last_failure_time: timing
                .since_failure
                .and_then(|ago| now.checked_sub(ago))
                .and_then(rfc3339),
            next_attempt_time: timing.retry_in.map(|left| now + left).and_then(rfc3339),
        }
    }

    /// How often each possible state change happened, for
    /// `circuit_breaker_transitions_total` (every pair of different states but closed →
    /// half-open, which never happens).
    pub fn transition_counts(&self) -> Vec<TransitionCount> {
        let mut counts = Vec::with_capacity(5);
        for from in BreakerState::ALL {
            for to in BreakerState::ALL {
                if from != to && (from, to) != (BreakerState::Closed, BreakerState::HalfOpen) {
                    let count = self.transitions.get(from, to);
                    counts.push(TransitionCount { from, to, count });
                }
            }
        }
        counts
    }

    /// How long ago the last failure was recorded, and how long an open breaker still
    /// refuses calls.
    pub fn timing(&self) -> BreakerTiming {
        self.timing_of(&self.lock())
    }

    fn timing_of(&self, inner: &Inner) -> BreakerTiming {
        let open_since = inner
            .opened_at
            .filter(|_| inner.state == BreakerState::Open);
        BreakerTiming {
            since_failure: inner.last_failure_at.map(|at| at.elapsed()),
            retry_in: open_since.map(|at| self.settings.reset_timeout.saturating_sub(at.elapsed())),
        }
    }

    fn enter(&self, inner: &mut Inner, state: BreakerState) {
        if inner.state != state {
            self.transitions.count(inner.state, state);
            let (name, from) = (self.name, inner.state);
            match state {
                BreakerState::Open => {
                    tracing::warn!(breaker = name, ?from, "circuit breaker opened")
                }
                _ => {
                    tracing::info!(breaker = name, ?from, to = ?state, "circuit breaker changed state")
                }
            }
        }
        inner.state = state;
        inner.successes = 0;
        inner.failures.clear();
        inner.opened_at = (state == BreakerState::Open).then(Instant::now);
    }
}

/// `at` as an RFC 3339 timestamp in UTC.
fn rfc3339(at: SystemTime) -> Option<String> {
    OffsetDateTime::from(at).format(&Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> BreakerSettings {
        BreakerSettings {
            failure_threshold: 3,
            window: Duration::from_secs(60),
            reset_timeout: Duration::from_secs(60),
            success_threshold: 2,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_and_closes_after_successes() {
        let breaker = CircuitBreaker::new("test", quick());
        breaker.failed();
        breaker.failed();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.allows());
        breaker.failed();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.allows(), "open refuses at once");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(!breaker.allows(), "still open before the reset timeout");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            breaker.allows(),
            "after the reset timeout a trial goes through"
        );
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        breaker.succeeded();
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        breaker.succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.report().transitions, 3);
        let pairs: Vec<_> = breaker
            .transition_counts()
            .into_iter()
            .filter(|t| t.count > 0)
            .map(|t| (t.from.label(), t.to.label(), t.count))
            .collect();
        assert_eq!(
            pairs,
            [
                ("closed", "open", 1),
                ("open", "half_open", 1),
                ("half_open", "closed", 1)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reports_say_when_it_last_failed_and_when_it_tries_again() {
        let breaker = CircuitBreaker::new("test", quick());
        let report = breaker.report();
        assert_eq!(
            (report.last_failure_time, report.next_attempt_time),
            (None, None)
        );
        for _ in 0..3 {
            breaker.failed();
        }
        let before = SystemTime::now();
        let report = breaker.report();
        let parse = |text: Option<String>| {
            SystemTime::from(
                OffsetDateTime::parse(&text.expect("a time"), &Rfc3339).expect("RFC 3339"),
            )
        };
        let last = parse(report.last_failure_time);
        assert!(last <= before + Duration::from_secs(1));
        let next = parse(report.next_attempt_time);
        let ahead = next.duration_since(before).expect("in the future");
        assert!(
            ahead > Duration::from_secs(58) && ahead <= Duration::from_secs(61),
            "{ahead:?}"
        );
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(breaker.allows());
        let report = breaker.report();
        assert_eq!(
            report.next_attempt_time, None,
            "only an open breaker has one"
        );
        assert!(
            report.last_failure_time.is_some(),
            "kept after the breaker moved on"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn timing_tells_the_last_failure_and_the_next_trial() {
        let breaker = CircuitBreaker::new("test", quick());
        assert_eq!(breaker.timing(), BreakerTiming::default());
        for _ in 0..3 {
            breaker.failed();
        }
        tokio::time::advance(Duration::from_secs(15)).await;
        let timing = breaker.timing();
        assert_eq!(timing.since_failure, Some(Duration::from_secs(15)));
        assert_eq!(timing.retry_in, Some(Duration::from_secs(45)));
        tokio::time::advance(Duration::from_secs(50)).await;
        assert_eq!(breaker.timing().retry_in, Some(Duration::ZERO));
        breaker.reset();
        assert_eq!(breaker.timing().retry_in, None, "closed: no wait");
        assert_eq!(
            breaker.timing().since_failure,
            Some(Duration::from_secs(65))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_half_open_failure_reopens_and_old_failures_expire() {
        let breaker = CircuitBreaker::new("test", quick());
        for _ in 0..3 {
            breaker.failed();
        }
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(breaker.allows());
        breaker.failed();
        assert_eq!(breaker.state(), BreakerState::Open);

        let windowed = CircuitBreaker::new(
            "test",
            BreakerSettings {
                window: Duration::from_secs(20),
                ..quick()
            },
        );
        windowed.failed();
        windowed.failed();
        tokio::time::advance(Duration::from_secs(30)).await;
        windowed.failed();
        assert_eq!(
            windowed.state(),
            BreakerState::Closed,
            "failures outside the window do not count"
        );
        windowed.reset();
        assert_eq!(windowed.state(), BreakerState::Closed);
    }
}
