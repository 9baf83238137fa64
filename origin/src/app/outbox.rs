//! The outbox relay: queues the jobs a write stored in its own transaction (its webhook
//! notification, its edge purges; see [`crate::app::store`]'s outbox) once the write commits,
//! off the request's path, and sweeps up rows that an instance left behind.
//!
//! - A committed write hands its row to this instance's relay, which waits [`RELAY_LINGER`] for
//!   the rows of the writes that follow, queues the jobs of all of them in one call, and
//!   deletes those rows later in one statement ([`DELETE_AFTER`], or at once past
//!   [`DELETE_BATCH`] rows). Batches cost the requests beside them less than a call per write:
//!   one wake-up, one Redis call and one delete for many writes.
//! - Jobs go where the job system keeps them, never to its in-process buffer for when Redis
//!   is unreachable: while Redis is out they stay in the outbox, in the database.
//! - Every [`SWEEP_EVERY`], rows past their lease ([`crate::app::store::LEASE_MS`], 10 s
//!   after the write) are taken by whichever instance sweeps first, leased again, queued and
//!   deleted: those of an instance that stopped (or was killed) between its commit and its
//!   relay, and those the queues refused. A row handed to the relay after its lease ended is
//!   left to the sweep.
//!
//! A job is thus queued at least once: an instance killed after queuing a row's jobs and
//! before deleting it queues them again through the sweep (webhook receivers drop the repeat by
//! its event `id`; a purge made twice is harmless).

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{interval, sleep_until, Instant, MissedTickBehavior};

use super::model::now_ms;
use super::store::{Outboxed, Store};
use crate::core::jobs::Jobs;

/// How long queued rows wait to be deleted together.
pub const DELETE_AFTER: Duration = Duration::from_secs(1);
/// Queued rows deleted at once without waiting.
pub const DELETE_BATCH: usize = 1024;
/// How long the relay waits, once a row arrives, for others to queue with it.
pub const RELAY_LINGER: Duration = Duration::from_millis(25);
/// Rows queued in one call at most.
const RELAY_BATCH: usize = 128;
/// How often each instance looks for rows left behind.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Rows one sweep takes at most (it runs again at once while it finds a full batch).
const SWEEP_BATCH: i64 = 100;

/// This instance's relay: where committed writes hand their rows.
#[derive(Debug, Clone)]
pub struct Outbox {
    rows: mpsc::UnboundedSender<Outboxed>,
}

/// The running relay, to stop.
#[derive(Debug)]
pub struct Relay {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Outbox {
    /// Starts the relay from `store`'s outbox to `jobs`; it sweeps at once.
    pub fn start(store: Store, jobs: Jobs) -> (Self, Relay) {
        let (rows, received) = mpsc::unbounded_channel();
        let (stop, stopped) = watch::channel(false);
        let relaying = Relaying {
            store,
            jobs,
            queued: Vec::new(),
            delete_at: None,
        };
        let task = tokio::spawn(relaying.run(received, stopped));
        (Self { rows }, Relay { stop, task })
    }

    /// Queues `row`'s jobs soon, without waiting; a row the relay cannot take (it stopped)
    /// stays for the sweep of another instance, or of this one's next start.
    pub fn relay(&self, row: Option<Outboxed>) {
        if let Some(row) = row {
            let _ = self.rows.send(row);
        }
    }
}

impl Relay {
    /// Relays the rows handed over so far and deletes those queued, within `limit`.
    pub async fn stop(mut self, limit: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(limit, &mut self.task).await.is_err() {
            self.task.abort();
            tracing::warn!("outbox relay stopped before it was done: rows left for the sweep");
        }
    }
}

/// The relay's state.
struct Relaying {
    store: Store,
    jobs: Jobs,
    /// Rows whose jobs are queued, to delete.
    queued: Vec<i64>,
    /// When to delete them.
    delete_at: Option<Instant>,
}

impl Relaying {
    async fn run(
        mut self,
        mut rows: mpsc::UnboundedReceiver<Outboxed>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let mut sweeps = interval(SWEEP_EVERY);
        sweeps.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let delete_at = self.delete_at;
            tokio::select! {
                Some(row) = rows.recv() => self.relay(row, &mut rows).await,
                () = sleep_until(delete_at.unwrap_or_else(Instant::now)), if delete_at.is_some() => {
                    self.delete().await;
                }
                _ = sweeps.tick() => {
                    self.delete().await;
                    self.sweep().await;
                }
                _ = stopped.changed() => break,
            }
        }
        rows.close();
        while let Some(row) = rows.recv().await {
            self.relay(row, &mut rows).await;
        }
        self.delete().await;
    }

    /// Queues the jobs of `first` and of the rows that arrive with it, in one call.
    async fn relay(&mut self, first: Outboxed, rows: &mut mpsc::UnboundedReceiver<Outboxed>) {
        // Lingering lets the writes of the next moments join this call: one wake-up and one
        // Redis call per batch rather than per write, beside the requests on the same cores.
        if rows.is_empty() {
            tokio::time::sleep(RELAY_LINGER).await;
        }
        let mut batch = vec![first];
        while batch.len() < RELAY_BATCH {
            match rows.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        // A row past its lease belongs to the sweep, which may be queuing it already.
        let now = now_ms();
        batch.retain(|row| row.due_at > now);
        if batch.is_empty() {
            return;
        }
        let jobs: Vec<_> = batch
            .iter()
            .flat_map(|row| row.jobs.iter().cloned())
            .collect();
        if let Err(error) = self.jobs.enqueue_kept(&jobs).await {
            tracing::warn!(
                %error, rows = batch.len(),
                "a write's jobs were not queued: they stay in the outbox for the sweep"
            );
            return;
        }
        self.queued.extend(batch.iter().map(|row| row.id));
        if self.queued.len() >= DELETE_BATCH {
            self.delete().await;
        } else if self.delete_at.is_none() {
            self.delete_at = Some(Instant::now() + DELETE_AFTER);
        }
    }

    /// Deletes the rows whose jobs are queued; on failure they are tried again later.
    async fn delete(&mut self) {
        self.delete_at = None;
        if self.queued.is_empty() {
            return;
        }
        match self.store.outbox_done(&self.queued).await {
            Ok(_) => self.queued.clear(),
            Err(error) => {
                tracing::warn!(%error, rows = self.queued.len(), "queued outbox rows not deleted yet");
                self.delete_at = Some(Instant::now() + SWEEP_EVERY);
            }
        }
    }

    /// Queues and deletes rows left behind, a batch at a time.
    async fn sweep(&self) {
        loop {
            match self
                .store
                .sweep_outbox(now_ms(), SWEEP_BATCH, &self.jobs)
                .await
            {
                Ok(0) => return,
                Ok(swept) => {
                    tracing::info!(rows = swept, "outbox rows left behind were queued");
                    if swept < SWEEP_BATCH as usize {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "outbox sweep failed: it runs again shortly");
                    return;
                }
            }
        }
    }
}
