//! The application served out of the box: the task tracker's API, pages and static assets.

pub mod api;
mod assets;
pub mod crawler;
mod image_urls;
pub mod jobs;
pub mod model;
pub mod notifications;
pub mod outbox;
mod pages;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;

pub use assets::Assets;
pub use image_urls::ImageUrls;
use notifications::{EventType, Notifier};
use outbox::Outbox;
use store::{Outboxed, Store};

use crate::core::cache::TieredCache;
use crate::core::dependencies::outbound::HttpClient;
use crate::core::jobs::{Jobs, NewJob};
use crate::core::observability::telemetry;

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
    /// Makes webhook notifications of changes, when a webhook is configured.
    pub notifier: Option<Notifier>,
    /// Queues the jobs writes stored in their transactions.
    pub outbox: Outbox,
}

/// Where the application hands the work it does not do inside a request.
#[derive(Debug, Clone)]
pub struct Handoff {
    /// Background jobs: link fetches, clean-up, webhook deliveries.
    pub jobs: Jobs,
    /// Makes webhook notifications of changes, when a webhook is configured.
    pub notifier: Option<Notifier>,
    /// Queues the jobs writes stored in their transactions.
    pub outbox: Outbox,
}

impl AppState {
    /// State over `store`, invalidating `cache`, handing work over as `handoff` says, started
    /// now.
    pub fn new(
        store: Store,
        cache: TieredCache,
        uploads: UploadLimits,
        http: HttpClient,
        images: ImageUrls,
        handoff: Handoff,
    ) -> Self {
        let Handoff {
            jobs,
            notifier,
            outbox,
        } = handoff;
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
            outbox,
        }))
    }

    /// Drops every cached response carrying one of `tags`, on every origin instance.
    pub async fn invalidate(&self, tags: &[String]) {
        let dropped = self.cache.invalidate_tags(tags).await;
        tracing::debug!(?tags, dropped, "invalidated after a write");
    }

    /// What a write of `kind` hands on, as the store asks for it ([`store::Followups`]): from
    /// the data it wrote, the webhook notification (when a webhook is configured) and the
    /// purges that carry the invalidation of `tags` to the edge (where purges are configured).
    /// The jobs link to the span current here, the request's, not the store's query span.
    pub fn followups<'a, T: serde::Serialize>(
        &'a self,
        tags: &'a [String],
        kind: EventType,
    ) -> impl Fn(&T) -> Vec<NewJob> + Send + Sync + 'a {
        let trace = telemetry::current_traceparent();
        move |data: &T| {
            let mut jobs: Vec<NewJob> = self
                .notifier
                .as_ref()
                .and_then(|notifier| notifier.job(kind, data))
                .into_iter()
                .collect();
            jobs.extend(self.cache.purge_jobs(tags));
            for job in &mut jobs {
                job.trace.clone_from(&trace);
            }
            jobs
        }
    }

    /// What follows a committed write: the cached responses carrying `tags` dropped on every
    /// instance, then the jobs it stored in its `outbox` row queued, without waiting (the row
    /// keeps them until they are).
    pub async fn after_write(&self, tags: &[String], outbox: Option<Outboxed>) {
        let dropped = self.cache.invalidate_tags_purged_by_caller(tags).await;
        tracing::debug!(?tags, dropped, "invalidated after a write");
        self.outbox.relay(outbox);
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
