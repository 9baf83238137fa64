//! Assembles the origin and serves it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use shared::security::DRAINING_HEADER;
use tokio::net::TcpListener;

use crate::app::notifications::Notifier;
use crate::app::outbox::Outbox;
use crate::app::store::seed::SeedSize;
use crate::app::store::{NewEvent, Store, StoreError};
use crate::app::{self, AppState, Handoff, ImageUrls};
use crate::config::{Config, ConfigError, DatabaseConfig, DemoData, ListenerConfig};
use crate::core::dependencies::database::{Database, DbError};
use crate::core::endpoints;
use crate::core::endpoints::admin::{AuditRecord, Auditor};
use crate::core::jobs::schedule::{self, Schedule};
use crate::core::jobs::work::{self, housekeeping};
use crate::core::jobs::NewJob;
use crate::core::observability::metrics::Metrics;
use crate::core::serving::listener::{self, Drained};
use crate::core::stack::Core;

/// Why the origin could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened, migrated or seeded.
    #[error("database: {0}")]
    Database(#[from] DbError),
    /// The demo data could not be written.
    #[error("demo data: {0}")]
    Seed(#[from] StoreError),
    /// The configuration holds a value its variable does not accept.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The shield's connections to its upstreams could not be set up.
    #[error("upstream connections: {0}")]
    Upstream(#[from] crate::shield::connector::ConnectorError),
    /// Serving failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens, migrates and (when empty) seeds the database `config` names.
pub async fn open_store(config: &DatabaseConfig, metrics: &Metrics) -> Result<Store, ServeError> {
    let db = Database::connect(&config.settings(), metrics.database()).await?;
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
pub(crate) async fn spawn_metrics_listener(
    addr: std::net::SocketAddr,
    metrics: Metrics,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(addr).await?;
    let router = Router::new().route(
        "/metrics",
        get(endpoints::metrics::endpoint).with_state(metrics),
    );
    tracing::info!(%addr, "metrics listener");
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "metrics listener failed");
        }
    });
    Ok(())
}

/// `app` behind `core`, with the core's own routes beside it; or, with `ADMIN_ADDR`, without
/// them, which a listener of their own on that address then serves for the life of the
/// process (it goes on answering readiness, `503` while the main listener drains).
pub(crate) async fn with_endpoints(
    core: Core,
    app: Router,
    config: &ListenerConfig,
) -> Result<(crate::core::stack::Stack, AdminListener), ServeError> {
    let Some(addr) = config.admin_addr else {
        return Ok((core.stack(app), AdminListener(None)));
    };
    let admin = TcpListener::bind(addr).await?;
    let endpoints = core.clone().endpoints_stack();
    tracing::info!(%addr, "admin listener: health, metrics, the status page, the admin API");
    let serving = tokio::spawn(listener::serve(
        admin,
        endpoints,
        config.connection_limits(),
        listener::OpenConnections::default(),
        std::future::pending(),
    ));
    Ok((core.application_stack(app), AdminListener(Some(serving))))
}

/// The `ADMIN_ADDR` listener, closed when dropped (once the main listener has drained).
pub(crate) struct AdminListener(Option<tokio::task::JoinHandle<Drained>>);

impl Drop for AdminListener {
    fn drop(&mut self) {
        if let Some(serving) = self.0.take() {
            serving.abort();
        }
    }
}

/// Serves on `listener` until `shutdown` completes, then drains in-flight requests. A
/// configuration built in code is checked as one read from the environment is.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.validate()?;
    let application = &config.application;
    let comments_ttl = application.comments_cache_ttl;
    let core = Core::from_config(&config).with_rule_ttls(app::cache_rule_ttls(comments_ttl));
    let store = open_store(&config.database, &core.metrics).await?;
    let core = core.with_database(store.database().clone());
    let guarded = core
        .database
        .clone()
        .unwrap_or_else(|| store.database().clone());
    let store = store.with_database(guarded);
    core.start_recovery_probes();
    let http = core.http_client(config.resilience.outbound);
    if let Some(addr) = config.listener.metrics_addr {
        spawn_metrics_listener(addr, core.metrics.clone()).await?;
    }
    let (connections, draining) = (core.connections.clone(), Arc::clone(&core.draining));
    let database = store.database().clone();
    let images = ImageUrls::new(application.image_signing_key.clone());
    let uploads = application.uploads;
    let jobs = core.jobs.clone();
    let core = core.with_audit(auditor(store.clone()));
    let webhook = app::jobs::webhook_of(&config.jobs);
    let notifier = webhook.is_some().then_some(Notifier);
    let cache = core.cache.cache.clone();
    let (outbox, relay) = Outbox::start(store.clone(), jobs.clone());
    let handoff = Handoff {
        jobs: jobs.clone(),
        notifier,
        outbox,
    };
    let state = AppState::new(store, cache, uploads, http, images, handoff);
    app::jobs::register(&jobs, &state, config.jobs.audit_retention_days, webhook);
    let (stack, _admin) = with_endpoints(core, app::router(state), &config.listener).await?;
    let host = config
        .cache
        .warm_host
        .clone()
        .or_else(|| listener.local_addr().ok().map(|addr| addr.to_string()))
        .unwrap_or_else(|| "localhost".to_owned());
    let workers = Core::start_jobs(&jobs, stack.clone(), schedules(&config, &host));
    if config.cache.enabled && !config.cache.warm_paths.is_empty() {
        let warm = work::refresh::warm_job(&host, &config.cache.warm_paths);
        if let Err(error) = jobs.enqueue(warm).await {
            tracing::warn!(%error, "cache warm-up not enqueued");
        }
    }
    let serving = Serving {
        listener,
        connections,
        draining,
    };
    serving.serve(stack, &config.listener, shutdown).await;
    // The last writes' jobs are queued (bounded; what is left waits in the outbox), then jobs
    // running finish (bounded); the rest wait in the store for the next instance.
    relay.stop(Duration::from_secs(5)).await;
    workers.stop(Duration::from_secs(10)).await;
    // Give the connections back to the database cleanly; requests left running after the
    // shutdown timeout may still hold one, so this wait is bounded too.
    let _ = tokio::time::timeout(Duration::from_secs(5), database.close()).await;
    Ok(())
}

/// What the listener serves with: the socket, the open connections and the draining flag.
pub(crate) struct Serving {
    /// The bound socket.
    pub listener: TcpListener,
    /// Open client connections.
    pub connections: listener::OpenConnections,
    /// Set once a shutdown signal arrived.
    pub draining: Arc<AtomicBool>,
}

impl Serving {
    /// Serves `stack` until `shutdown` completes, announcing the drain for `SHUTDOWN_DELAY_MS`
    /// before closing the listener, then waits (bounded) for in-flight requests.
    pub async fn serve(
        self,
        stack: crate::core::stack::Stack,
        config: &ListenerConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let Self {
            listener,
            connections,
            draining,
        } = self;
        let delay = config.shutdown_delay;
        let announce = Arc::clone(&draining);
        let shutdown = async move {
            shutdown.await;
            draining.store(true, Ordering::Relaxed);
            if !delay.is_zero() {
                tracing::info!(
                    ?delay,
                    "draining: still answering, announcing it, before closing"
                );
                tokio::time::sleep(delay).await;
            }
        };
        let drained = listener::serve(
            listener,
            tower::util::MapResponse::new(stack, move |response| {
                announce_drain(&announce, response)
            }),
            config.connection_limits(),
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
    }
}

/// The scheduled jobs `config` asks for: warm-ups of the hot paths (on `host`), retention, and
/// the dead-letter report.
fn schedules(config: &Config, host: &str) -> Vec<Schedule> {
    let mut warm = Vec::new();
    if config.cache.enabled && !config.cache.warm_paths.is_empty() {
        warm.push(work::refresh::warm_job(host, &config.cache.warm_paths));
    }
    let mut cleanup = vec![housekeeping::trim_job()];
    cleanup.extend(app::jobs::cleanup_jobs());
    let plans: [(&'static str, &Option<String>, Vec<NewJob>); 3] = [
        ("warm-up", &config.jobs.warm_schedule, warm),
        ("cleanup", &config.jobs.cleanup_schedule, cleanup),
        (
            "dead-letter-report",
            &config.jobs.dead_report_schedule,
            vec![housekeeping::dead_report_job()],
        ),
    ];
    plans
        .into_iter()
        .filter(|(_, _, jobs)| !jobs.is_empty())
        .filter_map(|(name, expression, jobs)| {
            let cron = schedule::parse(expression.as_deref()?).ok()?;
            Some(Schedule { name, cron, jobs })
        })
        .collect()
}

/// Admin actions written to the audit log (`actor: admin`).
fn auditor(store: Store) -> Auditor {
    Auditor::new(move |record: AuditRecord| {
        let store = store.clone();
        Box::pin(async move {
            let entity = record.action.split('.').next().unwrap_or("admin");
            let event = NewEvent::about("admin", record.action, entity, record.target)
                .with_data(record.data);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let outcome = store.insert_events(&[(0, event)], now).await;
            if outcome.inserted == 0 {
                tracing::error!("admin action not written to the audit log");
            }
        })
    })
}

/// Marks `response` while the origin drains: `Rampart-Draining: 1` (the edge sends new
/// requests to other origins) and `Connection: close` (clients open their next connection
/// elsewhere, or find it closed and go elsewhere).
fn announce_drain(draining: &AtomicBool, mut response: Response) -> Response {
    if draining.load(Ordering::Relaxed) {
        let headers = response.headers_mut();
        headers.insert(DRAINING_HEADER, HeaderValue::from_static("1"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
