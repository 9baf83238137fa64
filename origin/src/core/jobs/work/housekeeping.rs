//! `cleanup` jobs of the job system itself: finished jobs trimmed to what `JOBS_KEEP_SECONDS`
//! and `JOBS_KEEP_COUNT` allow, and the dead-letter report, a warning per queue holding dead
//! jobs, naming the most recent and why they died.

use serde_json::json;

use crate::core::jobs::{Job, JobError, Jobs, NewJob, Queue};

/// The job kind that trims finished jobs of every queue.
pub const TRIM_JOBS: &str = "trim-jobs";
/// The job kind that reports dead letters.
pub const DEAD_REPORT: &str = "dead-letter-report";

/// The trimming job.
pub fn trim_job() -> NewJob {
    NewJob::new(Queue::Cleanup, TRIM_JOBS, json!({}))
}

/// The dead-letter report job.
pub fn dead_report_job() -> NewJob {
    NewJob::new(Queue::Cleanup, DEAD_REPORT, json!({}))
}

/// Registers both handlers.
pub fn register(jobs: &Jobs) {
    let handle = jobs.clone();
    jobs.register(TRIM_JOBS, move |_job: Job| {
        let jobs = handle.clone();
        async move {
            let retention = jobs.settings().retention;
            let mut trimmed = 0;
            for queue in Queue::ALL {
                trimmed += jobs
                    .store()
                    .trim(queue, retention)
                    .await
                    .map_err(|error| JobError::retry(error.to_string()))?;
            }
            tracing::info!(trimmed, "finished jobs trimmed");
            Ok(())
        }
    });
    let handle = jobs.clone();
    jobs.register(DEAD_REPORT, move |_job: Job| {
        let jobs = handle.clone();
        async move { report_dead(&jobs).await }
    });
}

async fn report_dead(jobs: &Jobs) -> Result<(), JobError> {
    let retry = |error: crate::core::jobs::StoreError| JobError::retry(error.to_string());
    for (queue, counts) in jobs.overview().await.map_err(retry)? {
        if counts.dead == 0 {
            continue;
        }
        let recent = jobs.store().dead(queue, 5).await.map_err(retry)?;
        let examples: Vec<String> = recent
            .iter()
            .map(|job| {
                let error = job.last_error.as_deref().unwrap_or("unknown");
                format!("{} ({}): {error}", job.id, job.kind)
            })
            .collect();
        tracing::warn!(%queue, dead = counts.dead, recent = ?examples, "dead letters waiting: list them at GET /api/admin/jobs/{queue}/dead");
    }
    Ok(())
}
