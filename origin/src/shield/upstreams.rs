//! The upstreams a shield proxies to: which one a request goes to (in turn, or the least
//! loaded), which are out of the running (a breaker open, a failed connection resting, a failed
//! health check), and the health checks themselves.
//!
//! An upstream whose connection fails rests for [`REST`] (as nginx's `fail_timeout`), so that
//! the next requests go to the others at once; each upstream also has a circuit breaker, opened
//! by consecutive failures. When every upstream is out, requests still go to one (the one that
//! has rested longest): a shield that refused everything would turn a blip into an outage.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::Uri;

use crate::config::shield::{Balance, ShieldConfig};
use crate::core::dependencies::breaker::{BreakerSettings, CircuitBreaker};

/// How long an upstream whose connection failed is left out.
pub const REST: Duration = Duration::from_secs(10);

/// One upstream.
#[derive(Debug)]
pub struct Upstream {
    /// `http://host:port`.
    pub base: Uri,
    /// `host:port`, as the `Host` of health checks and the breaker's name.
    pub authority: String,
    /// Requests sent to it and not yet answered in full.
    in_flight: AtomicUsize,
    /// Until when it rests after a failed connection.
    resting_until: Mutex<Option<Instant>>,
    /// Whether its last health check failed.
    unhealthy: AtomicBool,
    /// Opened by consecutive failures.
    pub breaker: CircuitBreaker,
}

impl Upstream {
    fn new(base: Uri, breakers: BreakerSettings) -> Self {
        let authority = base
            .authority()
            .map_or_else(String::new, |a| a.as_str().to_owned());
        // Breakers are named once per configured upstream, for the life of the process.
        let name: &'static str = format!("upstream {authority}").leak();
        Self {
            breaker: CircuitBreaker::new(name, breakers),
            base,
            authority,
            in_flight: AtomicUsize::new(0),
            resting_until: Mutex::new(None),
            unhealthy: AtomicBool::new(false),
        }
    }

    /// Whether it may be picked now.
    fn available(&self, now: Instant) -> bool {
        let rested = self
            .resting_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_none_or(|until| until <= now);
        rested && !self.unhealthy.load(Ordering::Relaxed) && self.breaker.allows()
    }

    fn rested_since(&self) -> Option<Instant> {
        *self
            .resting_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether its last health check passed (`true` before the first).
    pub fn healthy(&self) -> bool {
        !self.unhealthy.load(Ordering::Relaxed)
    }

    /// Requests in flight on it.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Counts a request in flight on an upstream until dropped (with its response body).
#[derive(Debug)]
pub struct InFlight {
    upstreams: Arc<Upstreams>,
    index: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.upstreams.list[self.index]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every upstream, and how one is picked.
#[derive(Debug)]
pub struct Upstreams {
    list: Vec<Upstream>,
    balance: Balance,
    next: AtomicUsize,
}

impl Upstreams {
    /// The upstreams `config` names, each with a breaker of `breakers`.
    pub fn new(config: &ShieldConfig, breakers: BreakerSettings) -> Arc<Self> {
        Arc::new(Self {
            list: config
                .upstreams
                .iter()
                .map(|base| Upstream::new(base.clone(), breakers))
                .collect(),
            balance: config.balance,
            next: AtomicUsize::new(0),
        })
    }

    /// Every upstream.
    pub fn all(&self) -> &[Upstream] {
        &self.list
    }

    /// Upstream `index`.
    pub fn get(&self, index: usize) -> &Upstream {
        &self.list[index]
    }

    /// The upstream the next request goes to, among those not in `tried`; `None` when every
    /// one was tried.
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        let now = Instant::now();
        let untried = || (0..self.list.len()).filter(|index| !tried.contains(index));
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let in_turn = |candidates: Vec<usize>| -> Option<usize> {
            let first = candidates
                .iter()
                .position(|&i| i >= start % self.list.len());
            candidates
                .get(first.unwrap_or(0))
                .copied()
                .or_else(|| candidates.first().copied())
        };
        let available: Vec<usize> = untried().filter(|&i| self.list[i].available(now)).collect();
        if !available.is_empty() {
            return match self.balance {
                Balance::RoundRobin => in_turn(available),
                Balance::LeastLoaded => {
                    let least = available.iter().map(|&i| self.list[i].in_flight()).min();
                    let loaded_least: Vec<usize> = available
                        .into_iter()
                        .filter(|&i| Some(self.list[i].in_flight()) == least)
                        .collect();
                    in_turn(loaded_least)
                }
            };
        }
        // Every untried upstream is out: the one out the longest.
        untried().min_by_key(|&i| self.list[i].rested_since())
    }

    /// Counts a request on upstream `index` until the returned guard is dropped.
    pub fn start(self: &Arc<Self>, index: usize) -> InFlight {
        self.list[index].in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            upstreams: Arc::clone(self),
            index,
        }
    }

    /// Upstream `index` could not be connected to: it rests.
    pub fn rest(&self, index: usize) {
        let until = Instant::now() + REST;
        *self.list[index]
            .resting_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(until);
        tracing::warn!(upstream = %self.list[index].authority, ?REST, "upstream unreachable: resting");
    }

    /// Records a health check of upstream `index`.
    pub fn checked(&self, index: usize, healthy: bool) {
        let upstream = &self.list[index];
        let was = !upstream.unhealthy.swap(!healthy, Ordering::Relaxed);
        if was != healthy {
            tracing::warn!(upstream = %upstream.authority, healthy, "upstream health changed");
        }
        if healthy {
            *upstream
                .resting_until
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three(balance: Balance) -> Arc<Upstreams> {
        let config = ShieldConfig {
            upstreams: ["http://a:1", "http://b:2", "http://c:3"]
                .iter()
                .map(|u| u.parse().expect("uri"))
                .collect(),
            balance,
            ..ShieldConfig::default()
        };
        Upstreams::new(&config, BreakerSettings::default())
    }

    #[test]
    fn requests_take_turns_and_skip_a_resting_upstream() {
        let upstreams = three(Balance::RoundRobin);
        let picks: Vec<usize> = (0..6).filter_map(|_| upstreams.pick(&[])).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        upstreams.rest(1);
        let picks: Vec<usize> = (0..4).filter_map(|_| upstreams.pick(&[])).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert_eq!(
            upstreams.pick(&[0, 2]),
            Some(1),
            "out, but the only one left"
        );
        assert_eq!(upstreams.pick(&[0, 1, 2]), None);
        upstreams.checked(1, true);
        assert!((0..3).filter_map(|_| upstreams.pick(&[])).any(|i| i == 1));
    }

    #[test]
    fn the_least_loaded_upstream_is_picked() {
        let upstreams = three(Balance::LeastLoaded);
        let _a = upstreams.start(0);
        let _b = upstreams.start(1);
        assert_eq!(upstreams.pick(&[]), Some(2));
        let c = upstreams.start(2);
        let _c2 = upstreams.start(2);
        drop(c);
        let picks: Vec<usize> = (0..3).filter_map(|_| upstreams.pick(&[])).collect();
        assert_eq!(picks.len(), 3);
        assert!(picks.iter().all(|&i| upstreams.get(i).in_flight() == 1));
    }

    #[test]
    fn an_unhealthy_upstream_is_left_out_until_it_passes_a_check() {
        let upstreams = three(Balance::RoundRobin);
        upstreams.checked(0, false);
        assert!((0..6).filter_map(|_| upstreams.pick(&[])).all(|i| i != 0));
        upstreams.checked(0, true);
        assert!((0..6).filter_map(|_| upstreams.pick(&[])).any(|i| i == 0));
    }
}
