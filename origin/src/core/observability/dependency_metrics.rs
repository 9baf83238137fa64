//! The counters and latencies of the origin's dependencies (database queries, Redis calls),
//! handed to their clients, which record every call's outcome.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

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
}

impl Default for RedisMetrics {
    fn default() -> Self {
        Self {
            operations: Family::default(),
            durations: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl RedisMetrics {
    /// Counts one call of `operation` that ended as `outcome` (`ok`, `error`, `timeout`,
    /// `circuit_open`) after `elapsed`.
    pub fn record(&self, operation: &'static str, outcome: &'static str, elapsed: Duration) {
        self.operations
            .get_or_create(&RedisLabels { operation, outcome })
            .inc();
        if outcome != "circuit_open" {
            self.durations
                .get_or_create(&RedisKindLabels { operation })
                .observe(elapsed.as_secs_f64());
        }
    }
}
impl DbMetrics {
    /// New query metrics, registered in `registry`.
    pub fn registered(registry: &mut Registry) -> Self {
        let metrics = Self {
            queries: Family::default(),
            durations: Family::new_with_constructor(latency_histogram),
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
    }
}
