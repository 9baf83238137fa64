//! What the metrics read at scrape time rather than count: the process (memory, CPU, threads,
//! files), the cache's per-level counters, open connections and breaker states.

use crate::core::jobs::metrics::JobMetrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::core::cache::{LevelCount, TieredCache};
use crate::core::dependencies::breaker::CircuitBreaker;
use crate::core::observability::dependency_metrics::RedisMetrics;
use crate::core::serving::listener::OpenConnections;

/// Reports the process's resident memory, CPU time, threads and open files, read from `/proc`
/// at scrape time (Linux; elsewhere nothing is reported).
#[derive(Debug)]
struct ProcessCollector;

/// Clock ticks per second of `/proc/self/stat` (USER_HZ, 100 on every Linux platform).
const CLOCK_TICKS: f64 = 100.0;

impl ProcessCollector {
    fn rss_bytes() -> Option<i64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// User plus system CPU seconds, and threads.
    fn cpu_and_threads() -> Option<(f64, i64)> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
        Some((
            (ticks(11)? + ticks(12)?) / CLOCK_TICKS,
            fields.get(17)?.parse().ok()?,
        ))
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        if let Some(rss) = Self::rss_bytes() {
            let metric = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(rss).encode(metric)?;
        }
        if let Some((cpu, threads)) = Self::cpu_and_threads() {
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(metric)?;
            let metric = encoder.encode_descriptor(
                "process_threads",
                "OS threads of the process",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(threads).encode(metric)?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let metric = encoder.encode_descriptor(
                "process_open_fds",
                "Open file descriptors",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(fds.count() as i64).encode(metric)?;
        }
        Ok(())
    }
}

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
        Ok(())
    }
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
        registry.register_collector(Box::new(ProcessCollector));
        self.redis.register(registry);
        self.jobs.register(registry);
    }
}
