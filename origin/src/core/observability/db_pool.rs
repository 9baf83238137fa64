//! The database pool's saturation: connections in use and idle and the pool's maximum (read
//! from the pool at scrape time), callers waiting for a connection, and how long getting one
//! took (`db_pool_*`).
//!
//! sqlx tells neither how many callers wait nor how long they waited, so the database handle
//! takes every connection through [`PoolMetrics::acquiring`], which counts and times it.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use sqlx::AnyPool;

/// The pool read at scrape time, once a database is connected.
type PoolSlot = Arc<RwLock<Option<AnyPool>>>;

/// The pool's gauges and acquire latency; cheap to clone (clones share them).
#[derive(Debug, Clone)]
pub struct PoolMetrics {
    pool: PoolSlot,
    waiting: Gauge,
    acquire: Histogram,
}

impl Default for PoolMetrics {
    fn default() -> Self {
        Self {
            pool: Arc::default(),
            waiting: Gauge::default(),
            acquire: acquire_histogram(),
        }
    }
}

/// The buckets of `db_pool_acquire_duration_seconds`: 50 µs to about 13 s, finer at the low
/// end than the query latencies', since an idle connection is handed over in microseconds.
fn acquire_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.00005, 2.0, 19))
}

impl PoolMetrics {
    /// Reports `pool`'s connections from now on (the last pool attached wins).
    pub fn attach(&self, pool: &AnyPool) {
        *self.pool.write().unwrap_or_else(|p| p.into_inner()) = Some(pool.clone());
    }

    /// Runs `acquire`, counted in `db_pool_waiting` while it runs and timed in
    /// `db_pool_acquire_duration_seconds` when it ends (given up or cancelled ones too).
    pub async fn acquiring<T>(&self, acquire: impl Future<Output = T>) -> T {
        let _waiting = Waiting::start(self);
        acquire.await
    }

    /// Registers the gauges and the histogram in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "db_pool_waiting",
            "Callers waiting for a database connection",
            self.waiting.clone(),
        );
        registry.register(
            "db_pool_acquire_duration_seconds",
            "Time to get a database connection from the pool",
            self.acquire.clone(),
        );
        registry.register_collector(Box::new(PoolCollector(Arc::clone(&self.pool))));
    }
}

/// One caller inside acquire: counted while it lives, timed when it ends.
struct Waiting<'a> {
    metrics: &'a PoolMetrics,
    started: Instant,
}

impl<'a> Waiting<'a> {
    fn start(metrics: &'a PoolMetrics) -> Self {
        metrics.waiting.inc();
        Self {
            metrics,
            started: Instant::now(),
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.metrics.waiting.dec();
        let elapsed = self.started.elapsed().as_secs_f64();
        self.metrics.acquire.observe(elapsed);
    }
}

/// Reports `db_pool_connections{state}` and `db_pool_max_connections` from the pool itself.
#[derive(Debug)]
struct PoolCollector(PoolSlot);

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let Some(pool) = self.0.read().unwrap_or_else(|p| p.into_inner()).clone() else {
            return Ok(());
        };
        let open = i64::from(pool.size());
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX).min(open);
        let mut connections = encoder.encode_descriptor(
            "db_pool_connections",
            "Open database connections, in_use or idle",
            None,
            MetricType::Gauge,
        )?;
        for (state, value) in [("in_use", open - idle), ("idle", idle)] {
            let labels = [("state", state)];
            ConstGauge::new(value).encode(connections.encode_family(&labels)?)?;
        }
        let max = encoder.encode_descriptor(
            "db_pool_max_connections",
            "Most database connections the pool opens",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(pool.options().get_max_connections())).encode(max)
    }
}
