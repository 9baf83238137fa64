//! The origin core assembled: [`Core`] holds what the layers share, and [`Core::stack`] puts
//! every layer around an application, in the order a request meets them.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{middleware, Router};
use shared::policy::Policy;
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::Config;
use crate::core::cache::background::{Background, PurgeTargets};
use crate::core::cache::{RedisTier, TieredCache};
use crate::core::dependencies::breaker::{BreakerSettings, CircuitBreaker};
use crate::core::dependencies::cloudflare_purge::CloudflarePurge;
use crate::core::dependencies::database::Database;
use crate::core::dependencies::edge_purge::EdgePurge;
use crate::core::dependencies::outbound::{HttpClient, OutboundSettings};
use crate::core::dependencies::recovery_probe;
use crate::core::dependencies::redis::RedisTarget;
use crate::core::dependencies::retry::{Retrier, RetryBudget, RetryPolicy};
use crate::core::endpoints::{self, admin, health, status};
use crate::core::http::client::EdgeTrust;
use crate::core::http::errors;
use crate::core::jobs::schedule::Schedule;
use crate::core::jobs::{work, Jobs, Workers};
use crate::core::layers::admission::Admission;
use crate::core::layers::compression;
use crate::core::layers::pipeline::{Pipeline, PipelineLayer, Stages};
use crate::core::layers::policy_headers::{PolicyHeaders, Stamping};
use crate::core::layers::rate_limit::RateLimiter;
use crate::core::layers::response_cache::{CacheTuning, ResponseCache};
use crate::core::observability::collectors::Sources;
use crate::core::observability::dependency_metrics::RedisMetrics;
use crate::core::observability::history::History;
use crate::core::observability::metrics::Metrics;
use crate::core::route;
use crate::core::serving::listener::OpenConnections;

/// The reusable origin core, ready to wrap any axum application.
#[derive(Debug, Clone)]
pub struct Core {
    /// The shared route policy.
    pub policy: Arc<Policy>,
    /// The metrics registry.
    pub metrics: Metrics,
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
    /// Concurrency limit, wait queue and request timeout (the one the metrics report on).
    pub admission: Arc<Admission>,
    /// Background jobs: refreshes, purges, and what the application hands off.
    pub jobs: Jobs,
    /// The paths warm-ups load (`CACHE_WARM_PATHS`).
    pub warm_paths: Arc<[String]>,
    /// Where admin actions are recorded.
    pub audit: Option<admin::Auditor>,
    /// The status page's samples and slow requests.
    pub history: History,
    /// Peers that open the status page without the admin token (`STATUS_ALLOW_NETWORKS`).
    pub status_networks: Arc<[ipnet::IpNet]>,
    /// Whose responses the policy stamps: the application's, or a proxied one's.
    pub stamping: Stamping,
    /// The breakers of the upstreams a shield proxies to.
    pub upstream_breakers: Vec<CircuitBreaker>,
}

impl Core {
    /// The core `config` describes, with the embedded policy.
    pub fn from_config(config: &Config) -> Self {
        let resilience = &config.resilience;
        // Redis only speeds things up: its breaker opens at the first failure, so no request
        // waits out a Redis timeout twice in an outage, and its recovery probe closes it
        // within about a second of Redis answering again.
        let redis_settings = BreakerSettings {
            failure_threshold: 1,
            ..resilience.breakers
        };
        let redis_breaker = CircuitBreaker::new("redis", redis_settings);
        let database_breaker = CircuitBreaker::new("database", resilience.breakers);
        let http_breaker = CircuitBreaker::new("http", resilience.breakers);
        let redis_metrics = RedisMetrics::default();
        let jobs = job_system(config);
        let cache = response_cache(config, &redis_breaker, &redis_metrics, &jobs);
        let connections = OpenConnections::default();
        let admission = Arc::new(
            Admission::new(resilience.admission)
                .with_rule_timeouts(resilience.request_timeout_rules.clone()),
        );
        let sources = Sources {
            cache: Some(cache.cache.clone()),
            connections: connections.clone(),
            breakers: vec![
                redis_breaker.clone(),
                database_breaker.clone(),
                http_breaker.clone(),
            ],
            redis: redis_metrics.clone(),
            jobs: jobs.metrics().clone(),
            admission: Some(Arc::clone(&admission)),
        };
        Self {
            policy: Arc::new(Policy::default()),
            metrics: Metrics::new(sources),
            cache,
            admin_token: config.application.admin_token.as_deref().map(Arc::from),
            limiter: rate_limiter(config, &redis_breaker, &redis_metrics).map(Arc::new),
            trust: resilience.edge_trust.clone(),
            redis_breaker,
            database_breaker,
            http_breaker,
            retry: resilience.retry,
            retry_budget_ratio: resilience.retry_budget_ratio(),
            database: None,
            connections,
            draining: Arc::default(),
            started: Instant::now(),
            slow_request: config.listener.slow_request,
            admission,
            jobs,
            warm_paths: Arc::from(config.cache.warm_paths.clone()),
            audit: None,
            history: History::new(config.status.slow_request, config.status.sample_interval),
            status_networks: Arc::from(config.status.allow_networks.clone()),
            stamping: Stamping::Application,
            upstream_breakers: Vec::new(),
        }
    }

    /// The core as a shield in front of other applications: the shield's policy (its own
    /// routes; every other path is the upstream's), or `policy` in its place, the upstreams'
    /// response headers kept as they are, and their breakers reported beside the others.
    #[must_use]
    pub fn for_shield(
        mut self,
        upstream_breakers: Vec<CircuitBreaker>,
        policy: Option<Policy>,
    ) -> Self {
        self.policy = Arc::new(policy.unwrap_or_else(Policy::shield));
        self.stamping = Stamping::Proxy;
        self.cache.name = shared::cache_status::SHIELD;
        self.upstream_breakers = upstream_breakers;
        self
    }

    /// The core recording admin actions through `auditor` (the application's audit log).
    #[must_use]
    pub fn with_audit(mut self, auditor: admin::Auditor) -> Self {
        self.audit = Some(auditor);
        self
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

    /// The core with the application's own cache lifetimes: the origin keeps responses of the
    /// policy rule named by each pair fresh for its duration (before `CACHE_TTL`).
    #[must_use]
    pub fn with_rule_ttls(mut self, rule_ttls: Vec<(String, Duration)>) -> Self {
        let tuning = CacheTuning {
            rule_ttls,
            ..CacheTuning::clone(&self.cache.tuning)
        };
        self.cache.tuning = Arc::new(tuning);
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
        let mut breakers = vec![
            self.redis_breaker.clone(),
            self.database_breaker.clone(),
            self.http_breaker.clone(),
        ];
        breakers.extend(self.upstream_breakers.iter().cloned());
        breakers
    }

    /// `app` with the core's routes and layers, as a router (to merge into others, or to serve
    /// with `axum::serve`), with the core's background workers running for the life of the
    /// process. See [`Core::stack`].
    pub fn wrap(self, app: Router) -> Router {
        self.start_recovery_probes();
        let jobs = self.jobs.clone();
        let stack = self.stack(app);
        // Never stopped: they live as long as the process.
        std::mem::forget(Self::start_jobs(&jobs, stack.clone(), Vec::new()));
        Router::new().fallback_service(stack)
    }

    /// Starts the recovery probes of the database's and Redis's breakers: while one is open,
    /// its dependency is probed every second, and trial calls resume as soon as it answers.
    pub fn start_recovery_probes(&self) {
        if let Some(database) = self.database.clone() {
            recovery_probe::spawn(&self.database_breaker, move || {
                let database = database.clone();
                async move { database.ping(PROBE_TIMEOUT).await.is_ok() }
            });
        }
        let cache = self.cache.cache.clone();
        recovery_probe::spawn(&self.redis_breaker, move || {
            let cache = cache.clone();
            async move { matches!(cache.ping_redis().await, Some(Ok(_))) }
        });
    }

    /// Starts the workers of `jobs`, whose refreshes and warm-ups run through `stack`, with
    /// `schedules`.
    pub fn start_jobs(jobs: &Jobs, stack: Stack, schedules: Vec<Schedule>) -> Workers {
        work::refresh::register(jobs, stack);
        jobs.start(schedules)
    }

    /// `app` with the core's routes and layers, as the service the listener runs. Read top to
    /// bottom, this is the order a request meets them. The pipeline's steps run in one
    /// service rather than as stacked middleware: a cache hit is the hottest path, and each
    /// layer would cost it a boxed future and a clone of the service below; a hit passes three
    /// concrete services (compression, pipeline, nothing else) and no router.
    pub fn stack(self, app: Router) -> Stack {
        let endpoints = self.endpoints();
        self.layered(app.merge(endpoints))
    }

    /// `app` behind the core's layers without the core's own routes, which
    /// [`Self::endpoints_stack`] serves on a listener of their own (`ADMIN_ADDR`).
    pub fn application_stack(self, app: Router) -> Stack {
        self.layered(app)
    }

    /// The core's own routes alone (health, metrics, the status page, the admin API) behind
    /// its layers, for a listener of their own.
    pub fn endpoints_stack(self) -> Stack {
        let endpoints = self.endpoints();
        self.layered(endpoints)
    }

    /// `routes` behind the core's layers (see [`Self::stack`]).
    fn layered(self, routes: Router) -> Stack {
        self.history.start_sampling(self.cache.cache.clone());
        let stages = Stages {
            // 1. Request id: the edge's, or a new one, so that both tiers' logs name the request.
            // 2. Policy: the shared route rule decides caching, headers and the rate-limit tier.
            policy: PolicyHeaders::new(self.policy, self.stamping),
            // 3. Rate limit: per client and tier, before any work is spent on the request.
            limiter: self.limiter,
            trust: self.trust,
            // 4. Exemption: routes the policy marks exempt skip admission and the timeout.
            // 5. Response cache: a hit is answered here, before routing or any handler.
            cache: self.cache,
            // 6. Admission, for misses: a concurrency limit, a bounded queue, a request timeout.
            admission: self.admission,
            // 7. Router (below), 8. policy headers stamped, 9. metrics and the status page's
            // history, 10. a log line.
            metrics: self.metrics,
            slow_request: self.slow_request,
            history: self.history,
            admin_token: self.admin_token.clone(),
        };
        let routes = routes
            // Route identity: every response names its route template, for the metrics.
            .route_layer(middleware::from_fn(route::tag_route))
            .fallback(errors::route_not_found)
            // A handler that panics answers 500 with the standard error body; the process goes on.
            .layer(CatchPanicLayer::custom(errors::panicked));
        let pipeline = PipelineLayer::new(stages).layer(routes);
        // Outermost: compression of what the cache did not compress already (its hits come
        // with the copy in the negotiated coding).
        compression::CompressLayer.layer(pipeline)
    }

    /// The routes the core adds: admin, health, the status page, metrics.
    fn endpoints(&self) -> Router {
        let breakers = self.breakers();
        let admin = admin::AdminState {
            cache: self.cache.cache.clone(),
            token: self.admin_token.clone(),
            breakers: breakers.clone(),
            jobs: self.jobs.clone(),
            warm_paths: Arc::clone(&self.warm_paths),
            audit: self.audit.clone(),
        };
        let health = health::HealthState {
            started: self.started,
            database: self.database.clone(),
            cache: self.cache.cache.clone(),
            breakers,
            draining: Arc::clone(&self.draining),
            jobs: self.jobs.clone(),
        };
        admin::router(admin)
            .merge(health::router(health))
            .merge(status::router(self.status_state()))
            .route(
                "/metrics",
                get(endpoints::metrics::endpoint).with_state(self.metrics.clone()),
            )
    }

    /// What the status page reads.
    fn status_state(&self) -> status::StatusState {
        status::StatusState {
            token: self.admin_token.clone(),
            networks: Arc::clone(&self.status_networks),
            history: self.history.clone(),
            cache: self.cache.cache.clone(),
            breakers: self.breakers(),
            jobs: self.jobs.clone(),
            started: self.started,
            connections: self.connections.clone(),
        }
    }
}

/// The origin core around an application (see [`Core::stack`]).
pub type Stack = compression::Compress<Pipeline<Router>>;

/// The rate limiter `config` asks for: shared through Redis when `REDIS_URL` is set.
fn rate_limiter(
    config: &Config,
    breaker: &CircuitBreaker,
    metrics: &RedisMetrics,
) -> Option<RateLimiter> {
    let budgets = config.resilience.rate_limits?;
    let redis = &config.redis;
    let Some(target) = redis_target(config) else {
        return Some(RateLimiter::local(budgets));
    };
    let shared = RateLimiter::local(budgets).with_redis(
        &target,
        &redis.key_prefix,
        redis.timeout,
        breaker.clone(),
        metrics.clone(),
    );
    Some(shared.unwrap_or_else(|error| {
        tracing::error!(%error, "Redis unusable: rate limits are per instance");
        RateLimiter::local(budgets)
    }))
}

/// The Redis `config` names (one node or a cluster), if any; an unusable one is logged and
/// left out (a configuration read from the environment was checked already).
fn redis_target(config: &Config) -> Option<RedisTarget> {
    RedisTarget::from_config(&config.redis)
        .inspect_err(
            |error| tracing::error!(%error, "Redis settings unusable: running without Redis"),
        )
        .ok()
        .flatten()
}

/// The job system `config` asks for: on Redis when `REDIS_URL` is set, else in process; with
/// the handlers of the core's own jobs that need no application (purges, housekeeping).
fn job_system(config: &Config) -> Jobs {
    let settings = config.jobs.settings.clone();
    let redis = &config.redis;
    let jobs = match redis_target(config) {
        Some(target) => Jobs::on_redis(&target, &redis.key_prefix, redis.timeout, settings.clone())
            .unwrap_or_else(|error| {
                tracing::error!(%error, "Redis unusable: jobs are kept in process");
                Jobs::in_memory(settings)
            }),
        None => Jobs::in_memory(settings),
    };
    let edge = config.application.edge_purge.as_ref().and_then(|edge| {
        EdgePurge::new(edge.url.clone(), edge.token.clone())
            .inspect_err(
                |error| tracing::error!(%error, "EDGE_PURGE_URL: no HTTP client, edge purges off"),
            )
            .ok()
    });
    let cloudflare = config.jobs.cloudflare.as_ref().and_then(|target| {
        CloudflarePurge::new(
            &target.api_base,
            &target.zone_id,
            &target.token,
            PURGE_TIMEOUT,
        )
        .inspect_err(|error| tracing::error!(%error, "Cloudflare purges off"))
        .ok()
    });
    work::purge::register(&jobs, edge, cloudflare);
    work::housekeeping::register(&jobs);
    jobs
}

/// Bound on one recovery probe of the database.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Bound on one call to Cloudflare's purge API.
const PURGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The response cache `config` asks for: in-process, plus Redis when `REDIS_URL` is set,
/// handing refreshes and purges to `jobs`.
pub fn response_cache(
    config: &Config,
    breaker: &CircuitBreaker,
    metrics: &RedisMetrics,
    jobs: &Jobs,
) -> ResponseCache {
    let targets = PurgeTargets {
        edge: config.application.edge_purge.is_some(),
        cloudflare: config.jobs.cloudflare.is_some(),
    };
    let mut cache = TieredCache::new(config.cache.max_bytes)
        .with_background(Background::new(jobs.clone(), targets));
    let redis = &config.redis;
    if let Some(target) = redis_target(config) {
        match RedisTier::new(&target, &redis.key_prefix, redis.timeout) {
            Ok(tier) => {
                let tier = tier
                    .with_breaker(breaker.clone())
                    .with_metrics(metrics.clone());
                cache = cache.with_redis(tier);
            }
            Err(error) => {
                tracing::error!(%error, "Redis unusable: running on the in-process cache alone")
            }
        }
    }
    ResponseCache {
        cache,
        max_body: config.cache.max_body_bytes,
        tuning: Arc::new(CacheTuning {
            enabled: config.cache.enabled,
            ttl: config.cache.ttl,
            rule_ttls: Vec::new(),
            stale_while_revalidate: Some(config.cache.stale_while_revalidate),
        }),
        name: shared::cache_status::ORIGIN,
    }
}
