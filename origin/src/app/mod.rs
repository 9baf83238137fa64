//! The application served out of the box: the task tracker's API, pages and static assets.

pub mod api;
mod assets;
pub mod crawler;
mod image_urls;
pub mod jobs;
pub mod model;
pub mod notifications;
mod pages;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;

pub use assets::Assets;
pub use image_urls::ImageUrls;
use notifications::{EventType, Notifier};
use store::Store;

use crate::core::cache::TieredCache;
use crate::core::dependencies::outbound::HttpClient;
use crate::core::jobs::Jobs;

/// How long the origin keeps the application's responses fresh, per policy rule, where it
/// differs from what the policy tells the edge and browsers: a task's comments change often
/// and are read often, so the origin keeps them `COMMENTS_CACHE_TTL` seconds.
pub fn cache_rule_ttls(comments_ttl: Duration) -> Vec<(String, Duration)> {
    vec![("task-comments".to_owned(), comments_ttl)]
}

/// Bounds on uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// Largest image, in bytes.
    pub max_bytes: usize,
    /// Most pixels (width × height).
    pub max_pixels: u64,
}

/// What handlers share; cheap to clone (axum clones it for every request).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// When the server started, for `uptime`.
    pub started: Instant,
    /// Content-hashed static assets.
    pub assets: Arc<Assets>,
    /// The tables.
    pub store: Store,
    /// The response cache, for invalidation after writes.
    pub cache: TieredCache,
    /// Bounds on image uploads.
    pub uploads: UploadLimits,
    /// Outbound HTTP, for link previews.
    pub http: HttpClient,
    /// How pages address resized images.
    pub images: ImageUrls,
    /// Background jobs: link fetches, clean-up, webhook deliveries.
    pub jobs: Jobs,
    /// Enqueues webhook notifications of changes, when a webhook is configured.
    pub notifier: Option<Notifier>,
}

impl AppState {
    /// State over `store`, invalidating `cache`, handing work to `jobs`, started now.
    pub fn new(
        store: Store,
        cache: TieredCache,
        uploads: UploadLimits,
        http: HttpClient,
        images: ImageUrls,
        jobs: Jobs,
        notifier: Option<Notifier>,
    ) -> Self {
        Self(Arc::new(Shared {
            started: Instant::now(),
            assets: Arc::new(Assets::build()),
            store,
            cache,
            uploads,
            http,
            images,
            jobs,
            notifier,
        }))
    }

    /// Drops every cached response carrying one of `tags`, on every origin instance.
    pub async fn invalidate(&self, tags: &[String]) {
        let dropped = self.cache.invalidate_tags(tags).await;
        tracing::debug!(?tags, dropped, "invalidated after a write");
    }

    /// What follows a committed write: the cached responses carrying `tags` dropped, and the
    /// webhook notification of `kind` about `data` (if a webhook is configured) enqueued with
    /// the invalidation's purges, in one call to the job store. A refusal is logged, never
    /// returned: the write stands.
    pub async fn after_write(
        &self,
        tags: &[String],
        kind: EventType,
        data: &impl serde::Serialize,
    ) {
        let Some(notifier) = &self.notifier else {
            return self.invalidate(tags).await;
        };
        let jobs: Vec<_> = notifier.job(kind, data).into_iter().collect();
        match self
            .cache
            .invalidate_tags_with(tags, jobs, notifier.jobs())
            .await
        {
            Ok(dropped) => tracing::debug!(?tags, dropped, "invalidated after a write"),
            Err(jobs) => {
                tokio::join!(self.invalidate(tags), notifier.enqueue(&jobs));
            }
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The application's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/tasks/{id}", get(pages::task))
        .route("/assets/{file}", get(assets::serve))
        .merge(api::router())
        .with_state(state)
}
