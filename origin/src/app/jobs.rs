//! The application's background jobs, and the handlers that run them:
//!
//! | queue | kind | what it does |
//! | --- | --- | --- |
//! | crawler | `fetch-link` | titles a link from its page ([`crate::app::crawler`]) |
//! | cleanup | `audit-retention` | deletes audit-log entries older than `AUDIT_RETENTION_DAYS` (none when 0) |
//! | cleanup | `expired-uploads` | deletes stored images that no task refers to any more, a day after they were stored |
//! | notifications | `webhook` | delivers a change to `WEBHOOK_URL`, signed ([`crate::app::notifications`]) |
//!
//! Clean-up deletes in batches of [`RETENTION_BATCH`] rows (see [`crate::app::store`]); the
//! scheduler enqueues [`cleanup_jobs`] nightly. A webhook's failure is classified by
//! [`Webhook`]: refused for good dead-letters the delivery, anything else is retried, no sooner
//! than the receiver's `Retry-After`.

use std::time::Duration;

use serde_json::json;

use super::crawler::{self, FETCH_LINK_JOB};
use super::model::now_ms;
use super::notifications::WEBHOOK_JOB;
use super::store::{Store, RETENTION_BATCH};
use super::AppState;
use crate::config::JobsConfig;
use crate::core::dependencies::webhook::{Webhook, WebhookError};
use crate::core::jobs::{Job, JobError, Jobs, NewJob, Queue};

/// The kind of the audit-log retention job.
pub const AUDIT_RETENTION_JOB: &str = "audit-retention";
/// The kind of the job deleting images no task refers to.
pub const EXPIRED_UPLOADS_JOB: &str = "expired-uploads";
/// How long an image no task refers to is kept: an upload is never deleted while it is new.
pub const UPLOAD_GRACE: Duration = Duration::from_secs(86_400);
/// Bound on one webhook delivery.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// One day, in milliseconds.
const DAY_MS: i64 = 86_400_000;

/// Registers the application's handlers on `jobs`: the crawler and clean-up always, webhook
/// deliveries when `webhook` is configured.
pub fn register(
    jobs: &Jobs,
    state: &AppState,
    audit_retention_days: u32,
    webhook: Option<Webhook>,
) {
    let max_attempts = jobs.settings().retry.attempts;
    let crawling = state.clone();
    jobs.register(FETCH_LINK_JOB, move |job: Job| {
        crawler::fetch_link(crawling.clone(), job, max_attempts)
    });
    let store = state.store.clone();
    jobs.register(AUDIT_RETENTION_JOB, move |_job: Job| {
        audit_retention(store.clone(), audit_retention_days)
    });
    let store = state.store.clone();
    jobs.register(EXPIRED_UPLOADS_JOB, move |_job: Job| {
        expired_uploads(store.clone())
    });
    if let Some(webhook) = webhook {
        jobs.register(WEBHOOK_JOB, move |job: Job| deliver(webhook.clone(), job));
    }
}

/// The webhook `config` names, if any (a client that cannot be built is logged and left out).
pub fn webhook_of(config: &JobsConfig) -> Option<Webhook> {
    let target = config.webhook.as_ref()?;
    match Webhook::new(&target.url, &target.secret, WEBHOOK_TIMEOUT) {
        Ok(webhook) => Some(webhook),
        Err(error) => {
            tracing::error!(%error, "webhook deliveries disabled");
            None
        }
    }
}

/// The clean-up jobs, each deduplicated while it waits, for the nightly schedule.
pub fn cleanup_jobs() -> Vec<NewJob> {
    [AUDIT_RETENTION_JOB, EXPIRED_UPLOADS_JOB]
        .into_iter()
        .map(|kind| {
            NewJob::new(Queue::Cleanup, kind, json!({})).with_key(format!("cleanup:{kind}"))
        })
        .collect()
}

/// A failed clean-up is tried again later.
fn store_failure(error: super::store::StoreError) -> JobError {
    JobError::retry(error.to_string())
}

/// Deletes the audit-log entries older than `days` days; none when `days` is 0.
async fn audit_retention(store: Store, days: u32) -> Result<(), JobError> {
    if days == 0 {
        tracing::info!("audit log kept forever (AUDIT_RETENTION_DAYS=0): nothing deleted");
        return Ok(());
    }
    let cutoff = now_ms() - i64::from(days) * DAY_MS;
    let deleted = store
        .delete_events_before(cutoff, RETENTION_BATCH)
        .await
        .map_err(store_failure)?;
    tracing::info!(deleted, days, "audit-log entries past retention deleted");
    Ok(())
}

/// Deletes the images no task refers to, stored more than [`UPLOAD_GRACE`] ago.
async fn expired_uploads(store: Store) -> Result<(), JobError> {
    let grace = i64::try_from(UPLOAD_GRACE.as_millis()).unwrap_or(DAY_MS);
    let deleted = store
        .delete_unreferenced_images(now_ms() - grace, RETENTION_BATCH)
        .await
        .map_err(store_failure)?;
    tracing::info!(deleted, "images no task refers to deleted");
    Ok(())
}

/// Delivers a `webhook` job's event: its payload, as sent, under its `id`.
async fn deliver(webhook: Webhook, job: Job) -> Result<(), JobError> {
    let Some(id) = job.payload.get("id").and_then(|id| id.as_str()) else {
        return Err(JobError::permanent("the event has no id"));
    };
    let body = serde_json::to_vec(&job.payload)
        .map_err(|error| JobError::permanent(format!("the event cannot be sent: {error}")))?;
    let status = webhook
        .deliver(id, &body)
        .await
        .map_err(|e| job_error(&e))?;
    tracing::debug!(
        event = id,
        status,
        attempts = job.attempts,
        "webhook delivered"
    );
    Ok(())
}

/// The job failure a delivery failure stands for.
pub fn job_error(error: &WebhookError) -> JobError {
    if error.is_permanent() {
        JobError::permanent(error.to_string())
    } else {
        JobError::retry(error.to_string()).after(error.retry_after())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_jobs_are_one_per_kind_on_the_cleanup_queue() {
        let jobs = cleanup_jobs();
        let kinds: Vec<&str> = jobs.iter().map(|job| job.kind.as_str()).collect();
        assert_eq!(kinds, ["audit-retention", "expired-uploads"]);
        assert!(jobs.iter().all(|job| job.queue == Queue::Cleanup));
        assert_eq!(jobs[0].key.as_deref(), Some("cleanup:audit-retention"));
    }

    #[test]
    fn refused_deliveries_are_permanent_and_others_retried_after_their_delay() {
        let refused = WebhookError::Refused {
            status: 410,
            excerpt: "gone".into(),
        };
        assert!(job_error(&refused).permanent);
        let busy = WebhookError::Unavailable {
            status: 503,
            retry_after: Some(Duration::from_secs(7)),
            excerpt: String::new(),
        };
        let error = job_error(&busy);
        assert!(!error.permanent);
        assert_eq!(error.retry_after, Some(Duration::from_secs(7)));
        let lost = job_error(&WebhookError::Transport("timed out".into()));
        assert_eq!((lost.permanent, lost.retry_after), (false, None));
    }
}
