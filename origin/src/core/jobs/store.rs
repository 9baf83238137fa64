//! Where jobs are kept: Redis when it is configured ([`RedisStore`], durable and shared by
//! every instance), else memory ([`MemoryStore`]). [`Store`] gives both one interface.
//!
//! While Redis cannot be reached, jobs enqueued are held in a bounded buffer in process and
//! written to Redis once it answers again (oldest first); when the buffer is full, enqueuing is
//! refused with [`StoreError::Full`]. Jobs in the buffer are lost if the process dies.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::core::dependencies::redis::RedisConnection;

use super::job::{Enqueued, Job, NewJob, Queue, QueueCounts, Reserved, Retention};
use super::memory_store::MemoryStore;
use super::redis_store::RedisStore;
pub use super::redis_store::StoreError;

/// A worker's reading state. On Redis, a reader blocks on a connection of its own when its
/// queue is idle; while the queue has a backlog (its last read filled every free slot), it reads
/// and starts jobs in one round trip on the shared connection instead.
#[derive(Debug, Default)]
pub struct Reader {
    conn: Option<RedisConnection>,
    pub(super) backlog: bool,
}

/// The job store.
#[derive(Debug, Clone)]
pub enum Store {
    /// In process.
    Memory(MemoryStore),
    /// In Redis, with a buffer for when it cannot be reached.
    Redis(Box<RedisStore>, Buffer),
}

/// Jobs waiting for Redis to come back.
#[derive(Debug, Clone)]
pub struct Buffer {
    jobs: Arc<Mutex<VecDeque<NewJob>>>,
    max: usize,
}

impl Buffer {
    /// A buffer of at most `max` jobs.
    pub fn new(max: usize) -> Self {
        Self {
            jobs: Arc::default(),
            max,
        }
    }

    /// Jobs buffered now.
    pub fn len(&self) -> usize {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hold(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, StoreError> {
        let mut held = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if held.len() + jobs.len() > self.max {
            return Err(StoreError::Full(held.len()));
        }
        held.extend(jobs.iter().cloned());
        Ok(jobs
            .iter()
            .map(|_| Enqueued {
                id: format!("buffered-{}", super::job::new_id()),
                created: true,
            })
            .collect())
    }

    /// Copies of the first `max` jobs; they stay buffered (so that jobs enqueued meanwhile
    /// keep joining the buffer) until [`Self::drop_first`] removes them once written.
    fn first(&self, max: usize) -> Vec<NewJob> {
        let held = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        held.iter().take(max).cloned().collect()
    }

    fn drop_first(&self, count: usize) {
        let mut held = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.len().min(count);
        held.drain(..count);
    }
}

impl Store {
    /// Whether jobs survive a restart and are shared between instances.
    pub fn is_durable(&self) -> bool {
        matches!(self, Store::Redis(..))
    }

    /// Adds `jobs`; with Redis unreachable they are buffered (see the module documentation).
    /// While jobs wait in the buffer, new ones join them without asking Redis: Redis failed a
    /// moment ago (a request would only wait out its timeout), and they stay in order. The
    /// buffer is written to Redis as soon as it answers again.
    pub async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.enqueue(jobs)),
            Store::Redis(_, buffer) if !buffer.is_empty() => buffer.hold(jobs),
            Store::Redis(store, buffer) => match store.enqueue(jobs).await {
                Ok(done) => Ok(done),
                Err(error) => {
                    tracing::warn!(%error, jobs = jobs.len(), "job store unreachable: jobs buffered");
                    buffer.hold(jobs)
                }
            },
        }
    }

    /// Adds `jobs` where they survive this process (Redis), or where the job system keeps them
    /// (in process); never to the buffer. While jobs wait in the buffer, Redis failed a moment
    /// ago and this refuses at once, like a failed call: for callers that keep the jobs
    /// themselves until they are stored (a write's outbox).
    pub async fn enqueue_kept(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.enqueue(jobs)),
            Store::Redis(_, buffer) if !buffer.is_empty() => Err(StoreError::Full(buffer.len())),
            Store::Redis(store, _) => store.enqueue(jobs).await,
        }
    }

    /// Writes buffered jobs to Redis; returns how many were written.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let Store::Redis(store, buffer) = self else {
            return Ok(0);
        };
        let mut written = 0;
        loop {
            let batch = buffer.first(100);
            if batch.is_empty() {
                return Ok(written);
            }
            store.enqueue(&batch).await?;
            buffer.drop_first(batch.len());
            written += batch.len();
        }
    }

    /// Jobs waiting in the buffer for Redis.
    pub fn buffered(&self) -> usize {
        match self {
            Store::Memory(_) => 0,
            Store::Redis(_, buffer) => buffer.len(),
        }
    }

    /// Prepares `queue` for reading.
    pub async fn prepare(&self, queue: Queue) -> Result<(), StoreError> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(store, _) => store.ensure_group(queue).await,
        }
    }

    /// Up to `max` jobs of `queue` for `consumer`, waiting up to `block` for one.
    pub async fn reserve(
        &self,
        reader: &mut Reader,
        queue: Queue,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Reserved>, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.reserve(queue, max, block).await),
            Store::Redis(store, _) => {
                let reserved = Self::read_redis(store, reader, queue, consumer, max, block).await;
                reader.backlog = reserved.as_ref().is_ok_and(|jobs| jobs.len() >= max);
                if matches!(reserved, Err(StoreError::NoGroup)) {
                    store.ensure_group(queue).await?;
                }
                reserved
            }
        }
    }

    async fn read_redis(
        store: &RedisStore,
        reader: &mut Reader,
        queue: Queue,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Reserved>, StoreError> {
        if reader.backlog {
            let taken = store.take(queue, consumer, max).await?;
            if !taken.is_empty() {
                return Ok(taken);
            }
        }
        if reader.conn.is_none() {
            reader.conn = Some(store.reader(block).await?);
        }
        let Some(conn) = reader.conn.as_mut() else {
            return Ok(Vec::new());
        };
        let reserved = store.reserve(conn, queue, consumer, max, block).await;
        if matches!(reserved, Err(StoreError::Redis(_))) {
            // A fresh connection next time.
            reader.conn = None;
        }
        reserved
    }

    /// Takes over jobs of `queue` whose workers have been silent for `idle`.
    pub async fn reclaim(
        &self,
        queue: Queue,
        consumer: &str,
        idle: Duration,
    ) -> Result<Vec<Reserved>, StoreError> {
        match self {
            Store::Memory(_) => Ok(Vec::new()),
            Store::Redis(store, _) => store.reclaim(queue, consumer, idle).await,
        }
    }

    /// Keeps the deliveries behind `receipts` from being taken over.
    pub async fn heartbeat(
        &self,
        queue: Queue,
        consumer: &str,
        receipts: &[String],
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(store, _) => store.heartbeat(queue, consumer, receipts).await,
        }
    }

    /// Records that `reserved` completed.
    pub async fn complete(
        &self,
        reserved: &Reserved,
        retention: Retention,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(store) => {
                store.complete(reserved, retention);
                Ok(())
            }
            Store::Redis(store, _) => store.complete(reserved, retention).await,
        }
    }

    /// Records that `reserved` failed; `retry_at` (Unix ms) delays it, `None` makes it dead.
    pub async fn fail(
        &self,
        reserved: &Reserved,
        error: &str,
        retry_at: Option<u64>,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(store) => {
                store.fail(reserved, error, retry_at);
                Ok(())
            }
            Store::Redis(store, _) => store.fail(reserved, error, retry_at).await,
        }
    }

    /// Moves due delayed jobs to waiting; returns when the next is due (Unix ms).
    pub async fn promote(&self, queue: Queue) -> Result<Option<u64>, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.promote(queue)),
            Store::Redis(store, _) => store.promote(queue).await,
        }
    }

    /// How many jobs of `queue` are in each state.
    pub async fn counts(&self, queue: Queue) -> Result<QueueCounts, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.counts(queue)),
            Store::Redis(store, _) => store.counts(queue).await,
        }
    }

    /// The job `id` of `queue`, if kept.
    pub async fn get(&self, queue: Queue, id: &str) -> Result<Option<Job>, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.get(queue, id)),
            Store::Redis(store, _) => store.get(queue, id).await,
        }
    }

    /// Up to `limit` dead jobs of `queue`, most recent first.
    pub async fn dead(&self, queue: Queue, limit: usize) -> Result<Vec<Job>, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.dead(queue, limit)),
            Store::Redis(store, _) => store.dead(queue, limit).await,
        }
    }

    /// Sends dead job `id` back to its queue; `false` when it is not dead.
    pub async fn retry_dead(&self, queue: Queue, id: &str) -> Result<bool, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.retry_dead(queue, id)),
            Store::Redis(store, _) => store.retry_dead(queue, id).await,
        }
    }

    /// Deletes dead job `id`; `false` when it is not dead.
    pub async fn delete_dead(&self, queue: Queue, id: &str) -> Result<bool, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.delete_dead(queue, id)),
            Store::Redis(store, _) => store.delete_dead(queue, id).await,
        }
    }

    /// Pauses or resumes `queue` on every instance.
    pub async fn set_paused(&self, queue: Queue, paused: bool) -> Result<(), StoreError> {
        match self {
            Store::Memory(store) => {
                store.set_paused(queue, paused);
                Ok(())
            }
            Store::Redis(store, _) => store.set_paused(queue, paused).await,
        }
    }

    /// Whether `queue` is paused.
    pub async fn is_paused(&self, queue: Queue) -> Result<bool, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.is_paused(queue)),
            Store::Redis(store, _) => store.is_paused(queue).await,
        }
    }

    /// Drops finished records of `queue` beyond `retention`; returns how many.
    pub async fn trim(&self, queue: Queue, retention: Retention) -> Result<u64, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.trim(queue, retention)),
            Store::Redis(store, _) => store.trim(queue, retention).await,
        }
    }

    /// Claims schedule `name`'s run at `slot` for this instance.
    pub async fn claim_slot(&self, name: &str, slot: u64) -> Result<bool, StoreError> {
        match self {
            Store::Memory(store) => Ok(store.claim_slot(name, slot)),
            Store::Redis(store, _) => store.claim_slot(name, slot).await,
        }
    }
}
