//! The durable job store: one Redis Stream per queue, read through a consumer group, so that
//! several origin instances share the work and a job is delivered to one of them.
//!
//! A queue's keys share the hash tag `{<queue>}`: the stream (entries only name a job id), a
//! hash per job (`job:<id>`: kind, payload, attempts, state, last error), the idempotency hash
//! (key → waiting job), and sorted sets of delayed, dead, completed and failed jobs. Scripts
//! ([`super::scripts`]) move a job between them atomically. A delivered job stays in the
//! group's pending list until it is acknowledged; one whose worker died (its entry idle longer
//! than the visibility timeout, `XAUTOCLAIM`) is taken over by another worker. A running job's
//! worker resets its entry's idle time as it goes, so only a dead worker's jobs are taken.
//! Readers block on `XREADGROUP … BLOCK` on a connection of their own: Redis is never polled.
//! While a queue has a backlog (a worker's last read filled every free slot), the worker reads
//! and starts its next jobs in one script call instead ([`scripts::TAKE`]), a round trip fewer
//! per batch.
//! Counts, the dead-letter set and the other reads and operators' actions are in
//! [`super::redis_queries`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use redis::Value;
use tokio::sync::{mpsc, oneshot};

use super::job::{unix_ms, Enqueued, NewJob, Queue, Reserved, Retention};
use super::redis_replies::{entry_list, job_from_fields, stream_entries, GROUP};
use super::scripts;
use crate::core::dependencies::redis::{RedisConnection, RedisTarget};

/// Jobs taken over from dead workers per call.
const RECLAIM_BATCH: usize = 100;
/// A job hash's fields, as `HGETALL` gives them.
type JobFields = Vec<(String, String)>;
/// Completions recorded in one round trip at most.
const COMPLETE_BATCH: usize = 256;

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Redis answered with an error, or could not be reached.
    #[error("job store: {0}")]
    Redis(String),
    /// Redis did not answer in time.
    #[error("job store: no answer in time")]
    Timeout,
    /// The queue's consumer group is gone (Redis lost its data); it is made again.
    #[error("job store: consumer group missing")]
    NoGroup,
    /// Redis is unreachable and the in-process buffer is full.
    #[error("job store unavailable and {0} jobs already buffered")]
    Full(usize),
}

impl From<redis::RedisError> for StoreError {
    fn from(error: redis::RedisError) -> Self {
        Self::Redis(error.to_string())
    }
}

/// The Redis job store.
#[derive(Clone)]
pub struct RedisStore {
    target: RedisTarget,
    pub(super) conn: RedisConnection,
    pub(super) prefix: String,
    /// Every queue's key names, in [`Queue::ALL`] order, made once.
    names: Arc<[Keys; Queue::ALL.len()]>,
    timeout: Duration,
    /// Where completions wait to be written together (see [`Self::complete`]).
    completions: Arc<Mutex<Option<mpsc::UnboundedSender<Completion>>>>,
}

/// A completed job waiting to be recorded, and who waits for the answer.
struct Completion {
    queue: Queue,
    receipt: String,
    id: String,
    keep_ms: u64,
    done: oneshot::Sender<Result<(), StoreError>>,
}

impl Completion {
    /// `reserved`'s completion, and where its answer arrives.
    fn of(
        reserved: &Reserved,
        retention: Retention,
    ) -> (Self, oneshot::Receiver<Result<(), StoreError>>) {
        let (done, answer) = oneshot::channel();
        let completion = Self {
            queue: reserved.job.queue,
            receipt: reserved.receipt.clone(),
            id: reserved.job.id.clone(),
            keep_ms: u64::try_from(retention.keep_for.as_millis()).unwrap_or(u64::MAX),
            done,
        };
        (completion, answer)
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The names of one queue's keys.
#[derive(Debug)]
pub(super) struct Keys {
    pub(super) stream: String,
    pub(super) keys: String,
    pub(super) delayed: String,
    pub(super) dead: String,
    pub(super) completed: String,
    pub(super) failed: String,
    pub(super) paused: String,
    pub(super) job_prefix: String,
}

impl Keys {
    /// The names of `queue`'s keys under `prefix`; the queue's name is their hash tag, so
    /// that a queue lives in one cluster slot.
    fn of(prefix: &str, queue: Queue) -> Self {
        let base = format!("{prefix}{{{}}}:", queue.as_str());
        Self {
            stream: format!("{base}stream"),
            keys: format!("{base}keys"),
            delayed: format!("{base}delayed"),
            dead: format!("{base}dead"),
            completed: format!("{base}completed"),
            failed: format!("{base}failed"),
            paused: format!("{base}paused"),
            job_prefix: format!("{base}job:"),
        }
    }
}

impl RedisStore {
    /// A store on `target` whose keys start with `prefix`; connects lazily, bounds each call
    /// by `timeout`.
    pub fn new(target: &RedisTarget, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let prefix = format!("{prefix}jobs:");
        Ok(Self {
            conn: target.shared(timeout, 1)?,
            target: target.clone(),
            names: Arc::new(Queue::ALL.map(|queue| Keys::of(&prefix, queue))),
            prefix,
            timeout,
            completions: Arc::default(),
        })
    }

    /// `queue`'s key names.
    pub(super) fn keys(&self, queue: Queue) -> &Keys {
        let index = Queue::ALL.iter().position(|q| *q == queue).unwrap_or(0);
        &self.names[index]
    }

    pub(super) async fn run<T: redis::FromRedisValue>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(StoreError::from),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    /// Runs `pipe`, whose calls invoke `script`; loads the script first when Redis does not
    /// know it (a pipeline cannot fall back from `EVALSHA` by itself).
    pub(super) async fn run_scripts<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
        script: &redis::Script,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        match self.run(pipe.query_async(&mut conn)).await {
            Err(StoreError::Redis(message)) if message.contains("NoScript") => {
                self.run(script.prepare_invoke().load_async(&mut conn))
                    .await?;
                self.run(pipe.query_async(&mut conn)).await
            }
            other => other,
        }
    }

    /// Adds `jobs` in one round trip: one script call, or on a cluster one per queue (each
    /// queue has its own slot), sent together.
    pub async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, StoreError> {
        let now = unix_ms();
        let mut queues: Vec<(Queue, Vec<usize>)> = Vec::new();
        for (index, job) in jobs.iter().enumerate() {
            match queues.iter_mut().find(|(queue, _)| *queue == job.queue) {
                Some((_, members)) => members.push(index),
                None => queues.push((job.queue, vec![index])),
            }
        }
        let calls: Vec<&[(Queue, Vec<usize>)]> = if self.conn.is_cluster() {
            queues.chunks(1).collect()
        } else {
            vec![&queues[..]]
        };
        let replies = join_all(calls.iter().map(|groups| {
            let invocation = self.enqueue_call(groups, jobs, now);
            let mut conn = self.conn.clone();
            async move { self.run(invocation.invoke_async(&mut conn)).await }
        }))
        .await
        .into_iter()
        .collect::<Result<Vec<Vec<(u8, String)>>, _>>()?;
        let order = calls
            .iter()
            .flat_map(|groups| groups.iter().flat_map(|(_, members)| members));
        let mut enqueued: Vec<Option<Enqueued>> = jobs.iter().map(|_| None).collect();
        for (&index, (created, id)) in order.zip(replies.into_iter().flatten()) {
            enqueued[index] = Some(Enqueued {
                id,
                created: created == 1,
            });
        }
        enqueued
            .into_iter()
            .map(|job| job.ok_or_else(|| StoreError::Redis("a job had no reply".into())))
            .collect()
    }

    /// The `ENQUEUE` call adding the jobs of `groups` (a queue, and the indices in `jobs` of
    /// its jobs).
    fn enqueue_call(
        &self,
        groups: &[(Queue, Vec<usize>)],
        jobs: &[NewJob],
        now: u64,
    ) -> redis::ScriptInvocation<'static> {
        let mut invocation = scripts::ENQUEUE.prepare_invoke();
        invocation.arg(now);
        for (queue, members) in groups {
            let keys = self.keys(*queue);
            invocation
                .key(&keys.keys)
                .key(&keys.stream)
                .key(&keys.delayed)
                .arg(&keys.job_prefix)
                .arg(members.len());
            for job in members.iter().map(|&index| &jobs[index]) {
                let due = if job.delay_ms > 0 {
                    now + job.delay_ms
                } else {
                    0
                };
                invocation
                    .arg(super::job::new_id())
                    .arg(job.key.as_deref().unwrap_or(""))
                    .arg(&job.kind)
                    .arg(job.payload.json())
                    .arg(due)
                    .arg(job.trace.as_deref().unwrap_or(""));
            }
        }
        invocation
    }

    /// Creates `queue`'s consumer group (and stream) unless it exists.
    pub async fn ensure_group(&self, queue: Queue) -> Result<(), StoreError> {
        let keys = self.keys(queue);
        let mut conn = self.conn.clone();
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&keys.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            other => other.map_err(StoreError::from),
        }
    }

    /// A connection of its own for a reader that blocks for up to `block`.
    pub async fn reader(&self, block: Duration) -> Result<RedisConnection, StoreError> {
        Ok(self
            .target
            .dedicated(self.timeout, block + self.timeout)
            .await?)
    }

    /// Up to `max` jobs of `queue` for `consumer`, waiting up to `block` for one to arrive.
    pub async fn reserve(
        &self,
        reader: &mut RedisConnection,
        queue: Queue,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Reserved>, StoreError> {
        let keys = self.keys(queue);
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS")
            .arg(&keys.stream)
            .arg(">")
            .query_async(reader)
            .await
            .map_err(|error| match error.code() {
                Some("NOGROUP") => StoreError::NoGroup,
                _ => StoreError::from(error),
            })?;
        let entries = stream_entries(&reply);
        self.start(queue, entries).await
    }

    /// Up to `max` waiting jobs of `queue` for `consumer`, read and marked active in one round
    /// trip without blocking (none when the queue has no backlog).
    pub async fn take(
        &self,
        queue: Queue,
        consumer: &str,
        max: usize,
    ) -> Result<Vec<Reserved>, StoreError> {
        let keys = self.keys(queue);
        let mut invocation = scripts::TAKE.prepare_invoke();
        invocation
            .key(&keys.keys)
            .key(&keys.stream)
            .arg(&keys.job_prefix)
            .arg(GROUP)
            .arg(consumer)
            .arg(max);
        let mut pipe = redis::pipe();
        pipe.invoke_script(&invocation);
        let taken = self.run_scripts(&pipe, &scripts::TAKE).await;
        let (taken,): (Vec<(String, String, JobFields)>,) = taken.map_err(|error| match error {
            StoreError::Redis(message) if message.contains("NOGROUP") => StoreError::NoGroup,
            other => other,
        })?;
        Ok(taken
            .into_iter()
            .filter_map(|(receipt, id, fields)| {
                let job = job_from_fields(queue, &id, fields)?;
                Some(Reserved { job, receipt })
            })
            .collect())
    }

    /// Marks delivered `entries` (stream entry, job id) active, returning the jobs still there.
    async fn start(
        &self,
        queue: Queue,
        entries: Vec<(String, String)>,
    ) -> Result<Vec<Reserved>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.keys(queue);
        let mut invocation = scripts::START.prepare_invoke();
        invocation.key(&keys.keys).arg(&keys.job_prefix);
        for (_, id) in &entries {
            invocation.arg(id);
        }
        let mut pipe = redis::pipe();
        pipe.invoke_script(&invocation);
        let (fields,): (Vec<Option<JobFields>>,) = self.run_scripts(&pipe, &scripts::START).await?;
        let mut conn = self.conn.clone();
        let mut reserved = Vec::with_capacity(entries.len());
        let mut vanished = Vec::new();
        for ((receipt, id), fields) in entries.into_iter().zip(fields) {
            match fields.and_then(|fields| job_from_fields(queue, &id, fields)) {
                Some(job) => reserved.push(Reserved { job, receipt }),
                None => vanished.push(receipt),
            }
        }
        if !vanished.is_empty() {
            // Deleted while waiting: acknowledge the entries so nobody takes them again.
            let mut pipe = redis::pipe();
            pipe.cmd("XACK").arg(&keys.stream).arg(GROUP).arg(&vanished);
            pipe.cmd("XDEL").arg(&keys.stream).arg(&vanished);
            self.run::<()>(pipe.query_async(&mut conn)).await?;
        }
        Ok(reserved)
    }

    /// Takes over jobs of `queue` whose workers have been silent for `idle`.
    pub async fn reclaim(
        &self,
        queue: Queue,
        consumer: &str,
        idle: Duration,
    ) -> Result<Vec<Reserved>, StoreError> {
        let keys = self.keys(queue);
        let mut conn = self.conn.clone();
        let reply: Value = self
            .run(
                redis::cmd("XAUTOCLAIM")
                    .arg(&keys.stream)
                    .arg(GROUP)
                    .arg(consumer)
                    .arg(u64::try_from(idle.as_millis()).unwrap_or(u64::MAX))
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(RECLAIM_BATCH)
                    .query_async(&mut conn),
            )
            .await?;
        let entries = match &reply {
            Value::Array(parts) => parts.get(1).map(entry_list).unwrap_or_default(),
            _ => Vec::new(),
        };
        self.start(queue, entries).await
    }

    /// Tells the group the jobs behind `receipts` are still being worked on.
    pub async fn heartbeat(
        &self,
        queue: Queue,
        consumer: &str,
        receipts: &[String],
    ) -> Result<(), StoreError> {
        let keys = self.keys(queue);
        let mut conn = self.conn.clone();
        self.run::<Value>(
            redis::cmd("XCLAIM")
                .arg(&keys.stream)
                .arg(GROUP)
                .arg(consumer)
                .arg(0)
                .arg(receipts)
                .arg("JUSTID")
                .query_async(&mut conn),
        )
        .await
        .map(drop)
    }

    /// Records that `reserved` completed. Completions arriving while another write is on its
    /// way are recorded together in the next one (one script call per queue), so a busy queue
    /// pays one round trip for many jobs and an idle one pays no wait.
    pub async fn complete(
        &self,
        reserved: &Reserved,
        retention: Retention,
    ) -> Result<(), StoreError> {
        let (completion, answer) = Completion::of(reserved, retention);
        let unsent = match self.completer().send(completion) {
            Ok(()) => match answer.await {
                Ok(result) => return result,
                // The writer's runtime is gone: record it here.
                Err(_) => Completion::of(reserved, retention).0,
            },
            Err(mpsc::error::SendError(completion)) => completion,
        };
        self.record_completions(&[unsent]).await
    }

    /// The sender to the task writing completions, started on first use (and again when the
    /// runtime that ran it has gone).
    fn completer(&self) -> mpsc::UnboundedSender<Completion> {
        let mut slot = self.completions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = slot.as_ref().filter(|sender| !sender.is_closed()) {
            return sender.clone();
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        // The writer's own copy does not hold the sender, so it ends with the last store.
        let writer = Self {
            completions: Arc::default(),
            ..self.clone()
        };
        tokio::spawn(writer.write_completions(receiver));
        *slot = Some(sender.clone());
        sender
    }

    /// Writes completions as they come, each batch in one round trip.
    async fn write_completions(self, mut receiver: mpsc::UnboundedReceiver<Completion>) {
        while let Some(first) = receiver.recv().await {
            // Let the workers that finished at the same moment hand theirs in too.
            tokio::task::yield_now().await;
            let mut batch = vec![first];
            while batch.len() < COMPLETE_BATCH {
                match receiver.try_recv() {
                    Ok(completion) => batch.push(completion),
                    Err(_) => break,
                }
            }
            let result = self.record_completions(&batch).await;
            for completion in batch {
                let _ = completion.done.send(result.clone());
            }
        }
    }

    /// Records `batch` completed: one script call per queue, in one round trip.
    async fn record_completions(&self, batch: &[Completion]) -> Result<(), StoreError> {
        let now = unix_ms();
        let mut groups: Vec<(Queue, u64, Vec<&Completion>)> = Vec::new();
        for completion in batch {
            let group = groups
                .iter_mut()
                .find(|(queue, keep, _)| *queue == completion.queue && *keep == completion.keep_ms);
            match group {
                Some((_, _, members)) => members.push(completion),
                None => groups.push((completion.queue, completion.keep_ms, vec![completion])),
            }
        }
        // One script call per group, concurrently: on a cluster each queue has its own slot.
        let mut calls = Vec::with_capacity(groups.len());
        for (queue, keep_ms, members) in &groups {
            let keys = self.keys(*queue);
            let mut invocation = scripts::COMPLETE.prepare_invoke();
            invocation
                .key(&keys.stream)
                .key(&keys.completed)
                .arg(now)
                .arg(*keep_ms)
                .arg(&keys.job_prefix);
            for completion in members {
                invocation.arg(&completion.receipt).arg(&completion.id);
            }
            let mut conn = self.conn.clone();
            calls.push(async move { self.run::<()>(invocation.invoke_async(&mut conn)).await });
        }
        join_all(calls).await.into_iter().collect()
    }

    /// Records that `reserved` failed with `error`; `retry_at` (Unix ms) delays it for another
    /// attempt, `None` moves it to the dead-letter set.
    pub async fn fail(
        &self,
        reserved: &Reserved,
        error: &str,
        retry_at: Option<u64>,
    ) -> Result<(), StoreError> {
        let keys = self.keys(reserved.job.queue);
        let mut invocation = scripts::FAIL.prepare_invoke();
        invocation
            .key(&keys.stream)
            .key(&keys.delayed)
            .key(&keys.dead)
            .key(&keys.failed)
            .arg(&reserved.receipt)
            .arg(format!("{}{}", keys.job_prefix, reserved.job.id))
            .arg(&reserved.job.id)
            .arg(unix_ms())
            .arg(retry_at.unwrap_or(0))
            .arg(error)
            .arg(reserved.job.attempts);
        let mut conn = self.conn.clone();
        self.run::<u8>(invocation.invoke_async(&mut conn))
            .await
            .map(drop)
    }

    /// Moves due delayed jobs of `queue` onto its stream; returns when the next one is due.
    pub async fn promote(&self, queue: Queue) -> Result<Option<u64>, StoreError> {
        let keys = self.keys(queue);
        let mut invocation = scripts::PROMOTE.prepare_invoke();
        invocation
            .key(&keys.delayed)
            .key(&keys.stream)
            .arg(unix_ms())
            .arg(&keys.job_prefix);
        let mut conn = self.conn.clone();
        let (_, next): (u64, String) = self.run(invocation.invoke_async(&mut conn)).await?;
        Ok(next.parse::<f64>().ok().map(|due| due as u64))
    }
}
