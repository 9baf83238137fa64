//! The recent past, kept in process for the status page: a sample every interval (10 s by
//! default) of the request rate, the latency percentiles and the cache's hits and misses, 90 of
//! them (15 minutes), and the last requests slower than a threshold.
//!
//! A request costs one relaxed atomic increment: its latency's bucket in a histogram of
//! quarter-octaves of microseconds. The sampler, a task of its own, reads the buckets and takes
//! each interval's percentiles from their differences. Only slow requests take a lock, to be
//! added to their short list.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use axum::http::{HeaderValue, Method};
use axum::response::Response;

use crate::core::cache::TieredCache;
use crate::core::route::RouteTemplate;

/// Samples kept: 15 minutes at the default interval.
pub const SAMPLES: usize = 90;
/// Slow requests kept, the newest first.
pub const SLOW_KEPT: usize = 20;
/// The longest request id kept.
const MAX_ID_CHARS: usize = 128;

/// Each octave of microseconds is split in `2^SUB_BITS` buckets (a quarter-octave is at most
/// 25 % wide).
const SUB_BITS: u32 = 2;
const SUBS: usize = 1 << SUB_BITS;
/// Buckets up to about two hours; longer requests share the last.
const BUCKETS: usize = 128;

/// One interval's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// When the interval ended.
    pub at: SystemTime,
    /// How long it lasted, in seconds.
    pub seconds: f64,
    /// Requests answered in it.
    pub requests: u64,
    /// Median latency in milliseconds (`None` without requests).
    pub p50: Option<f64>,
    /// 95th percentile latency in milliseconds.
    pub p95: Option<f64>,
    /// 99th percentile latency in milliseconds.
    pub p99: Option<f64>,
    /// Cache lookups answered (fresh or stale).
    pub cache_hits: u64,
    /// Cache lookups that loaded (or waited for another caller's load).
    pub cache_misses: u64,
}

impl Sample {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Share of cache lookups answered, from 0 to 1 (`None` without lookups).
    pub fn hit_ratio(&self) -> Option<f64> {
        let lookups = self.cache_hits + self.cache_misses;
        (lookups > 0).then(|| self.cache_hits as f64 / lookups as f64)
    }
}

/// One request at least as slow as the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowRequest {
    /// When it ended.
    pub at: SystemTime,
    /// Its method.
    pub method: String,
    /// The route template that answered (`unmatched` when none did).
    pub route: Arc<str>,
    /// The response status.
    pub status: u16,
    /// Time to the response head.
    pub duration: Duration,
    /// Its `X-Request-Id`.
    pub request_id: String,
}

/// The status page's history; cheap to clone (clones share it).
#[derive(Debug, Clone)]
pub struct History(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    /// Requests per latency bucket since start.
    latencies: [AtomicU64; BUCKETS],
    slow_threshold: Duration,
    interval: Duration,
    slow: Mutex<VecDeque<SlowRequest>>,
    samples: Mutex<VecDeque<Sample>>,
    /// Set once a sampler runs.
    sampling: AtomicBool,
}

impl History {
    /// An empty history listing requests at least `slow_threshold` long and sampled every
    /// `interval` once [`History::start_sampling`] is called.
    pub fn new(slow_threshold: Duration, interval: Duration) -> Self {
        Self(Arc::new(Shared {
            latencies: std::array::from_fn(|_| AtomicU64::new(0)),
            slow_threshold,
            interval,
            slow: Mutex::new(VecDeque::with_capacity(SLOW_KEPT)),
            samples: Mutex::new(VecDeque::with_capacity(SAMPLES)),
            sampling: AtomicBool::new(false),
        }))
    }

    /// Time between two samples.
    pub fn interval(&self) -> Duration {
        self.0.interval
    }

    /// Requests at least this slow are listed.
    pub fn slow_threshold(&self) -> Duration {
        self.0.slow_threshold
    }

    /// Records one answered request: its latency always, the rest when it was slow.
    pub fn record(
        &self,
        method: &Method,
        response: &Response,
        elapsed: Duration,
        request_id: &HeaderValue,
    ) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.0.latencies[bucket(micros)].fetch_add(1, Ordering::Relaxed);
        if elapsed >= self.0.slow_threshold {
            self.record_slow(method, response, elapsed, request_id);
        }
    }

    #[cold]
    fn record_slow(
        &self,
        method: &Method,
        response: &Response,
        elapsed: Duration,
        request_id: &HeaderValue,
    ) {
        let route = response.extensions().get::<RouteTemplate>().map_or_else(
            || Arc::from("unmatched"),
            |template| Arc::clone(&template.0),
        );
        let id = String::from_utf8_lossy(request_id.as_bytes());
        self.push_slow(SlowRequest {
            at: SystemTime::now(),
            method: method.as_str().chars().take(16).collect(),
            route,
            status: response.status().as_u16(),
            duration: elapsed,
            request_id: id.chars().take(MAX_ID_CHARS).collect(),
        });
    }

    /// Adds `request` to the slow list, forgetting the oldest beyond [`SLOW_KEPT`].
    pub fn push_slow(&self, request: SlowRequest) {
        let mut slow = lock(&self.0.slow);
        if slow.len() == SLOW_KEPT {
            slow.pop_back();
        }
        slow.push_front(request);
    }

    /// The slow requests kept, the newest first.
    pub fn slow_requests(&self) -> Vec<SlowRequest> {
        lock(&self.0.slow).iter().cloned().collect()
    }

    /// Adds `sample`, forgetting the oldest beyond [`SAMPLES`].
    pub fn push_sample(&self, sample: Sample) {
        let mut samples = lock(&self.0.samples);
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The samples kept, the oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        lock(&self.0.samples).iter().cloned().collect()
    }

    /// Starts the sampler on the current Tokio runtime, reading `cache`'s counters; it stops
    /// once every clone of this history is dropped. Later calls, and calls outside a runtime,
    /// do nothing.
    pub fn start_sampling(&self, cache: TieredCache) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.0.sampling.swap(true, Ordering::AcqRel) {
            return;
        }
        runtime.spawn(sample_forever(Arc::downgrade(&self.0), cache));
    }

    fn counts(&self) -> [u64; BUCKETS] {
        std::array::from_fn(|i| self.0.latencies[i].load(Ordering::Relaxed))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the counters said at one moment.
#[derive(Debug, Clone)]
struct Reading {
    at: tokio::time::Instant,
    latencies: [u64; BUCKETS],
    cache_hits: u64,
    cache_misses: u64,
}

impl Reading {
    async fn take(history: &History, cache: &TieredCache) -> Self {
        let stats = cache.stats().await;
        Self {
            at: tokio::time::Instant::now(),
            latencies: history.counts(),
            cache_hits: stats.hits + stats.stale_hits,
            cache_misses: stats.misses + stats.collapsed,
        }
    }

    /// The sample of the interval from `earlier` to this reading.
    fn since(&self, earlier: &Reading) -> Sample {
        let counts: [u64; BUCKETS] =
            std::array::from_fn(|i| self.latencies[i].saturating_sub(earlier.latencies[i]));
        let requests = counts.iter().sum();
        Sample {
            at: SystemTime::now(),
            seconds: self.at.duration_since(earlier.at).as_secs_f64(),
            requests,
            p50: percentile(&counts, requests, 0.50),
            p95: percentile(&counts, requests, 0.95),
            p99: percentile(&counts, requests, 0.99),
            cache_hits: self.cache_hits.saturating_sub(earlier.cache_hits),
            cache_misses: self.cache_misses.saturating_sub(earlier.cache_misses),
        }
    }
}

/// Takes a sample every interval for as long as the history lives.
async fn sample_forever(shared: Weak<Shared>, cache: TieredCache) {
    let Some(interval) = shared.upgrade().map(|shared| shared.interval) else {
        return;
    };
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = match shared.upgrade() {
        Some(shared) => Reading::take(&History(shared), &cache).await,
        None => return,
    };
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let history = History(shared);
        let now = Reading::take(&history, &cache).await;
        history.push_sample(now.since(&last));
        last = now;
    }
}

/// The bucket of a latency of `micros`: exact below 4 µs, then four per octave.
fn bucket(micros: u64) -> usize {
    if micros < SUBS as u64 {
        return micros as usize;
    }
    let octave = 63 - micros.leading_zeros();
    let sub = (micros >> (octave - SUB_BITS)) as usize & (SUBS - 1);
    ((octave - SUB_BITS + 1) as usize * SUBS + sub).min(BUCKETS - 1)
}

/// The smallest latency, in microseconds, of bucket `index`.
fn lower_bound(index: usize) -> u64 {
    if index < SUBS {
        return index as u64;
    }
    let octave = (index / SUBS) as u32 + SUB_BITS - 1;
    ((SUBS + index % SUBS) as u64) << (octave - SUB_BITS)
}

/// The `q` quantile, in milliseconds, of `total` requests counted per bucket: the middle of
/// the bucket holding it.
fn percentile(counts: &[u64; BUCKETS], total: u64, q: f64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    let index = counts.iter().position(|count| {
        seen += count;
        seen >= rank
    })?;
    let middle = (lower_bound(index) + lower_bound(index + 1)) as f64 / 2.0;
    Some(middle / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_latency_falls_inside_its_bucket() {
        let mut latencies: Vec<u64> = (0..5000)
            .chain((3..40).flat_map(|shift| [(1u64 << shift) - 1, 1 << shift, (1 << shift) + 3]))
            .collect();
        latencies.sort_unstable();
        let mut previous = 0;
        for micros in latencies {
            let index = bucket(micros);
            assert!(index >= previous, "buckets grow with latency");
            previous = index;
            if index < BUCKETS - 1 {
                assert!(
                    lower_bound(index) <= micros,
                    "{micros} µs in bucket {index}"
                );
                assert!(
                    micros < lower_bound(index + 1),
                    "{micros} µs in bucket {index}"
                );
            }
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        for index in SUBS..BUCKETS - 1 {
            let (low, high) = (lower_bound(index), lower_bound(index + 1));
            assert!(
                high > low && (high - low) * 4 <= low,
                "bucket {index}: {low}..{high}"
            );
        }
    }

    #[test]
    fn percentiles_come_from_the_buckets() {
        let mut counts = [0; BUCKETS];
        // 90 requests of 1 ms, 9 of 20 ms and one of 400 ms.
        counts[bucket(1000)] += 90;
        counts[bucket(20_000)] += 9;
        counts[bucket(400_000)] += 1;
        let near = |value: Option<f64>, expected: f64| {
            let value = value.expect("requests were counted");
            assert!(
                (value - expected).abs() <= expected * 0.15,
                "{value} ms for {expected} ms"
            );
        };
        near(percentile(&counts, 100, 0.50), 1.0);
        near(percentile(&counts, 100, 0.95), 20.0);
        near(percentile(&counts, 100, 0.99), 20.0);
        near(percentile(&counts, 100, 1.0), 400.0);
        assert_eq!(percentile(&[0; BUCKETS], 0, 0.5), None);
    }

    #[test]
    fn a_sample_is_the_difference_of_two_readings() {
        let start = tokio::time::Instant::now();
        let mut earlier = Reading {
            at: start,
            latencies: [0; BUCKETS],
            cache_hits: 10,
            cache_misses: 5,
        };
        earlier.latencies[bucket(800)] = 7;
        let mut later = earlier.clone();
        later.at = start + Duration::from_secs(10);
        later.latencies[bucket(800)] += 30;
        later.latencies[bucket(3000)] += 20;
        later.cache_hits += 45;
        later.cache_misses += 5;
        let sample = later.since(&earlier);
        assert_eq!(sample.requests, 50);
        assert!((sample.rate() - 5.0).abs() < 1e-9);
        assert_eq!(sample.hit_ratio(), Some(0.9));
        let p50 = sample.p50.expect("requests");
        let p99 = sample.p99.expect("requests");
        assert!(p50 < 1.0 && p99 > 2.5, "{p50} {p99}");
    }

    #[test]
    fn the_lists_keep_the_newest() {
        let history = History::new(Duration::from_millis(1), Duration::from_secs(1));
        for n in 0..(SLOW_KEPT as u16 + 5) {
            history.push_slow(SlowRequest {
                at: SystemTime::UNIX_EPOCH,
                method: "GET".into(),
                route: Arc::from("/"),
                status: 200 + n,
                duration: Duration::from_secs(1),
                request_id: n.to_string(),
            });
        }
        let slow = history.slow_requests();
        assert_eq!(slow.len(), SLOW_KEPT);
        assert_eq!(slow[0].status, 200 + SLOW_KEPT as u16 + 4, "newest first");
        for n in 0..(SAMPLES as u64 + 3) {
            history.push_sample(Sample {
                at: SystemTime::UNIX_EPOCH,
                seconds: 1.0,
                requests: n,
                p50: None,
                p95: None,
                p99: None,
                cache_hits: 0,
                cache_misses: 0,
            });
        }
        let samples = history.samples();
        assert_eq!(samples.len(), SAMPLES);
        assert_eq!(
            samples[SAMPLES - 1].requests,
            SAMPLES as u64 + 2,
            "oldest first"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_sampler_takes_a_sample_every_interval() {
        let history = History::new(Duration::from_millis(5), Duration::from_secs(10));
        history.start_sampling(TieredCache::new(1 << 20));
        history.start_sampling(TieredCache::new(1 << 20));
        tokio::time::sleep(Duration::from_millis(1)).await;
        let response = Response::new(axum::body::Body::empty());
        let id = HeaderValue::from_static("req-1");
        history.record(&Method::GET, &response, Duration::from_millis(2), &id);
        history.record(&Method::GET, &response, Duration::from_millis(9), &id);
        tokio::time::sleep(Duration::from_secs(25)).await;
        let samples = history.samples();
        assert_eq!(samples.len(), 2, "one sampler, a sample each 10 s");
        assert_eq!(samples[0].requests, 2);
        assert_eq!(samples[1].requests, 0);
        let slow = history.slow_requests();
        assert_eq!(slow.len(), 1);
        assert_eq!(&*slow[0].route, "unmatched");
        assert_eq!(slow[0].request_id, "req-1");
    }
}
