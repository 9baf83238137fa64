//! Background jobs: work the origin hands off to run later, elsewhere, or again — cache
//! refreshes, edge purges, link crawling, clean-up, webhook deliveries — kept durably in Redis
//! and run at least once by whichever instance is free.
//!
//! | where | what |
//! | --- | --- |
//! | [`job`] | what a job is: [`Queue`], [`NewJob`], [`Job`], their states and counts |
//! | [`store`] | where jobs are kept: Redis ([`redis_store`], with [`scripts`] and [`redis_replies`]) or memory ([`memory_store`]) |
//! | [`runner`] | the workers: concurrency per queue, retries with backoff, dead letters, take-overs |
//! | [`schedule`] | jobs enqueued on a UTC schedule, once per run across every instance |
//! | [`metrics`] | `queue_jobs_total`, `queue_depth`, `queue_job_duration_seconds`, `queue_oldest_waiting_seconds` |
//!
//! [`Jobs`] is the handle the rest of the origin uses: it enqueues (deduplicating by
//! idempotency key), registers the handler of each kind, and drives the queues for the admin API.

pub mod job;
pub mod memory_store;
pub mod metrics;
pub mod redis_queries;
pub mod redis_replies;
pub mod redis_store;
pub mod runner;
pub mod schedule;
pub mod scripts;
pub mod store;
#[cfg(test)]
mod tests;
pub mod work;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use job::{Enqueued, Job, JobState, NewJob, Queue, QueueCounts};
pub use job::{Reserved, Retention};
pub use runner::{Handler, JobError};
pub use store::StoreError;

use crate::core::dependencies::redis::RedisTarget;
use crate::core::dependencies::retry::RetryPolicy;
use memory_store::MemoryStore;
use metrics::{JobMetrics, JobOutcome};
use redis_store::RedisStore;
use store::{Buffer, Store};

/// How the queues run.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSettings {
    /// Jobs run at once per queue, on each instance; 0 runs none of the queue's jobs here.
    pub concurrency: HashMap<Queue, usize>,
    /// A delivered job whose worker has been silent this long is taken over by another.
    pub visibility_timeout: Duration,
    /// Bound on one run of a job.
    pub run_timeout: Duration,
    /// Attempts per job, and the backoff between them.
    pub retry: RetryPolicy,
    /// How many finished jobs are kept, and for how long.
    pub retention: Retention,
    /// Readiness fails when a queue's oldest job has waited longer than this.
    pub max_wait: Duration,
    /// Jobs held in process while Redis is unreachable, at most.
    pub buffer_max: usize,
}

impl Default for JobSettings {
    /// 4 workers per queue (1 for clean-up), a 30 s visibility timeout, 60 s per run, 8
    /// attempts with backoff bounds from 1 s doubling up to 5 minutes, finished jobs kept for a
    /// day (1,000 per queue), readiness failing past 5 minutes of waiting, 10,000 buffered.
    fn default() -> Self {
        let concurrency = Queue::ALL
            .into_iter()
            .map(|queue| (queue, if queue == Queue::Cleanup { 1 } else { 4 }))
            .collect();
        Self {
            concurrency,
            visibility_timeout: Duration::from_secs(30),
            run_timeout: Duration::from_secs(60),
            retry: RetryPolicy {
                attempts: 8,
                initial_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(300),
                factor: 2.0,
            },
            retention: Retention {
                keep_for: Duration::from_secs(86_400),
                keep_count: 1000,
            },
            max_wait: Duration::from_secs(300),
            buffer_max: 10_000,
        }
    }
}

impl JobSettings {
    /// Jobs of `queue` run at once on this instance.
    pub fn concurrency(&self, queue: Queue) -> usize {
        self.concurrency.get(&queue).copied().unwrap_or(0)
    }
}

/// This instance's running workers and schedules.
#[derive(Debug)]
pub struct Workers {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// Stops taking jobs and waits, up to `grace`, for the running ones to finish; the rest are
    /// taken over by another instance after the visibility timeout.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                ?grace,
                "jobs still running at shutdown: another instance takes them over"
            );
        }
    }
}

/// The job system's handle; cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    settings: JobSettings,
    handlers: RwLock<HashMap<String, Arc<dyn Handler>>>,
    metrics: JobMetrics,
    consumer: String,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("durable", &self.inner.store.is_durable())
            .field("consumer", &self.inner.consumer)
            .finish_non_exhaustive()
    }
}

impl Jobs {
    /// Jobs kept in memory: nothing survives a restart, nothing is shared.
    pub fn in_memory(settings: JobSettings) -> Self {
        Self::with_store(Store::Memory(MemoryStore::new()), settings)
    }

    /// Jobs kept in Redis at `target`, under `prefix`, each call bounded by `timeout`.
    pub fn on_redis(
        target: &RedisTarget,
        prefix: &str,
        timeout: Duration,
        settings: JobSettings,
    ) -> Result<Self, StoreError> {
        let store = RedisStore::new(target, prefix, timeout)?;
        let buffer = Buffer::new(settings.buffer_max);
        Ok(Self::with_store(
            Store::Redis(Box::new(store), buffer),
            settings,
        ))
    }

    fn with_store(store: Store, settings: JobSettings) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "origin".to_owned());
        Self {
            inner: Arc::new(Inner {
                store,
                settings,
                handlers: RwLock::default(),
                metrics: JobMetrics::default(),
                consumer: format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..)),
            }),
        }
    }

    /// Runs jobs of `kind` with `handler` (replacing an earlier one).
    pub fn register(&self, kind: &str, handler: impl Handler) {
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind.to_owned(), Arc::new(handler));
    }

    /// The handler of `kind`.
    pub fn handler(&self, kind: &str) -> Option<Arc<dyn Handler>> {
        self.inner
            .handlers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kind)
            .cloned()
    }

    /// Adds `jobs` to their queues in one round trip; a job whose idempotency key a waiting job
    /// has is not added again (its `Enqueued` names the waiting one).
    pub async fn enqueue_all(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let buffered_before = self.inner.store.buffered();
        let result = self.inner.store.enqueue(jobs).await;
        let buffered = self.inner.store.buffered() > buffered_before;
        self.count_outcomes(jobs, &result, buffered);
        if let Err(error) = &result {
            tracing::error!(%error, jobs = jobs.len(), "jobs refused");
        }
        result
    }

    /// Adds `jobs` where they are kept ([`Store::enqueue_kept`]): never to the in-process buffer
    /// for when Redis is unreachable, so that a caller holding them elsewhere (a write's outbox)
    /// lets go of them only once they are stored.
    pub async fn enqueue_kept(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let result = self.inner.store.enqueue_kept(jobs).await;
        self.count_outcomes(jobs, &result, false);
        result
    }

    /// Counts what became of each of `jobs`, enqueued with `result` (`buffered`: held in
    /// process for Redis).
    fn count_outcomes(
        &self,
        jobs: &[NewJob],
        result: &Result<Vec<Enqueued>, StoreError>,
        buffered: bool,
    ) {
        for (index, job) in jobs.iter().enumerate() {
            let outcome = match result {
                Err(_) => JobOutcome::Refused,
                Ok(_) if buffered => JobOutcome::Buffered,
                Ok(done) if done.get(index).is_some_and(|e| !e.created) => JobOutcome::Deduplicated,
                Ok(_) => JobOutcome::Enqueued,
            };
            self.inner.metrics.count(job.queue, outcome, 1);
        }
    }

    /// Adds one job (see [`Jobs::enqueue_all`]).
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        let mut done = self.enqueue_all(std::slice::from_ref(&job)).await?;
        done.pop()
            .ok_or_else(|| StoreError::Redis("no reply for the job".to_owned()))
    }

    /// Adds `jobs` without waiting (for paths that must not wait on Redis); failures are
    /// logged and counted.
    pub fn enqueue_in_background(&self, jobs: Vec<NewJob>) {
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.enqueue_all(&jobs).await;
        });
    }

    /// Whether `other` is this job system (a clone of the same handle).
    pub fn is(&self, other: &Jobs) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether jobs are kept in Redis.
    pub fn is_durable(&self) -> bool {
        self.inner.store.is_durable()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// How the queues run.
    pub fn settings(&self) -> &JobSettings {
        &self.inner.settings
    }

    /// The metrics.
    pub fn metrics(&self) -> &JobMetrics {
        &self.inner.metrics
    }

    /// This instance's name among the queues' consumers.
    pub fn consumer(&self) -> &str {
        &self.inner.consumer
    }

    /// Starts this instance's workers and `schedules`; they run until [`Workers::stop`].
    pub fn start(&self, schedules: Vec<schedule::Schedule>) -> Workers {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = runner::start(self, stopped.clone());
        tasks.extend(schedule::start(self, schedules, stopped));
        Workers { stop, tasks }
    }

    /// Every queue's counts, in [`Queue::ALL`] order.
    pub async fn overview(&self) -> Result<Vec<(Queue, QueueCounts)>, StoreError> {
        let mut overview = Vec::with_capacity(Queue::ALL.len());
        for queue in Queue::ALL {
            overview.push((queue, self.inner.store.counts(queue).await?));
        }
        Ok(overview)
    }
}
