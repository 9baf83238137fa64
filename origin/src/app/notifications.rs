//! Webhook notifications of the task tracker's changes. After a write commits, its handler
//! enqueues one `webhook` job on the notifications queue, in the same call to the job store as
//! the write's edge purges, carrying the whole event:
//!
//! ```json
//! {"id": "evt_…", "type": "task.updated", "occurred_at": "2026-12-08T10:00:00.000Z", "data": {…}}
//! ```
//!
//! The job is stored before the request answers (so a change acknowledged is a change
//! notified, at least once), but a job store that refuses it never fails the write: the
//! refusal is logged. `id` is unique per event, for receivers to drop repeated deliveries;
//! [`crate::app::jobs`] delivers the jobs, signed.

use serde::Serialize;

use crate::app::model::{now_ms, rfc3339};
use crate::core::jobs::{job, Jobs, NewJob, Queue};

/// The kind of the delivery jobs.
pub const WEBHOOK_JOB: &str = "webhook";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// A task was created; `data` is the task.
    TaskCreated,
    /// A task was changed; `data` is the task as it is now.
    TaskUpdated,
    /// A task was deleted; `data` is `{"id": …}`.
    TaskDeleted,
    /// A comment was added; `data` is the comment.
    CommentCreated,
}

impl EventType {
    /// The event's `type`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TaskCreated => "task.created",
            Self::TaskUpdated => "task.updated",
            Self::TaskDeleted => "task.deleted",
            Self::CommentCreated => "comment.created",
        }
    }
}

/// Enqueues notifications; the application holds one only when a webhook is configured.
#[derive(Debug, Clone)]
pub struct Notifier {
    jobs: Jobs,
}

impl Notifier {
    /// Notifications enqueued on `jobs`.
    pub fn new(jobs: Jobs) -> Self {
        Self { jobs }
    }

    /// The delivery job of `kind` about `data`; `None` (logged) when `data` does not serialize.
    pub fn job(&self, kind: EventType, data: &impl Serialize) -> Option<NewJob> {
        event_job(kind, data)
            .inspect_err(|error| {
                tracing::error!(event = kind.as_str(), %error, "notification not serializable");
            })
            .ok()
    }

    /// The job system the notifications go to.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// Enqueues `jobs`, waiting until they are stored; a refusal is logged, never returned.
    pub async fn enqueue(&self, jobs: &[NewJob]) {
        if let Err(error) = self.jobs.enqueue_all(jobs).await {
            tracing::error!(jobs = jobs.len(), %error, "notifications not enqueued");
        }
    }
}

/// An event as its receivers get it.
#[derive(Serialize)]
struct Event<'a, T> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    occurred_at: String,
    data: &'a T,
}

/// The delivery job of a new event `kind` about `data`.
pub fn event_job(kind: EventType, data: &impl Serialize) -> Result<NewJob, serde_json::Error> {
    let event = Event {
        id: format!("evt_{}", job::new_id()),
        kind: kind.as_str(),
        occurred_at: rfc3339(now_ms()),
        data,
    };
    NewJob::serialized(Queue::Notifications, WEBHOOK_JOB, &event)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_carry_a_unique_id_their_type_and_time() {
        let first = event_job(EventType::TaskDeleted, &json!({ "id": 7 })).expect("json");
        let second = event_job(EventType::TaskDeleted, &json!({ "id": 7 })).expect("json");
        let (first_payload, second_payload) = (first.payload.value(), second.payload.value());
        assert_eq!(
            (first.queue, first.kind.as_str()),
            (Queue::Notifications, "webhook")
        );
        assert_eq!(first_payload["type"], "task.deleted");
        assert_eq!(first_payload["data"], json!({ "id": 7 }));
        let id = first_payload["id"].as_str().expect("an id");
        assert!(id.starts_with("evt_"), "{id}");
        assert_ne!(first_payload["id"], second_payload["id"]);
        let at = first_payload["occurred_at"].as_str().expect("a time");
        assert!(crate::app::model::parse_rfc3339(at).is_some(), "{at}");
    }
}
