//! Prometheus metrics: one registry per server instance, rendered at `GET /metrics`.
//!
//! Labels are bounded: routes are axum's matched templates (`/api/tasks/{id}`), never raw paths,
//! and unknown methods collapse into `OTHER`.

use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use prometheus_client::metrics::gauge::ConstGauge;
use rustc_hash::FxHashMap;

use super::breaker::CircuitBreaker;
use super::cache::{LevelCount, TieredCache};
use super::listener::OpenConnections;

/// A route template as a label value, shared rather than copied for every request.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct RouteLabel(Arc<str>);

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

/// Labels of `http_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: RouteLabel,
    status: u16,
}

/// Labels of `http_request_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: RouteLabel,
}

type DurationFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Labels of `rate_limited_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: &'static str,
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

/// Database query counts and latencies, recorded by [`super::database::Database`].
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

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The origin's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    durations: DurationFamily,
    /// Each request label set's duration histogram and counter, found by a fast hash: the
    /// families hash with SipHash, which a request need not pay for labels it cannot choose
    /// (route templates, known methods, statuses).
    handles: Arc<RwLock<FxHashMap<RequestLabels, (Histogram, Counter)>>>,
    rate_limited: Family<TierLabels, Counter>,
    database: DbMetrics,
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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(Sources::default())
    }
}

impl Metrics {
    /// Metrics for one server, reading `sources` at scrape time.
    pub fn new(sources: Sources) -> Self {
        let mut registry = Registry::default();
        if let Some(cache) = sources.cache {
            registry.register_collector(Box::new(CacheCollector(cache)));
        }
        registry.register_collector(Box::new(GaugeCollector {
            connections: sources.connections,
            breakers: sources.breakers,
        }));
        registry.register_collector(Box::new(ProcessCollector));
        registry.register(
            "redis_operations",
            "Redis calls, per operation and outcome",
            sources.redis.operations.clone(),
        );
        registry.register(
            "redis_operation_duration_seconds",
            "Redis call latency, per operation",
            sources.redis.durations.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests served", requests.clone());
        let durations: DurationFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response headers",
            durations.clone(),
        );
        let rate_limited = Family::<TierLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, per tier",
            rate_limited.clone(),
        );
        let database = DbMetrics {
            queries: Family::default(),
            durations: Family::new_with_constructor(latency_histogram),
        };
        registry.register(
            "db_queries",
            "Database queries, per operation, table and outcome",
            database.queries.clone(),
        );
        registry.register(
            "db_query_duration_seconds",
            "Database query latency, per operation and table",
            database.durations.clone(),
        );
        Self {
            registry: Arc::new(registry),
            requests,
            durations,
            handles: Arc::default(),
            rate_limited,
            database,
        }
    }

    /// Counts a request refused by the rate limit of `tier`.
    pub fn rate_limited(&self, tier: &'static str) {
        self.rate_limited.get_or_create(&TierLabels { tier }).inc();
    }

    /// The recorder for database queries.
    pub fn database(&self) -> DbMetrics {
        self.database.clone()
    }
}

impl Metrics {
    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The route template that answered a request, carried on its response so that layers outside
/// the router (and cached copies of the response) can label it.
#[derive(Debug, Clone)]
pub struct RouteTemplate(pub Arc<str>);

/// Per-route middleware: puts the matched route template on the response.
pub async fn tag_route(request: Request, next: Next) -> Response {
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| RouteTemplate(Arc::from(path.as_str())));
    let mut response = next.run(request).await;
    if let Some(template) = template {
        response.extensions_mut().insert(template);
    }
    response
}

impl Metrics {
    /// Records one request's count and latency, by the route template its response carries
    /// ([`RouteTemplate`]), or `unmatched`.
    pub fn observe(&self, method: &Method, response: &Response, elapsed: Duration) {
        let route = response.extensions().get::<RouteTemplate>().map_or_else(
            || Arc::clone(&UNMATCHED),
            |template| Arc::clone(&template.0),
        );
        let labels = RequestLabels {
            method: method_label(method),
            route: RouteLabel(route),
            status: response.status().as_u16(),
        };
        let seconds = elapsed.as_secs_f64();
        let handles = self.handles.read().unwrap_or_else(|p| p.into_inner());
        if let Some((duration, count)) = handles.get(&labels) {
            duration.observe(seconds);
            count.inc();
            return;
        }
        drop(handles);
        let duration = self
            .durations
            .get_or_create(&RouteLabels {
                method: labels.method,
                route: labels.route.clone(),
            })
            .clone();
        let count = self.requests.get_or_create(&labels).clone();
        duration.observe(seconds);
        count.inc();
        let mut handles = self.handles.write().unwrap_or_else(|p| p.into_inner());
        handles.insert(labels, (duration, count));
    }
}

static UNMATCHED: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("unmatched"));

/// `GET /metrics`.
pub async fn endpoint(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}
