//! The job system's metrics: jobs by outcome, run time, and each queue's depth by state and
//! oldest waiting job (refreshed every few seconds from the store, since a scrape cannot wait
//! on Redis).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::job::{Queue, QueueCounts};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    queue: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    queue: &'static str,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: &'static str,
}

/// What happened to a job, as `queue_jobs_total`'s `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Added to its queue.
    Enqueued,
    /// Not added: a waiting job had its idempotency key.
    Deduplicated,
    /// Held in process while Redis is unreachable.
    Buffered,
    /// Refused: Redis unreachable and the buffer full.
    Refused,
    /// Ran and succeeded.
    Completed,
    /// Failed, to be tried again.
    Retried,
    /// Failed for the last time: in the dead-letter queue.
    Dead,
    /// Taken over from a worker that stopped answering.
    Reclaimed,
}

impl JobOutcome {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Enqueued => "enqueued",
            JobOutcome::Deduplicated => "deduplicated",
            JobOutcome::Buffered => "buffered",
            JobOutcome::Refused => "refused",
            JobOutcome::Completed => "completed",
            JobOutcome::Retried => "retried",
            JobOutcome::Dead => "dead",
            JobOutcome::Reclaimed => "reclaimed",
        }
    }
}

/// The job system's metrics; clones share them.
#[derive(Debug, Clone)]
pub struct JobMetrics {
    jobs: Family<OutcomeLabels, Counter>,
    durations: Family<QueueLabels, Histogram, fn() -> Histogram>,
    depth: Family<StateLabels, Gauge>,
    oldest: Family<QueueLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

fn run_histogram() -> Histogram {
    // 1 ms to about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Default for JobMetrics {
    fn default() -> Self {
        Self {
            jobs: Family::default(),
            durations: Family::new_with_constructor(run_histogram),
            depth: Family::default(),
            oldest: Family::default(),
        }
    }
}

impl JobMetrics {
    /// Registers these metrics in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "queue_jobs",
            "Background jobs, per queue and outcome",
            self.jobs.clone(),
        );
        registry.register(
            "queue_job_duration_seconds",
            "Run time of background jobs, per queue",
            self.durations.clone(),
        );
        registry.register(
            "queue_depth",
            "Background jobs per queue and state",
            self.depth.clone(),
        );
        registry.register(
            "queue_oldest_waiting_seconds",
            "How long the oldest waiting job of each queue has waited",
            self.oldest.clone(),
        );
    }

    /// Counts `count` jobs of `queue` that ended as `outcome`.
    pub fn count(&self, queue: Queue, outcome: JobOutcome, count: u64) {
        self.jobs
            .get_or_create(&OutcomeLabels {
                queue: queue.as_str(),
                outcome: outcome.as_str(),
            })
            .inc_by(count);
    }

    /// Records one run of a job of `queue`.
    pub fn ran(&self, queue: Queue, elapsed: Duration) {
        self.durations
            .get_or_create(&QueueLabels {
                queue: queue.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Publishes `queue`'s `counts`.
    pub fn depths(&self, queue: Queue, counts: &QueueCounts) {
        let states = [
            ("waiting", counts.waiting),
            ("active", counts.active),
            ("delayed", counts.delayed),
            ("completed", counts.completed),
            ("failed", counts.failed),
            ("dead", counts.dead),
        ];
        for (state, value) in states {
            self.depth
                .get_or_create(&StateLabels {
                    queue: queue.as_str(),
                    state,
                })
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
        self.oldest
            .get_or_create(&QueueLabels {
                queue: queue.as_str(),
            })
            .set(counts.oldest_waiting_ms as f64 / 1000.0);
    }
}
