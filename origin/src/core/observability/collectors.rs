//! What the metrics read at scrape time rather than count: the process ([`process`]), the
//! cache's per-level counters and how full its in-process level is, open connections, breaker
//! states and transitions, and admission's slots and queue.
//!
//! [`process`]: crate::core::observability::process

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::core::cache::{LevelCount, LocalPressure, TieredCache, EVICTION_CAUSES};
use crate::core::dependencies::breaker::CircuitBreaker;
use crate::core::jobs::metrics::JobMetrics;
use crate::core::layers::admission::Admission;
use crate::core::observability::dependency_metrics::RedisMetrics;
use crate::core::observability::process::ProcessCollector;
use crate::core::serving::listener::OpenConnections;

/// A counter family read from [`LevelCount`]: name, help, and which count.
type Series = (&'static str, &'static str, fn(&LevelCount) -> u64);

/// Reports the cache's own per-level counters at scrape time.
#[derive(Debug)]
struct CacheCollector(TieredCache);

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let levels = self.0.level_counts();
        let series: [Series; 2] = [
            ("cache_hits", "Cache lookups answered, per level", |l| {
                l.hits
            }),
            (
                "cache_misses",
                "Cache lookups not answered, per level",
                |l| l.misses,
            ),
        ];
        for (name, help, value) in series {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for level in &levels {
                let labels = vec![("cache", level.level)];
                ConstCounter::new(value(level)).encode(metric.encode_family(&labels)?)?;
            }
        }
        encode_pressure(&self.0.local_pressure(), &mut encoder)
    }
}

/// `cache_local_entries`, `cache_local_bytes`, `cache_evictions_total{cause}` and
/// `cache_stale_served_total{reason}`.
fn encode_pressure(pressure: &LocalPressure, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
    let gauges = [
        (
            "cache_local_entries",
            "Entries in the in-process cache",
            pressure.entries,
        ),
        (
            "cache_local_bytes",
            "Weighted size of the in-process cache: bytes of keys and values",
            pressure.bytes,
        ),
    ];
    for (name, help, value) in gauges {
        let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric)?;
    }
    let mut evictions = encoder.encode_descriptor(
        "cache_evictions",
        "Entries the in-process cache let go of, per cause: size, expired, replaced, explicit",
        None,
        MetricType::Counter,
    )?;
    for (cause, count) in EVICTION_CAUSES.iter().zip(pressure.evictions) {
        let labels = [("cause", *cause)];
        ConstCounter::new(count).encode(evictions.encode_family(&labels)?)?;
    }
    let mut stale = encoder.encode_descriptor(
        "cache_stale_served",
        "Stale copies served: revalidate (while a refresh runs) or error (for a failed load)",
        None,
        MetricType::Counter,
    )?;
    let served = [
        ("revalidate", pressure.stale_revalidate),
        ("error", pressure.stale_error),
    ];
    for (reason, count) in served {
        let labels = [("reason", reason)];
        ConstCounter::new(count).encode(stale.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Reports gauges read at scrape time: open connections and breaker states.
#[derive(Debug)]
struct GaugeCollector {
    connections: OpenConnections,
    breakers: Vec<CircuitBreaker>,
}

impl Collector for GaugeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let connections = encoder.encode_descriptor(
            "active_connections",
            "Open client connections",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.connections.get()).encode(connections)?;
        let mut states = encoder.encode_descriptor(
            "circuit_breaker_state",
            "Circuit breaker state per dependency: 0 closed, 1 open, 2 half-open",
            None,
            MetricType::Gauge,
        )?;
        for breaker in &self.breakers {
            let labels = vec![("name", breaker.name())];
            ConstGauge::new(breaker.state().gauge()).encode(states.encode_family(&labels)?)?;
        }
        let mut transitions = encoder.encode_descriptor(
            "circuit_breaker_transitions",
            "Circuit breaker state changes, per breaker, from and to: closed, open, half_open",
            None,
            MetricType::Counter,
        )?;
        for breaker in &self.breakers {
            for change in breaker.transition_counts() {
                let labels = [
                    ("breaker", breaker.name()),
                    ("from", change.from.label()),
                    ("to", change.to.label()),
                ];
                ConstCounter::new(change.count).encode(transitions.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Reports admission's slots taken and queue length at scrape time.
#[derive(Debug)]
struct AdmissionCollector(Arc<Admission>);

impl Collector for AdmissionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let gauges = [
            (
                "admission_in_flight",
                "Requests admitted to the application and running",
                self.0.in_flight(),
            ),
            (
                "admission_queue_depth",
                "Requests waiting for an admission slot",
                self.0.queued(),
            ),
        ];
        for (name, help, value) in gauges {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric)?;
        }
        Ok(())
    }
}

/// What the metrics read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The response cache, for its per-level counters.
    pub cache: Option<TieredCache>,
    /// Open client connections.
    pub connections: OpenConnections,
    /// The dependencies' breakers.
    pub breakers: Vec<CircuitBreaker>,
    /// What the Redis clients record.
    pub redis: RedisMetrics,
    /// What the job system records.
    pub jobs: JobMetrics,
    /// Admission, for its slots, queue, sheds and timeouts.
    pub admission: Option<Arc<Admission>>,
}

impl Sources {
    /// Registers a collector for each source in `registry`.
    pub fn register(self, registry: &mut Registry) {
        if let Some(cache) = self.cache {
            registry.register_collector(Box::new(CacheCollector(cache)));
        }
        registry.register_collector(Box::new(GaugeCollector {
            connections: self.connections,
            breakers: self.breakers,
        }));
        if let Some(admission) = self.admission {
            admission.metrics().register(registry);
            registry.register_collector(Box::new(AdmissionCollector(admission)));
        }
        registry.register_collector(Box::new(ProcessCollector));
        self.redis.register(registry);
        self.jobs.register(registry);
    }
}
