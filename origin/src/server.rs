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
}

impl Core {
    /// The core `config` describes, with the embedded policy.
    pub fn from_config(config: &Config) -> Self {
        let cache = response_cache(config);
        Self {
            policy: Arc::new(Policy::default()),
            metrics: metrics::Metrics::new(Some(cache.cache.clone())),
            cache,
            admin_token: config.admin_token.as_deref().map(Arc::from),
        }
    }

    /// `app` with the core's routes and layers. Layers are listed innermost first: a request
    /// passes them from the bottom of this function to the top.
    pub fn wrap(self, app: Router) -> Router {
        let admin = admin::AdminState {
            cache: self.cache.cache.clone(),
            token: self.admin_token,
        };
        app.merge(admin::router(admin))
            .route(
                "/metrics",
                get(metrics::endpoint).with_state(self.metrics.clone()),
            )
            .fallback(errors::route_not_found)
            // Cacheable reads answered from the two-level cache, skipping the handler.
            .layer(middleware::from_fn_with_state(
                self.cache,
                response_cache::serve,
            ))
            // Cache-Control, Cache-Tag and security headers from the shared policy.
            .layer(middleware::from_fn_with_state(
                self.policy,
                policy_headers::apply,
            ))
            // Request count and latency per route template.
            .layer(middleware::from_fn_with_state(
                self.metrics,
                metrics::record,
            ))
            // One span per request, with method, path and status.
            .layer(TraceLayer::new_for_http())
    }
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
    let router = Core::from_config(&config).wrap(app::router(AppState::new()));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
