//! What the cache hands to the job system: refreshes of stale entries, re-warms of hot entries
//! an invalidation dropped, and the purges that carry an invalidation to the edge and to
//! Cloudflare. The request path never waits for a refresh to be enqueued; an invalidation waits
//! for its purges to be stored, so that a purge is never lost once it has answered, unless
//! its caller stored them already (a write keeps them in its transaction's outbox).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::json;
use tokio::time::{Duration, Instant};

use crate::core::jobs::{Jobs, NewJob, Queue};

/// The job kind that loads one cache key again.
pub const REFRESH: &str = "refresh";
/// The job kind that loads a list of paths.
pub const WARM: &str = "warm";
/// The job kind that purges tags and URLs at the edge's purge endpoint.
pub const PURGE_EDGE: &str = "purge-edge";
/// The job kind that purges tags and URLs through Cloudflare's API.
pub const PURGE_CLOUDFLARE: &str = "purge-cloudflare";
/// An invalidated entry hit this often on this instance is loaded again at once.
pub const HOT_HITS: u32 = 2;
/// A stale key's refresh is not enqueued again from this instance within this time.
const REFRESH_QUIET: Duration = Duration::from_secs(5);

/// Where invalidations are purged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeTargets {
    /// The Worker's purge endpoint (`EDGE_PURGE_URL`).
    pub edge: bool,
    /// Cloudflare's purge API (`CLOUDFLARE_ZONE_ID`).
    pub cloudflare: bool,
}

/// Who enqueues an invalidation's purges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purges {
    /// The invalidation does, and waits until they are stored.
    Enqueue,
    /// The caller does: it stored them with its write (an outbox) and queues them after.
    Caller,
}

/// The cache's link to the job system.
#[derive(Debug)]
pub struct Background {
    jobs: Jobs,
    targets: PurgeTargets,
    /// Keys whose refresh this instance enqueued lately.
    recent: Mutex<HashMap<String, Instant>>,
}

impl Background {
    /// Refreshes and purges through `jobs`, purging at `targets`.
    pub fn new(jobs: Jobs, targets: PurgeTargets) -> Self {
        Self {
            jobs,
            targets,
            recent: Mutex::default(),
        }
    }

    /// Whether a job can load `key` again (a key that names more than its URL, such as a
    /// variant's, is refreshed by the instance that holds the request).
    pub fn can_refresh(&self, key: &str) -> bool {
        url_of(key).is_some()
    }

    /// Enqueues a refresh of `key` unless this instance did so moments ago; returns at once,
    /// `true` when it enqueued.
    pub fn refresh_later(&self, key: &str) -> bool {
        let now = Instant::now();
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent
                .get(key)
                .is_some_and(|at| now.duration_since(*at) < REFRESH_QUIET)
            {
                return false;
            }
            if recent.len() > 10_000 {
                recent.retain(|_, at| now.duration_since(*at) < REFRESH_QUIET);
            }
            recent.insert(key.to_owned(), now);
        }
        self.jobs.enqueue_in_background(vec![refresh_job(key)]);
        true
    }

    /// Enqueues the purges of an invalidation of `tags` and `keys` (unless the caller stored
    /// them) and the reloads of the `hot` keys it dropped. Purges are waited for, so that one
    /// is never lost once the invalidation has answered; reloads alone are not (a lost one
    /// only costs a miss).
    pub async fn after_invalidation(
        &self,
        tags: &[String],
        keys: &[String],
        hot: &[String],
        purges: Purges,
    ) {
        let mut jobs: Vec<_> = hot
            .iter()
            .filter(|key| self.can_refresh(key))
            .map(|key| refresh_job(key))
            .collect();
        if purges == Purges::Caller {
            if !jobs.is_empty() {
                self.jobs.enqueue_in_background(jobs);
            }
            return;
        }
        jobs.extend(self.purge_jobs(tags, keys));
        if let Err(error) = self.jobs.enqueue_all(&jobs).await {
            tracing::error!(%error, ?tags, "an invalidation's purges and re-warms not enqueued");
        }
    }

    /// The purge jobs of an invalidation of `tags` and `keys` at this cache's targets.
    pub fn purge_jobs(&self, tags: &[String], keys: &[String]) -> Vec<NewJob> {
        purge_jobs(self.targets, tags, keys)
    }

    /// Enqueues a purge of everything at every target.
    pub async fn purge_everything(&self) -> Result<(), crate::core::jobs::StoreError> {
        let mut jobs = Vec::new();
        if self.targets.cloudflare {
            jobs.push(NewJob::new(
                Queue::EdgePurge,
                PURGE_CLOUDFLARE,
                json!({ "everything": true }),
            ));
        }
        self.jobs.enqueue_all(&jobs).await.map(drop)
    }

    /// The job system.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }
}

/// The job that loads `key` again.
pub fn refresh_job(key: &str) -> NewJob {
    NewJob::new(Queue::CacheRefresh, REFRESH, json!({ "key": key }))
        .with_key(format!("refresh:{key}"))
}

/// The URL a cache key (`GET https://host/path?query`) stands for; `None` for a key that
/// names more than a URL (a variant's key adds the request headers it was selected by).
pub fn url_of(key: &str) -> Option<&str> {
    key.split_once(' ')
        .map(|(_, url)| url)
        .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
        .filter(|url| !url.contains(' '))
}

/// The purge jobs for an invalidation of `tags` and `keys` at `targets`.
pub fn purge_jobs(targets: PurgeTargets, tags: &[String], keys: &[String]) -> Vec<NewJob> {
    let urls: Vec<&str> = keys.iter().filter_map(|key| url_of(key)).collect();
    if tags.is_empty() && urls.is_empty() {
        return Vec::new();
    }
    let mut jobs = Vec::new();
    if targets.edge {
        jobs.push(NewJob::new(
            Queue::EdgePurge,
            PURGE_EDGE,
            json!({ "tags": tags, "urls": urls }),
        ));
    }
    if targets.cloudflare {
        jobs.push(NewJob::new(
            Queue::EdgePurge,
            PURGE_CLOUDFLARE,
            json!({ "tags": tags, "files": urls }),
        ));
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purges_go_to_each_configured_target_with_the_keys_as_urls() {
        let both = PurgeTargets {
            edge: true,
            cloudflare: true,
        };
        let jobs = purge_jobs(
            both,
            &["task:1".to_owned()],
            &["GET https://app.example/api/tasks/1".to_owned()],
        );
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].kind, PURGE_EDGE);
        assert_eq!(
            jobs[0].payload.value(),
            json!({"tags": ["task:1"], "urls": ["https://app.example/api/tasks/1"]})
        );
        assert_eq!(
            jobs[1].payload.value(),
            json!({"tags": ["task:1"], "files": ["https://app.example/api/tasks/1"]})
        );
        assert!(purge_jobs(PurgeTargets::default(), &["t".to_owned()], &[]).is_empty());
        assert!(purge_jobs(both, &[], &[]).is_empty());
    }

    #[test]
    fn a_refresh_is_keyed_by_its_cache_key() {
        let job = refresh_job("GET https://a/b");
        assert_eq!(job.key.as_deref(), Some("refresh:GET https://a/b"));
        assert_eq!(job.queue, Queue::CacheRefresh);
        assert_eq!(url_of("GET https://a/b?c"), Some("https://a/b?c"));
        assert_eq!(url_of("nonsense"), None);
        assert_eq!(url_of("GET https://a/b vary=1 accept-language=fr"), None);
    }
}
