//! The counters and latencies of the origin's dependencies (database queries and the pool
//! they draw on, Redis calls and whether Redis answers), handed to their clients, which record
//! every call's outcome.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::core::observability::db_pool::PoolMetrics;

/// The latency buckets of every histogram: 0.5 ms to about 16 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Labels of `db_queries_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    operation: &'static str,
    table: &'static str,
    outcome: &'static str,
}

/// Labels of `db_query_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryKindLabels {
    operation: &'static str,
    table: &'static str,
}

/// Database query counts and latencies, recorded by [`crate::core::dependencies::database::Database`].
#[derive(Debug, Clone)]
pub struct DbMetrics {
    queries: Family<QueryLabels, Counter>,
    durations: Family<QueryKindLabels, Histogram, fn() -> Histogram>,
    pool: PoolMetrics,
}

impl DbMetrics {
    /// Counts one query of `operation` on `table` that ended as `outcome` after `elapsed`.
    pub fn record(
        &self,
        operation: &'static str,
        table: &'static str,
        outcome: &'static str,
        elapsed: std::time::Duration,
    ) {
        self.queries
            .get_or_create(&QueryLabels {
                operation,
                table,
                outcome,
            })
            .inc();
        self.durations
            .get_or_create(&QueryKindLabels { operation, table })
            .observe(elapsed.as_secs_f64());
    }

    /// The pool's saturation metrics.
    pub fn pool(&self) -> &PoolMetrics {
        &self.pool
    }
}

/// Labels of `redis_operations_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RedisLabels {
    operation: &'static str,
    outcome: &'static str,
}

/// Labels of `redis_operation_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RedisKindLabels {
    operation: &'static str,
}

/// The Redis call counters and latencies, handed to every Redis client of the origin.
#[derive(Debug, Clone)]
pub struct RedisMetrics {
    operations: Family<RedisLabels, Counter>,
    durations: Family<RedisKindLabels, Histogram, fn() -> Histogram>,
    up: RedisUp,
}

impl Default for RedisMetrics {
    fn default() -> Self {
        Self {
            operations: Family::default(),
            durations: Family::new_with_constructor(latency_histogram),
            up: RedisUp::default(),
        }
    }
}

/// Whether Redis answers, as `redis_up` reports it: unused (not reported), down, or up.
#[derive(Debug, Clone, Default)]
struct RedisUp(Arc<AtomicU8>);

impl RedisUp {
    const UNUSED: u8 = 0;
    const DOWN: u8 = 1;
    const UP: u8 = 2;

    /// Stores the new state only when it changed, so that the calls of a steady state write
    /// nothing shared.
    fn set(&self, state: u8) {
        if self.0.load(Ordering::Relaxed) != state {
            self.0.store(state, Ordering::Relaxed);
        }
    }
}

impl Collector for RedisUp {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let value = match self.0.load(Ordering::Relaxed) {
            Self::UNUSED => return Ok(()),
            state => i64::from(state == Self::UP),
        };
        let metric = encoder.encode_descriptor(
            "redis_up",
            "1 while Redis answers (connection established, last call succeeded), else 0",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(value).encode(metric)
    }
}

impl RedisMetrics {
    /// Counts one call of `operation` that ended as `outcome` (`ok`, `error`, `timeout`,
    /// `circuit_open`) after `elapsed`.
    pub fn record(&self, operation: &'static str, outcome: &'static str, elapsed: Duration) {
        self.operations
            .get_or_create(&RedisLabels { operation, outcome })
            .inc();
        match outcome {
            "ok" => self.up.set(RedisUp::UP),
            "error" | "timeout" => self.up.set(RedisUp::DOWN),
            _ => {}
        }
        if outcome != "circuit_open" {
            self.durations
                .get_or_create(&RedisKindLabels { operation })
                .observe(elapsed.as_secs_f64());
        }
    }
}
impl RedisMetrics {
    /// A Redis client now reports here: `redis_up` is reported from now on, 0 until Redis
    /// answered.
    pub fn in_use(&self) {
        let _ = self.up.0.compare_exchange(
            RedisUp::UNUSED,
            RedisUp::DOWN,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Records whether Redis answered outside the counted calls: a health check's `PING`, the
    /// invalidation subscription established or lost.
    pub fn answered(&self, up: bool) {
        self.up.set(if up { RedisUp::UP } else { RedisUp::DOWN });
    }
}

impl DbMetrics {
    /// New query metrics, registered in `registry`.
    pub fn registered(registry: &mut Registry) -> Self {
        let metrics = Self {
            queries: Family::default(),
            durations: Family::new_with_constructor(latency_histogram),
            pool: PoolMetrics::default(),
        };
        registry.register(
            "db_queries",
            "Database queries, per operation, table and outcome",
            metrics.queries.clone(),
        );
        registry.register(
            "db_query_duration_seconds",
            "Database query latency, per operation and table",
            metrics.durations.clone(),
        );
        metrics.pool.register(registry);
        metrics
    }
}

impl RedisMetrics {
    /// Registers these metrics in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "redis_operations",
            "Redis calls, per operation and outcome",
            self.operations.clone(),
        );
        registry.register(
            "redis_operation_duration_seconds",
            "Redis call latency, per operation",
            self.durations.clone(),
        );
        registry.register_collector(Box::new(self.up.clone()));
    }
}
