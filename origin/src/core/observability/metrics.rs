//! Prometheus metrics: one registry per server instance, rendered at `GET /metrics`.
//!
//! Labels are bounded: routes are axum's matched templates (`/api/tasks/{id}`), never raw paths,
//! and unknown methods collapse into `OTHER`.

use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use axum::http::Method;
use axum::response::Response;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rustc_hash::FxHashMap;

use crate::core::cache::TieredCache;
use crate::core::http::header_values::standard_method;
use crate::core::observability::collectors::Sources;
use crate::core::observability::dependency_metrics::{latency_histogram, DbMetrics};
use crate::core::route::RouteTemplate;

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
    /// The response cache, whose pending maintenance a scrape runs first (see [`Self::settle`]).
    cache: Option<TieredCache>,
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
        let cache = sources.cache.clone();
        sources.register(&mut registry);
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
        let database = DbMetrics::registered(&mut registry);
        Self {
            registry: Arc::new(registry),
            requests,
            durations,
            handles: Arc::default(),
            rate_limited,
            database,
            cache,
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
    /// Brings what is read at scrape time up to date: the cache's pending evictions and
    /// expiries, which moka otherwise runs only as requests come.
    pub async fn settle(&self) {
        if let Some(cache) = &self.cache {
            cache.settle().await;
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn method_label(method: &Method) -> &'static str {
    standard_method(method).unwrap_or("OTHER")
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
