//! Assembles the origin and serves it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{middleware, Router};
use shared::policy::Policy;
use tokio::net::TcpListener;
use tower::Layer;

use crate::app::api::UploadLimits;
use crate::app::store::seed::SeedSize;
use crate::app::store::{Store, StoreError};
use crate::app::{self, AppState, ImageUrls};
use crate::config::{Config, DemoData};
use crate::core::admission::Admission;
use crate::core::breaker::CircuitBreaker;
use crate::core::cache::{RedisTier, TieredCache};
use crate::core::client::EdgeTrust;
use crate::core::database::{Database, DbError, DbSettings};
use crate::core::edge_purge::EdgePurge;
use crate::core::listener::{self, ConnectionLimits, Drained, OpenConnections};
use crate::core::outbound::{HttpClient, OutboundSettings};
use crate::core::pipeline::{Pipeline, PipelineLayer, Stages};
use crate::core::rate_limit::RateLimiter;
use crate::core::response_cache::{CacheTuning, ResponseCache};
use crate::core::retry::{Retrier, RetryBudget, RetryPolicy};
use crate::core::{admin, compression, errors, health, metrics, policy_headers, warm};

/// The reusable origin core, ready to wrap any axum application.
#[derive(Debug, Clone)]
pub struct Core {
    /// The shared route policy.
    pub policy: Arc<Policy>,
    /// The metrics registry.
    pub metrics: metrics::Metrics,
    /// The response cache.
    pub cache: ResponseCache,
    /// The admin bearer token; `None` disables admin routes.
    pub admin_token: Option<Arc<str>>,
    /// Rate limits; `None` when turned off.
    pub limiter: Option<Arc<RateLimiter>>,
    /// What proves a request came through the edge.
    pub trust: EdgeTrust,
    /// The breaker guarding Redis calls.
    pub redis_breaker: CircuitBreaker,
    /// The breaker guarding database queries.
    pub database_breaker: CircuitBreaker,
    /// The breaker guarding outbound HTTP requests.
    pub http_breaker: CircuitBreaker,
    /// Retries of idempotent calls, with one budget per dependency kind's callers.
    pub retry: RetryPolicy,
    /// Retries may be at most this share of calls.
    pub retry_budget_ratio: f64,
    /// The application's database, for readiness.
    pub database: Option<Database>,
    /// Open client connections.
    pub connections: OpenConnections,
    /// Set once a shutdown signal arrived: readiness answers 503.
    pub draining: Arc<AtomicBool>,
    /// When the core was built.
    pub started: Instant,
    /// Requests slower than this are logged as warnings.
    pub slow_request: Duration,
    /// Concurrency limit, wait queue and request timeout.
    pub admission: Arc<Admission>,
}

impl Core {
    /// The core `config` describes, with the embedded policy.
    pub fn from_config(config: &Config) -> Self {
        let redis_breaker = CircuitBreaker::new("redis", config.breakers);
        let database_breaker = CircuitBreaker::new("database", config.breakers);
        let http_breaker = CircuitBreaker::new("http", config.breakers);
        let redis_metrics = metrics::RedisMetrics::default();
        let cache = response_cache(config, &redis_breaker, &redis_metrics);
        let connections = OpenConnections::default();
        let sources = metrics::Sources {
            cache: Some(cache.cache.clone()),
            connections: connections.clone(),
            breakers: vec![
                redis_breaker.clone(),
                database_breaker.clone(),
                http_breaker.clone(),
            ],
            redis: redis_metrics.clone(),
        };
        Self {
            policy: Arc::new(Policy::default()),
            metrics: metrics::Metrics::new(sources),
            cache,
            admin_token: config.admin_token.as_deref().map(Arc::from),
            limiter: rate_limiter(config, &redis_breaker, &redis_metrics).map(Arc::new),
            trust: config.edge_trust.clone(),
            redis_breaker,
            database_breaker,
            http_breaker,
            retry: config.retry,
            retry_budget_ratio: config.retry_budget_percent as f64 / 100.0,
            database: None,
            connections,
            draining: Arc::default(),
            started: Instant::now(),
            slow_request: Duration::from_millis(config.slow_request_ms),
            admission: Arc::new(
                Admission::new(config.admission)
                    .with_rule_timeouts(config.request_timeout_rules.clone()),
            ),
        }
    }

    /// The core with the application's `database`, whose reachability decides readiness.
    /// Its queries are guarded by the database breaker and its reads retried.
    #[must_use]
    pub fn with_database(mut self, database: Database) -> Self {
        let database = database
            .with_breaker(self.database_breaker.clone())
            .with_retries(self.retrier());
        self.database = Some(database);
        self
    }

    /// A retrier with the configured policy and a budget of its own.
    pub fn retrier(&self) -> Retrier {
        Retrier {
            policy: self.retry,
            budget: RetryBudget::new(self.retry_budget_ratio, 3),
        }
    }

    /// The guarded client for outbound HTTP requests.
    pub fn http_client(&self, settings: OutboundSettings) -> HttpClient {
        HttpClient::new(settings, self.http_breaker.clone(), self.retrier())
    }

    /// Every dependency's breaker.
    pub fn breakers(&self) -> Vec<CircuitBreaker> {
        vec![
            self.redis_breaker.clone(),
            self.database_breaker.clone(),
            self.http_breaker.clone(),
        ]
    }

    /// `app` with the core's routes and layers, as a router (to merge into others, or to serve
    /// with `axum::serve`). See [`Core::stack`].
    pub fn wrap(self, app: Router) -> Router {
        Router::new().fallback_service(self.stack(app))
    }

    /// `app` with the core's routes and layers, as the service the listener runs. The policy
    /// and the response cache run around the router, so a cache hit is answered before any
    /// routing or handler; the routes inside tag their responses with their template, which
    /// cached copies keep, for the metrics. No router stands in front: a hit passes three
    /// concrete services and no boxed route.
    pub fn stack(self, app: Router) -> Stack {
        let breakers = self.breakers();
        let admin = admin::AdminState {
            cache: self.cache.cache.clone(),
            token: self.admin_token,
            breakers: breakers.clone(),
        };
        let health = health::HealthState {
            started: self.started,
            database: self.database,
            cache: self.cache.cache.clone(),
            breakers,
            draining: self.draining,
        };
        let routes = app
            .merge(admin::router(admin))
            .merge(health::router(health))
            .route(
                "/metrics",
                get(metrics::endpoint).with_state(self.metrics.clone()),
            )
            .route_layer(middleware::from_fn(metrics::tag_route))
            .fallback(errors::route_not_found);
        // Outermost: compression of what the cache did not compress already (its hits come
        // with the copy in the negotiated coding).
        // Inside: policy, response cache (hits skip the router) and metrics, in one service.
        let pipeline = PipelineLayer::new(Stages {
            policy: policy_headers::PolicyHeaders::new(self.policy),
            cache: self.cache,
            metrics: self.metrics,
            limiter: self.limiter,
            trust: self.trust,
            slow_request: self.slow_request,
            admission: self.admission,
        })
        .layer(routes);
        compression::CompressLayer.layer(pipeline)
    }
}

/// The origin core around an application (see [`Core::stack`]).
pub type Stack = compression::Compress<Pipeline<Router>>;

/// The rate limiter `config` asks for: shared through Redis when `REDIS_URL` is set.
fn rate_limiter(
    config: &Config,
    breaker: &CircuitBreaker,
    metrics: &metrics::RedisMetrics,
) -> Option<RateLimiter> {
    let budgets = config.rate_limits?;
    let Some(url) = &config.redis_url else {
        return Some(RateLimiter::local(budgets));
    };
    let timeout = Duration::from_millis(config.redis_timeout_ms);
    let shared = RateLimiter::local(budgets).with_redis(
        url,
        &config.redis_key_prefix,
        timeout,
        breaker.clone(),
        metrics.clone(),
    );
    Some(shared.unwrap_or_else(|error| {
        tracing::error!(%error, "REDIS_URL is invalid: rate limits are per instance");
        RateLimiter::local(budgets)
    }))
}

/// The response cache `config` asks for: in-process, plus Redis when `REDIS_URL` is set.
pub fn response_cache(
    config: &Config,
    breaker: &CircuitBreaker,
    metrics: &metrics::RedisMetrics,
) -> ResponseCache {
    let mut cache = TieredCache::new(config.cache_max_bytes);
    if let Some((url, token)) = &config.edge_purge {
        match EdgePurge::new(url.clone(), token.clone()) {
            Ok(edge) => cache = cache.with_edge_purge(edge),
            Err(error) => {
                tracing::error!(%error, "EDGE_PURGE_URL: no HTTP client, edge purges off")
            }
        }
    }
    if let Some(url) = &config.redis_url {
        let timeout = std::time::Duration::from_millis(config.redis_timeout_ms);
        match RedisTier::new(url, &config.redis_key_prefix, timeout) {
            Ok(tier) => {
                let tier = tier
                    .with_breaker(breaker.clone())
                    .with_metrics(metrics.clone());
                cache = cache.with_redis(tier);
            }
            Err(error) => {
                tracing::error!(%error, "REDIS_URL is invalid: running on the in-process cache alone")
            }
        }
    }
    let seconds = Duration::from_secs;
    ResponseCache {
        cache,
        max_body: usize::try_from(config.cache_max_body_bytes).unwrap_or(usize::MAX),
        tuning: Arc::new(CacheTuning {
            enabled: config.cache_enabled,
            ttl: config.cache_ttl.map(seconds),
            rule_ttls: vec![(
                "task-comments".to_owned(),
                seconds(config.comments_cache_ttl),
            )],
            stale_while_revalidate: Some(seconds(config.cache_stale_while_revalidate_ttl)),
        }),
    }
}

/// Why the origin could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened, migrated or seeded.
    #[error("database: {0}")]
    Database(#[from] DbError),
    /// The demo data could not be written.
    #[error("demo data: {0}")]
    Seed(#[from] StoreError),
    /// Serving failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens, migrates and (when empty) seeds the database `config` names.
pub async fn open_store(config: &Config, metrics: &metrics::Metrics) -> Result<Store, ServeError> {
    let settings = DbSettings {
        url: config.database_url.clone(),
        pool_size: config.database_pool_size,
        query_timeout: Duration::from_millis(config.database_query_timeout_ms),
    };
    let db = Database::connect(&settings, metrics.database()).await?;
    let store = Store::open(db).await?;
    let size = match config.demo_data {
        DemoData::Full => Some(SeedSize::FULL),
        DemoData::Small => Some(SeedSize::SMALL),
        DemoData::None => None,
    };
    if let Some(size) = size {
        if store.seed_if_empty(size).await? {
            tracing::info!(?size, "filled the empty database with demo data");
        }
    }
    Ok(store)
}

/// Serves `GET /metrics` alone on `addr` (for scrapers kept off the public port) until the
/// process exits.
async fn spawn_metrics_listener(
    addr: std::net::SocketAddr,
    metrics: metrics::Metrics,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(addr).await?;
    let router = Router::new().route("/metrics", get(metrics::endpoint).with_state(metrics));
    tracing::info!(%addr, "metrics listener");
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "metrics listener failed");
        }
    });
    Ok(())
}

/// Serves on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let core = Core::from_config(&config);
    let store = open_store(&config, &core.metrics).await?;
    let core = core.with_database(store.database().clone());
    let guarded = core
        .database
        .clone()
        .unwrap_or_else(|| store.database().clone());
    let store = store.with_database(guarded);
    let http = core.http_client(config.outbound);
    if let Some(addr) = config.metrics_addr {
        spawn_metrics_listener(addr, core.metrics.clone()).await?;
    }
    let (connections, draining) = (core.connections.clone(), Arc::clone(&core.draining));
    let uploads = UploadLimits {
        max_bytes: usize::try_from(config.upload_max_bytes).unwrap_or(usize::MAX),
        max_pixels: config.upload_max_pixels,
    };
    let database = store.database().clone();
    let images = ImageUrls::new(config.image_signing_key.clone());
    let state = AppState::new(store, core.cache.cache.clone(), uploads, http, images);
    let stack = core.stack(app::router(state));
    let host = config
        .cache_warm_host
        .clone()
        .or_else(|| listener.local_addr().ok().map(|addr| addr.to_string()))
        .unwrap_or_else(|| "localhost".to_owned());
    if config.cache_enabled && !config.cache_warm_paths.is_empty() {
        let (stack, paths) = (stack.clone(), config.cache_warm_paths.clone());
        tokio::spawn(async move { warm::warm(stack, &host, &paths).await });
    }
    let shutdown = async move {
        shutdown.await;
        draining.store(true, Ordering::Relaxed);
    };
    let drained = listener::serve(
        listener,
        stack,
        ConnectionLimits {
            max_header_bytes: usize::try_from(config.max_header_bytes).unwrap_or(usize::MAX),
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
            shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
        },
        connections,
        shutdown,
    )
    .await;
    if let Drained::TimedOut { remaining } = drained {
        tracing::warn!(
            remaining,
            "shutdown timeout passed with requests still running"
        );
    }
    // Give the connections back to the database cleanly; requests left running after the
    // shutdown timeout may still hold one, so this wait is bounded too.
    let _ = tokio::time::timeout(Duration::from_secs(5), database.close()).await;
    Ok(())
}
