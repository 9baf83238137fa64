//! `edge-purge` jobs: an invalidation carried to the Worker's purge endpoint and to
//! Cloudflare's purge API, each target a job of its own, retried until it confirms (honouring
//! Cloudflare's `Retry-After`), dead-lettered when it refuses for good.

use serde::Deserialize;

use crate::core::cache::background::{PURGE_CLOUDFLARE, PURGE_EDGE};
use crate::core::dependencies::cloudflare_purge::{CloudflarePurge, PurgeRequest};
use crate::core::dependencies::edge_purge::EdgePurge;
use crate::core::jobs::{Job, JobError, Jobs};

#[derive(Deserialize)]
struct EdgePayload {
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    urls: Vec<String>,
}

/// Registers the purge handler of each configured target.
pub fn register(jobs: &Jobs, edge: Option<EdgePurge>, cloudflare: Option<CloudflarePurge>) {
    if let Some(edge) = edge {
        jobs.register(PURGE_EDGE, move |job: Job| {
            let edge = edge.clone();
            async move {
                let payload: EdgePayload = job.payload_as()?;
                edge.purge(&payload.tags, &payload.urls)
                    .await
                    .map_err(|error| match error.is_permanent() {
                        true => JobError::permanent(error.to_string()),
                        false => JobError::retry(error.to_string()),
                    })
            }
        });
    }
    if let Some(cloudflare) = cloudflare {
        let cloudflare = std::sync::Arc::new(cloudflare);
        jobs.register(PURGE_CLOUDFLARE, move |job: Job| {
            let cloudflare = std::sync::Arc::clone(&cloudflare);
            async move {
                let request: PurgeRequest = job.payload_as()?;
                match cloudflare.purge(&request).await {
                    Ok(report) => {
                        tracing::debug!(calls = report.calls, "Cloudflare purged");
                        Ok(())
                    }
                    Err(error) if error.is_permanent() => {
                        Err(JobError::permanent(error.to_string()))
                    }
                    Err(error) => {
                        Err(JobError::retry(error.to_string()).after(error.retry_after()))
                    }
                }
            }
        });
    }
}
