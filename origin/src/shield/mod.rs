//! Shield mode: the origin as a reverse proxy in front of any HTTP application
//! (`origin shield --upstream http://127.0.0.1:3000`, or `UPSTREAM_URL`).
//!
//! The same core stack as the origin's own application (rate limits, admission and load
//! shedding, metrics, health, status page, traces, graceful shutdown) runs with a proxying
//! service where the application's router would be. The shield's policy names only its own
//! routes (`/health/*`, `/metrics`, `/status`, `/api/admin/*`, `/api/cache/*`); every other
//! request goes upstream, its response headers kept as the upstream sent them, and its
//! response cached as those headers say (RFC 9111, through
//! [`crate::core::layers::response_freshness`]).
//!
//! | where | what |
//! | --- | --- |
//! | [`upstreams`] | the upstreams, how one is picked, which are out of the running |
//! | [`proxy`] | the proxying service: pooled connections, streamed bodies, timeouts per phase, retries |
//! | [`bodies`] | bodies watched on their way: idle timeouts, end of upload, requests in flight |
//! | [`hygiene`] | hop-by-hop fields, `Forwarded`/`X-Forwarded-*`, `Via` |
//! | [`connector`] | TCP and TLS to the upstreams |
//! | [`tunnel`] | upgraded connections (WebSocket) |
//! | [`health_checks`] | the active health checks |

pub mod bodies;
pub mod connector;
pub mod health_checks;
pub mod hygiene;
pub mod proxy;
pub mod tunnel;
pub mod upstreams;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::core::dependencies::retry::RetryBudget;
use crate::core::stack::Core;
use crate::server::{ServeError, Serving};
use proxy::Proxy;
use upstreams::Upstreams;

/// Serves `config`'s upstreams through the core on `listener` until `shutdown` completes,
/// then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.validate()?;
    let upstreams = Upstreams::new(&config.shield, config.resilience.breakers);
    let breakers = upstreams.all().iter().map(|u| u.breaker.clone()).collect();
    let core = Core::from_config(&config).for_shield(breakers, config.shield.policy.clone());
    core.start_recovery_probes();
    if let Some(addr) = config.listener.metrics_addr {
        crate::server::spawn_metrics_listener(addr, core.metrics.clone()).await?;
    }
    let checks = health_checks::spawn(Arc::clone(&upstreams), &config.shield)?;
    let budget = RetryBudget::new(core.retry_budget_ratio, 3);
    let invalidation = proxy::Invalidation {
        cache: core.cache.cache.clone(),
        keys: core.policy.keys().clone(),
    };
    let proxy = Proxy::new(
        Arc::clone(&upstreams),
        &config.shield,
        core.trust.clone(),
        budget,
        Some(invalidation),
        connector::connector(&config.shield)?,
    );
    let serving = Serving {
        listener,
        connections: core.connections.clone(),
        draining: Arc::clone(&core.draining),
    };
    let jobs = core.jobs.clone();
    // Every path the core does not serve itself is the upstream's (static routes win).
    let application = Router::new()
        .route_service("/", proxy.clone())
        .route_service("/{*path}", proxy);
    let (stack, _admin) =
        crate::server::with_endpoints(core, application, &config.listener).await?;
    let workers = Core::start_jobs(&jobs, stack.clone(), Vec::new());
    tracing::info!(
        upstreams = %config
            .shield
            .upstreams
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        "shield mode"
    );
    serving.serve(stack, &config.listener, shutdown).await;
    if let Some(checks) = checks {
        checks.abort();
    }
    workers.stop(Duration::from_secs(10)).await;
    Ok(())
}
