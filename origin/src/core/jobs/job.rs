//! What a job is: the queue it runs on, what it does (its kind and JSON payload), the key that
//! makes a second copy of a pending job a no-op, and what happened to it so far.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::core::observability::telemetry;

/// The queues background work runs on; each has its own workers, concurrency and pause switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Queue {
    /// Stale-while-revalidate refreshes, re-warms after invalidations, warm-ups.
    CacheRefresh,
    /// Purges carried to the edge and to Cloudflare.
    EdgePurge,
    /// Fetches of user-supplied links.
    Crawler,
    /// Retention: the audit log, expired uploads, finished jobs.
    Cleanup,
    /// Webhook deliveries.
    Notifications,
}

impl Queue {
    /// Every queue.
    pub const ALL: [Queue; 5] = [
        Queue::CacheRefresh,
        Queue::EdgePurge,
        Queue::Crawler,
        Queue::Cleanup,
        Queue::Notifications,
    ];

    /// The queue's name in URLs, metrics and Redis keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            Queue::CacheRefresh => "cache-refresh",
            Queue::EdgePurge => "edge-purge",
            Queue::Crawler => "crawler",
            Queue::Cleanup => "cleanup",
            Queue::Notifications => "notifications",
        }
    }

    /// The queue named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|queue| queue.as_str() == name)
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to enqueue; it serializes to JSON as itself (a write's outbox row keeps its jobs so).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// Where it runs.
    pub queue: Queue,
    /// What it does: the name of the handler that runs it.
    pub kind: String,
    /// The handler's input.
    pub payload: Payload,
    /// While a job with this key waits to run, enqueuing another with the same key returns
    /// the waiting one's id instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Run no sooner than this many milliseconds from now.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay_ms: u64,
    /// The span that enqueued it (a `traceparent`), when traces are exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl NewJob {
    /// A job of `kind` on `queue` with `payload`, to run as soon as a worker is free.
    pub fn new(queue: Queue, kind: &str, payload: serde_json::Value) -> Self {
        Self::with_payload(queue, kind, Payload::from(payload))
    }

    /// A job of `kind` on `queue` whose payload is `input` as JSON, written straight from it
    /// (a job enqueued on a request's path need not build a `serde_json::Value` first).
    pub fn serialized(
        queue: Queue,
        kind: &str,
        input: &impl Serialize,
    ) -> Result<Self, serde_json::Error> {
        let payload = serde_json::value::to_raw_value(input)?;
        Ok(Self::with_payload(queue, kind, Payload(payload)))
    }

    fn with_payload(queue: Queue, kind: &str, payload: Payload) -> Self {
        Self {
            queue,
            kind: kind.to_owned(),
            payload,
            key: None,
            delay_ms: 0,
            trace: telemetry::current_traceparent(),
        }
    }

    /// The same job, deduplicated by `key` while it waits.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The same job, run no sooner than `delay_ms` from now.
    #[must_use]
    pub fn delayed_by(mut self, delay_ms: u64) -> Self {
        self.delay_ms = delay_ms;
        self
    }
}

/// A new job's input, held as the JSON text it is stored as.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// The JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The input as a JSON value.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl From<serde_json::Value> for Payload {
    fn from(value: serde_json::Value) -> Self {
        // A `Value` always serializes: its map keys are strings.
        let json =
            serde_json::value::to_raw_value(&value).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Self(json)
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Ready, waiting for a worker.
    Waiting,
    /// Taken by a worker.
    Active,
    /// Waiting for its time (a retry's backoff, or a requested delay).
    Delayed,
    /// Done.
    Completed,
    /// Out of attempts, or failed for good: in the dead-letter queue.
    Dead,
}

impl JobState {
    /// The state's name in responses and stores.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Active => "active",
            JobState::Delayed => "delayed",
            JobState::Completed => "completed",
            JobState::Dead => "dead",
        }
    }

    /// The state named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            JobState::Waiting,
            JobState::Active,
            JobState::Delayed,
            JobState::Completed,
            JobState::Dead,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }
}

/// A stored job, as workers and the admin API see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Unique id.
    pub id: String,
    /// Where it runs.
    pub queue: Queue,
    /// What it does.
    pub kind: String,
    /// The handler's input.
    pub payload: serde_json::Value,
    /// Its idempotency key, if any.
    pub key: Option<String>,
    /// Runs started so far, this one included while it runs.
    pub attempts: u32,
    /// When it was enqueued, in Unix milliseconds.
    pub enqueued_at_ms: u64,
    /// Where it is now.
    pub state: JobState,
    /// Why the last run failed, if it did.
    pub last_error: Option<String>,
    /// The span that enqueued it (a `traceparent`), when traces were exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

impl Job {
    /// The payload as a `T`; a payload that does not fit can never run: a permanent failure.
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, super::JobError> {
        serde_json::from_value(self.payload.clone())
            .map_err(|error| super::JobError::permanent(format!("bad payload: {error}")))
    }
}

/// A fresh job id: time-ordered and unique across instances.
pub fn new_id() -> String {
    format!("{:x}-{:016x}", unix_ms(), fastrand::u64(..))
}

/// Now, in Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How many jobs of a queue are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    /// Ready, waiting for a worker.
    pub waiting: u64,
    /// Taken by a worker.
    pub active: u64,
    /// Waiting for a retry's backoff or a delay.
    pub delayed: u64,
    /// Completed and still kept.
    pub completed: u64,
    /// Failed runs still kept (each retried or dead-lettered).
    pub failed: u64,
    /// In the dead-letter queue.
    pub dead: u64,
    /// Whether workers take no new jobs from the queue.
    pub paused: bool,
    /// How long the oldest waiting job has waited, in milliseconds.
    pub oldest_waiting_ms: u64,
}

/// What enqueuing did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The job's id (the pending job's, for a duplicate).
    pub id: String,
    /// `false` when a pending job with the same key was found instead.
    pub created: bool,
}

/// A job handed to a worker, with what acknowledges it.
#[derive(Debug, Clone)]
pub struct Reserved {
    /// The job.
    pub job: Job,
    /// The store's handle on this delivery (the stream entry in Redis).
    pub receipt: String,
}

/// How long, and how many, finished jobs are kept for inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Completed jobs and failed runs older than this are dropped.
    pub keep_for: Duration,
    /// At most this many of each are kept per queue.
    pub keep_count: u64,
}
