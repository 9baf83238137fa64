//! Assembles the origin and serves it.

use std::future::Future;
use std::sync::Arc;

use axum::routing::get;
use axum::{middleware, Router};
use shared::policy::Policy;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::app::{self, AppState};
use crate::config::Config;
use crate::core::cache::{RedisTier, TieredCache};
use crate::core::response_cache::{self, ResponseCache};
use crate::core::{admin, errors, metrics, policy_headers};

/// The whole origin as one router, outermost layer last (axum applies `.layer` bottom-up, so
/// requests pass through them from the bottom of this function to the top).
pub fn router(
    state: AppState,
    policy: Arc<Policy>,
    metrics: metrics::Metrics,
    cache: ResponseCache,
    admin_token: Option<Arc<str>>,
) -> Router {
    let admin = admin::AdminState {
        cache: cache.cache.clone(),
        token: admin_token,
    };
    app::router(state)
        .merge(admin::router(admin))
        .route(
            "/metrics",
            get(metrics::endpoint).with_state(metrics.clone()),
        )
        .fallback(errors::route_not_found)
        // Cacheable reads answered from the two-level cache, skipping the handler.
        .layer(middleware::from_fn_with_state(cache, response_cache::serve))
        // Cache-Control, Cache-Tag and security headers from the shared policy.
        .layer(middleware::from_fn_with_state(
            policy,
            policy_headers::apply,
        ))
        // Request count and latency per route template.
        .layer(middleware::from_fn_with_state(metrics, metrics::record))
        // One span per request, with method, path and status.
        .layer(TraceLayer::new_for_http())
}

/// The response cache `config` asks for: in-process, plus Redis when `REDIS_URL` is set.
pub fn response_cache(config: &Config) -> ResponseCache {
    let mut cache = TieredCache::new(config.cache_max_bytes);
    if let Some(url) = &config.redis_url {
        let timeout = std::time::Duration::from_millis(config.redis_timeout_ms);
        match RedisTier::new(url, &config.redis_key_prefix, timeout) {
            Ok(tier) => cache = cache.with_redis(tier),
            Err(error) => {
                tracing::error!(%error, "REDIS_URL is invalid: running on the in-process cache alone")
            }
        }
    }
    ResponseCache {
        cache,
        max_body: usize::try_from(config.cache_max_body_bytes).unwrap_or(usize::MAX),
    }
}

/// Serves on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cache = response_cache(&config);
    let router = router(
        AppState::new(),
        Arc::new(Policy::default()),
        metrics::Metrics::new(Some(cache.cache.clone())),
        cache,
        config.admin_token.as_deref().map(Arc::from),
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
