//! The in-process job store, for an origin without Redis: the same queues, retries, delays,
//! dead letters and pauses, held in memory. Jobs do not survive a restart and are not shared
//! between instances.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::job::{
    new_id, unix_ms, Enqueued, Job, JobState, NewJob, Queue, QueueCounts, Reserved, Retention,
};

/// One queue's jobs.
#[derive(Debug, Default)]
struct Lane {
    jobs: HashMap<String, Job>,
    /// Waiting ids with the time they became ready.
    waiting: VecDeque<(String, u64)>,
    /// Delayed ids by due time.
    delayed: BTreeMap<(u64, String), ()>,
    /// Idempotency key → waiting job.
    keys: HashMap<String, String>,
    active: u64,
    completed: VecDeque<(String, u64)>,
    failed: VecDeque<u64>,
    dead: Vec<String>,
    paused: bool,
}

/// The in-process store; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    lanes: Arc<Mutex<HashMap<Queue, Lane>>>,
    wake: Arc<HashMap<Queue, Notify>>,
    slots: Arc<Mutex<HashMap<(String, u64), ()>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            wake: Arc::new(Queue::ALL.into_iter().map(|q| (q, Notify::new())).collect()),
            ..Self::default()
        }
    }

    fn with_lane<T>(&self, queue: Queue, f: impl FnOnce(&mut Lane) -> T) -> T {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        f(lanes.entry(queue).or_default())
    }

    fn notify(&self, queue: Queue) {
        if let Some(notify) = self.wake.get(&queue) {
            notify.notify_waiters();
        }
    }

    /// Adds `jobs`.
    pub fn enqueue(&self, jobs: &[NewJob]) -> Vec<Enqueued> {
        let now = unix_ms();
        let results: Vec<Enqueued> = jobs.iter().map(|job| self.add(job, now)).collect();
        for job in jobs {
            self.notify(job.queue);
        }
        results
    }

    fn add(&self, new: &NewJob, now: u64) -> Enqueued {
        self.with_lane(new.queue, |lane| {
            if let Some(existing) = new.key.as_ref().and_then(|key| lane.keys.get(key)) {
                return Enqueued {
                    id: existing.clone(),
                    created: false,
                };
            }
            let id = new_id();
            let delayed = new.delay_ms > 0;
            lane.jobs.insert(
                id.clone(),
                Job {
                    id: id.clone(),
                    queue: new.queue,
                    kind: new.kind.clone(),
                    payload: new.payload.value(),
                    key: new.key.clone(),
                    attempts: 0,
                    enqueued_at_ms: now,
                    state: if delayed {
                        JobState::Delayed
                    } else {
                        JobState::Waiting
                    },
                    last_error: None,
                    trace: new.trace.clone(),
                },
            );
            if let Some(key) = &new.key {
                lane.keys.insert(key.clone(), id.clone());
            }
            if delayed {
                lane.delayed.insert((now + new.delay_ms, id.clone()), ());
            } else {
                lane.waiting.push_back((id.clone(), now));
            }
            Enqueued { id, created: true }
        })
    }

    /// Up to `max` jobs of `queue`, waiting up to `block` for one.
    pub async fn reserve(&self, queue: Queue, max: usize, block: Duration) -> Vec<Reserved> {
        let notified = self.wake.get(&queue).map(Notify::notified);
        let taken = self.take(queue, max);
        if !taken.is_empty() {
            return taken;
        }
        if let Some(notified) = notified {
            let _ = tokio::time::timeout(block, notified).await;
        }
        self.take(queue, max)
    }

    fn take(&self, queue: Queue, max: usize) -> Vec<Reserved> {
        self.with_lane(queue, |lane| {
            let mut taken = Vec::new();
            while taken.len() < max {
                let Some((id, _)) = lane.waiting.pop_front() else {
                    break;
                };
                let Some(job) = lane.jobs.get_mut(&id) else {
                    continue;
                };
                if let Some(key) = &job.key {
                    if lane.keys.get(key) == Some(&id) {
                        lane.keys.remove(key);
                    }
                }
                job.attempts += 1;
                job.state = JobState::Active;
                lane.active += 1;
                taken.push(Reserved {
                    job: job.clone(),
                    receipt: id,
                });
            }
            taken
        })
    }

    /// Records that `reserved` completed.
    pub fn complete(&self, reserved: &Reserved, retention: Retention) {
        self.with_lane(reserved.job.queue, |lane| {
            lane.active = lane.active.saturating_sub(1);
            if let Some(job) = lane.jobs.get_mut(&reserved.job.id) {
                job.state = JobState::Completed;
                lane.completed
                    .push_back((reserved.job.id.clone(), unix_ms()));
            }
            trim_lane(lane, retention);
        });
    }

    /// Records that `reserved` failed; `retry_at` delays it, `None` makes it dead.
    pub fn fail(&self, reserved: &Reserved, error: &str, retry_at: Option<u64>) {
        let id = reserved.job.id.clone();
        self.with_lane(reserved.job.queue, |lane| {
            lane.active = lane.active.saturating_sub(1);
            lane.failed.push_back(unix_ms());
            let Some(job) = lane.jobs.get_mut(&id) else {
                return;
            };
            job.last_error = Some(error.to_owned());
            match retry_at {
                Some(due) => {
                    job.state = JobState::Delayed;
                    lane.delayed.insert((due, id), ());
                }
                None => {
                    job.state = JobState::Dead;
                    lane.dead.push(id);
                }
            }
        });
    }

    /// Moves due delayed jobs of `queue` to waiting; returns when the next one is due.
    pub fn promote(&self, queue: Queue) -> Option<u64> {
        let now = unix_ms();
        let (moved, next) = self.with_lane(queue, |lane| {
            let mut moved = 0;
            while let Some(((due, _), _)) = lane.delayed.first_key_value() {
                if *due > now {
                    break;
                }
                let Some(((_, id), _)) = lane.delayed.pop_first() else {
                    break;
                };
                if let Some(job) = lane.jobs.get_mut(&id) {
                    job.state = JobState::Waiting;
                    lane.waiting.push_back((id, now));
                    moved += 1;
                }
            }
            (
                moved,
                lane.delayed.first_key_value().map(|((due, _), _)| *due),
            )
        });
        if moved > 0 {
            self.notify(queue);
        }
        next
    }

    /// How many jobs of `queue` are in each state.
    pub fn counts(&self, queue: Queue) -> QueueCounts {
        let now = unix_ms();
        self.with_lane(queue, |lane| QueueCounts {
            waiting: lane.waiting.len() as u64,
            active: lane.active,
            delayed: lane.delayed.len() as u64,
            completed: lane.completed.len() as u64,
            failed: lane.failed.len() as u64,
            dead: lane.dead.len() as u64,
            paused: lane.paused,
            oldest_waiting_ms: lane
                .waiting
                .front()
                .map_or(0, |(_, since)| now.saturating_sub(*since)),
        })
    }

    /// The job `id` of `queue`, if kept.
    pub fn get(&self, queue: Queue, id: &str) -> Option<Job> {
        self.with_lane(queue, |lane| lane.jobs.get(id).cloned())
    }

    /// Up to `limit` dead jobs, most recent first.
    pub fn dead(&self, queue: Queue, limit: usize) -> Vec<Job> {
        self.with_lane(queue, |lane| {
            lane.dead
                .iter()
                .rev()
                .take(limit)
                .filter_map(|id| lane.jobs.get(id).cloned())
                .collect()
        })
    }

    /// Sends dead job `id` back to waiting; `false` when it is not dead.
    pub fn retry_dead(&self, queue: Queue, id: &str) -> bool {
        let moved = self.with_lane(queue, |lane| {
            let Some(position) = lane.dead.iter().position(|dead| dead == id) else {
                return false;
            };
            lane.dead.remove(position);
            if let Some(job) = lane.jobs.get_mut(id) {
                job.attempts = 0;
                job.state = JobState::Waiting;
                lane.waiting.push_back((id.to_owned(), unix_ms()));
            }
            true
        });
        if moved {
            self.notify(queue);
        }
        moved
    }

    /// Deletes dead job `id`; `false` when it is not dead.
    pub fn delete_dead(&self, queue: Queue, id: &str) -> bool {
        self.with_lane(queue, |lane| {
            let Some(position) = lane.dead.iter().position(|dead| dead == id) else {
                return false;
            };
            lane.dead.remove(position);
            lane.jobs.remove(id);
            true
        })
    }

    /// Pauses or resumes `queue`.
    pub fn set_paused(&self, queue: Queue, paused: bool) {
        self.with_lane(queue, |lane| lane.paused = paused);
        self.notify(queue);
    }

    /// Whether `queue` is paused.
    pub fn is_paused(&self, queue: Queue) -> bool {
        self.with_lane(queue, |lane| lane.paused)
    }

    /// Drops completed and failed records beyond `retention`; returns how many.
    pub fn trim(&self, queue: Queue, retention: Retention) -> u64 {
        self.with_lane(queue, |lane| trim_lane(lane, retention))
    }

    /// Claims schedule `name`'s run at `slot`; `false` when already claimed.
    pub fn claim_slot(&self, name: &str, slot: u64) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|(_, s), _| s + 172_800 > slot);
        slots.insert((name.to_owned(), slot), ()).is_none()
    }
}

fn trim_lane(lane: &mut Lane, retention: Retention) -> u64 {
    let cutoff =
        unix_ms().saturating_sub(u64::try_from(retention.keep_for.as_millis()).unwrap_or(0));
    let keep = usize::try_from(retention.keep_count).unwrap_or(usize::MAX);
    let mut removed = 0;
    while let Some((id, at)) = lane.completed.front() {
        if *at >= cutoff && lane.completed.len() <= keep {
            break;
        }
        lane.jobs.remove(id);
        lane.completed.pop_front();
        removed += 1;
    }
    while let Some(at) = lane.failed.front() {
        if *at >= cutoff && lane.failed.len() <= keep {
            break;
        }
        lane.failed.pop_front();
        removed += 1;
    }
    removed
}
