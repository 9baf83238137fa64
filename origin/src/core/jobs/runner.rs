//! The workers: for each queue, a loop that takes jobs (up to the queue's concurrency at a
//! time), runs each through its kind's [`Handler`], and records the outcome: completed, retried
//! after an exponential backoff with full jitter, or dead-lettered once out of attempts. Beside
//! it, a maintenance loop takes over jobs of workers that died, trims finished records and
//! publishes the queue's depth.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt as _;
use tokio::sync::{watch, Semaphore};

use tracing::Instrument;

use super::job::Reserved;
use super::job::{unix_ms, Job, Queue};
use super::metrics::JobOutcome;
use super::store::{Reader, StoreError};
use super::Jobs;
use crate::core::observability::telemetry;

/// How long a reader blocks for a job before it looks at delays and the pause switch again.
const BLOCK: Duration = Duration::from_secs(1);
/// How often a busy worker looks at delayed jobs and the pause switch.
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How often depths are published and finished records trimmed.
const MAINTENANCE: Duration = Duration::from_secs(5);

/// Why a job's run failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    /// What went wrong, kept with the job.
    pub message: String,
    /// Wait at least this long before the next attempt (a target's `Retry-After`).
    pub retry_after: Option<Duration>,
    /// Another attempt cannot succeed: dead-letter the job now.
    pub permanent: bool,
}

impl JobError {
    /// A failure worth another attempt.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry_after: None,
            permanent: false,
        }
    }

    /// A failure no further attempt can fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            permanent: true,
            ..Self::retry(message)
        }
    }

    /// The same failure, with the next attempt no sooner than `after`.
    #[must_use]
    pub fn after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }
}

/// Runs jobs of one kind.
pub trait Handler: Send + Sync + 'static {
    /// Runs `job`.
    fn run(&self, job: Job) -> BoxFuture<'static, Result<(), JobError>>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    fn run(&self, job: Job) -> BoxFuture<'static, Result<(), JobError>> {
        Box::pin(self(job))
    }
}

/// Starts the workers and maintenance of every queue; they stop when `stop` turns `true`,
/// after finishing the jobs they hold.
pub fn start(jobs: &Jobs, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for queue in Queue::ALL {
        let concurrency = jobs.settings().concurrency(queue);
        if concurrency > 0 {
            tasks.push(tokio::spawn(work(jobs.clone(), queue, stop.clone())));
        }
        tasks.push(tokio::spawn(maintain(jobs.clone(), queue, stop.clone())));
    }
    tasks.push(tokio::spawn(flush_buffer(jobs.clone(), stop)));
    tasks
}

/// Takes and runs `queue`'s jobs until told to stop.
async fn work(jobs: Jobs, queue: Queue, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(jobs.settings().concurrency(queue)));
    let mut reader = Reader::default();
    let store = jobs.store().clone();
    if let Err(error) = store.prepare(queue).await {
        tracing::warn!(%queue, %error, "job queue not ready yet");
    }
    let mut checks = Checks::default();
    while !*stop.borrow() {
        if checks.due() {
            // Both at once: on Redis they share one round trip (one connection, sent in this
            // order).
            let (next_due, paused) = tokio::join!(store.promote(queue), store.is_paused(queue));
            checks.done(next_due.unwrap_or(None), paused.unwrap_or(false));
        }
        if checks.paused {
            pause(&mut stop, BLOCK).await;
            checks.expire();
            continue;
        }
        let Ok(first) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        // Jobs finishing together free their slots together: take them in one read.
        tokio::task::yield_now().await;
        let free = 1 + slots.available_permits();
        let block = checks.block();
        let reserved = tokio::select! {
            reserved = store.reserve(&mut reader, queue, jobs.consumer(), free, block) => reserved,
            _ = stop.changed() => break,
        };
        let reserved = match reserved {
            Ok(reserved) => reserved,
            Err(error) => {
                tracing::warn!(%queue, %error, "job store unreachable: workers wait");
                drop(first);
                pause(&mut stop, BLOCK).await;
                continue;
            }
        };
        let mut permits = std::iter::once(first).chain(std::iter::from_fn(|| {
            Arc::clone(&slots).try_acquire_owned().ok()
        }));
        for job in reserved {
            let permit = permits.next();
            let jobs = jobs.clone();
            tokio::spawn(async move {
                execute(&jobs, job).await;
                drop(permit);
            });
        }
    }
    // Wait for the jobs still running.
    let _ = slots
        .acquire_many(u32::try_from(jobs.settings().concurrency(queue)).unwrap_or(u32::MAX))
        .await;
}

/// When a worker last moved due delayed jobs onto its stream and read the pause switch. Under
/// load a worker reads many batches a second; it looks at delays and the switch at most every
/// [`CHECK_EVERY`], or when the next delayed job it knows of is due.
#[derive(Debug, Default)]
struct Checks {
    last: Option<Instant>,
    next_due: Option<u64>,
    paused: bool,
}

impl Checks {
    fn due(&self) -> bool {
        self.last.is_none_or(|last| last.elapsed() >= CHECK_EVERY)
            || self.next_due.is_some_and(|due| due <= unix_ms())
    }

    fn done(&mut self, next_due: Option<u64>, paused: bool) {
        self.last = Some(Instant::now());
        self.next_due = next_due;
        self.paused = paused;
    }

    fn expire(&mut self) {
        self.last = None;
    }

    /// How long the next read may block: until the next delayed job is due, at most [`BLOCK`].
    fn block(&self) -> Duration {
        self.next_due.map_or(BLOCK, |due| {
            Duration::from_millis(due.saturating_sub(unix_ms()).clamp(1, 1000))
        })
    }
}

/// Sleeps for `duration`, or until told to stop.
async fn pause(stop: &mut watch::Receiver<bool>, duration: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = stop.changed() => {}
    }
}

/// Runs one job and records its outcome.
pub async fn execute(jobs: &Jobs, reserved: Reserved) {
    let queue = reserved.job.queue;
    let started = Instant::now();
    let job = &reserved.job;
    let span = telemetry::job_span(queue.as_str(), &job.kind, &job.id, job.trace.as_deref());
    let result = run_with_heartbeat(jobs, &reserved).instrument(span).await;
    jobs.metrics().ran(queue, started.elapsed());
    let settings = jobs.settings();
    let store = jobs.store();
    let recorded = match result {
        Ok(()) => {
            jobs.metrics().count(queue, JobOutcome::Completed, 1);
            store.complete(&reserved, settings.retention).await
        }
        Err(error) => {
            let attempts = reserved.job.attempts;
            let dead = error.permanent || attempts >= settings.retry.attempts;
            let retry_at = (!dead).then(|| {
                let backoff = settings
                    .retry
                    .backoff(attempts)
                    .max(error.retry_after.unwrap_or_default());
                unix_ms() + u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX)
            });
            let outcome = if dead {
                tracing::warn!(%queue, id = %reserved.job.id, kind = %reserved.job.kind, attempts, error = %error.message, "job dead-lettered");
                JobOutcome::Dead
            } else {
                tracing::info!(%queue, id = %reserved.job.id, kind = %reserved.job.kind, attempts, error = %error.message, "job failed: retried later");
                JobOutcome::Retried
            };
            jobs.metrics().count(queue, outcome, 1);
            store.fail(&reserved, &error.message, retry_at).await
        }
    };
    if let Err(error) = recorded {
        // The entry stays pending and is taken over after the visibility timeout.
        tracing::warn!(%queue, id = %reserved.job.id, %error, "job outcome not recorded");
    }
}

/// Runs `reserved`'s handler in a task of its own (a panic is a failure), bounded by the run
/// timeout, telling the store it is alive meanwhile.
async fn run_with_heartbeat(jobs: &Jobs, reserved: &Reserved) -> Result<(), JobError> {
    let Some(handler) = jobs.handler(&reserved.job.kind) else {
        return Err(JobError::permanent(format!(
            "no handler for jobs of kind {:?}",
            reserved.job.kind
        )));
    };
    let settings = jobs.settings();
    let mut run = std::pin::pin!(std::panic::AssertUnwindSafe(tokio::time::timeout(
        settings.run_timeout,
        handler.run(reserved.job.clone()),
    ))
    .catch_unwind());
    // The first beat one period from now. (Awaiting `interval`'s first tick, which is meant to
    // be immediate, held every job for about 1 ms: the timer rounds a deadline up to the next
    // millisecond and fires it on its next turn.)
    let period = settings.visibility_timeout / 3;
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let receipts = [reserved.receipt.clone()];
    loop {
        tokio::select! {
            finished = &mut run => return match finished {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(JobError::retry(format!("did not finish within {:?}", settings.run_timeout))),
                Err(panic) => Err(JobError::retry(format!("the job panicked: {}", panic_message(&*panic)))),
            },
            _ = beat.tick() => {
                let queue = reserved.job.queue;
                if let Err(error) = jobs.store().heartbeat(queue, jobs.consumer(), &receipts).await {
                    tracing::debug!(%queue, %error, "job heartbeat failed");
                }
            }
        }
    }
}

/// What a panic said, when it said it with a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// Takes over dead workers' jobs, trims finished records and publishes depths for `queue`.
async fn maintain(jobs: Jobs, queue: Queue, mut stop: watch::Receiver<bool>) {
    let settings = jobs.settings().clone();
    let every = MAINTENANCE.min(settings.visibility_timeout / 2);
    while !*stop.borrow() {
        pause(&mut stop, every).await;
        if settings.concurrency(queue) > 0 {
            match jobs
                .store()
                .reclaim(queue, jobs.consumer(), settings.visibility_timeout)
                .await
            {
                Ok(taken) => {
                    for reserved in taken {
                        tracing::info!(%queue, id = %reserved.job.id, "job taken over from a silent worker");
                        jobs.metrics().count(queue, JobOutcome::Reclaimed, 1);
                        let jobs = jobs.clone();
                        tokio::spawn(async move { execute(&jobs, reserved).await });
                    }
                }
                Err(StoreError::Redis(message)) if message.contains("NOGROUP") => {
                    let _ = jobs.store().prepare(queue).await;
                }
                Err(error) => tracing::debug!(%queue, %error, "reclaim failed"),
            }
        }
        let _ = jobs.store().trim(queue, settings.retention).await;
        if let Ok(counts) = jobs.store().counts(queue).await {
            jobs.metrics().depths(queue, &counts);
        }
    }
}

/// Writes jobs buffered while Redis was unreachable, once it answers again.
async fn flush_buffer(jobs: Jobs, mut stop: watch::Receiver<bool>) {
    loop {
        let stopping = *stop.borrow();
        if jobs.store().buffered() > 0 {
            match jobs.store().flush().await {
                Ok(written) if written > 0 => {
                    tracing::info!(written, "buffered jobs written to the job store")
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, "buffered jobs still waiting"),
            }
        }
        if stopping {
            return;
        }
        pause(&mut stop, Duration::from_millis(500)).await;
    }
}
