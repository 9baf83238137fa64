//! The application served out of the box: pages, static assets and health.

mod assets;
mod health;
mod pages;

use std::sync::Arc;
use std::time::Instant;

use axum::routing::get;
use axum::Router;

pub use assets::Assets;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// When the server started, for `uptime`.
    pub started: Instant,
    /// Content-hashed static assets.
    pub assets: Arc<Assets>,
}

impl AppState {
    /// Fresh state, started now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            assets: Arc::new(Assets::build()),
        }
    }
}

impl Default for AppState {
    fn default() -> Self {
        Self::new()
    }
}

/// The application's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/health", get(health::health))
        .route("/assets/{file}", get(assets::serve))
        .with_state(state)
}
