//! Webhook notifications of the task tracker's changes. Each write stores one `webhook` job for
//! the notifications queue in its own transaction, beside its edge purges (the outbox,
//! [`crate::app::outbox`]), carrying the whole event:
//!
//! ```json
//! {"id": "evt_…", "type": "task.updated", "occurred_at": "2026-12-08T10:00:00.000Z", "data": {…}}
//! ```
//!
//! The job commits with the change (so a change acknowledged is a change notified, at least
//! once) and is queued right after. `id` is unique per event, for receivers to drop repeated
//! deliveries; [`crate::app::jobs`] delivers the jobs, signed.

use serde::Serialize;

use crate::app::model::{now_ms, rfc3339};
use crate::core::jobs::{job, NewJob, Queue};

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

/// Makes notifications; the application holds one only when a webhook is configured.
#[derive(Debug, Clone, Copy)]
pub struct Notifier;

impl Notifier {
    /// The delivery job of `kind` about `data`; `None` (logged) when `data` does not serialize.
    pub fn job(&self, kind: EventType, data: &impl Serialize) -> Option<NewJob> {
        event_job(kind, data)
            .inspect_err(|error| {
                tracing::error!(event = kind.as_str(), %error, "notification not serializable");
            })
            .ok()
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
