//! The task tracker's resources as clients see them, and the timestamps they carry.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not started.
    Todo,
    /// Someone is on it.
    InProgress,
    /// Finished.
    Done,
}

/// How urgent a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Whenever.
    Low,
    /// Soon.
    Medium,
    /// Before other work.
    High,
    /// Now.
    Urgent,
}

impl Status {
    /// Every status, board order.
    pub const ALL: [Self; 3] = [Self::Todo, Self::InProgress, Self::Done];

    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Todo => "todo",
            Self::InProgress => "in_progress",
            Self::Done => "done",
        }
    }

    /// The status named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl Priority {
    /// Every priority, least urgent first.
    pub const ALL: [Self; 4] = [Self::Low, Self::Medium, Self::High, Self::Urgent];

    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }

    /// The priority named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

/// A task.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    /// Its id.
    pub id: i64,
    /// One line.
    pub title: String,
    /// Free text.
    pub description: String,
    /// Where it stands.
    pub status: Status,
    /// How urgent it is.
    pub priority: Priority,
    /// The user working on it.
    pub assignee_id: Option<i64>,
    /// Labels, sorted.
    pub tags: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A task with what its page shows.
#[derive(Debug, Clone, Serialize)]
pub struct TaskDetail {
    /// The task.
    #[serde(flatten)]
    pub task: Task,
    /// How many comments it has.
    pub comment_count: i64,
    /// Its images.
    pub attachments: Vec<Attachment>,
}

/// An image attached to a task.
#[derive(Debug, Clone, Serialize)]
pub struct Attachment {
    /// Its id.
    pub id: i64,
    /// The task it belongs to.
    pub task_id: i64,
    /// Where the original is served: `/images/{key}`.
    pub url: String,
    /// The uploaded file name, if any.
    pub filename: String,
    /// `image/jpeg`, `image/png`, `image/gif` or `image/webp`.
    pub content_type: String,
    /// Pixels.
    pub width: i64,
    /// Pixels.
    pub height: i64,
    /// RFC 3339.
    pub created_at: String,
}

/// A comment on a task.
#[derive(Debug, Clone, Serialize)]
pub struct Comment {
    /// Its id.
    pub id: i64,
    /// The task it is on.
    pub task_id: i64,
    /// Who wrote it.
    pub author_id: i64,
    /// The author's display name.
    pub author_name: String,
    /// The text.
    pub body: String,
    /// RFC 3339.
    pub created_at: String,
}

/// Where the background fetch of a link's page stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    /// Waiting for the crawler (or between its retries).
    Pending,
    /// Fetched: the title is the page's.
    Fetched,
    /// Not fetched, for good: `error` says why.
    Failed,
}

impl LinkStatus {
    /// Every status.
    pub const ALL: [Self; 3] = [Self::Pending, Self::Fetched, Self::Failed];

    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Fetched => "fetched",
            Self::Failed => "failed",
        }
    }

    /// The status named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A link attached to a task, titled from the linked page once the crawler fetched it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskLink {
    /// Its id.
    pub id: i64,
    /// The task it is on.
    pub task_id: i64,
    /// The linked URL.
    pub url: String,
    /// The linked page's `<title>`, when it was fetched and had one.
    pub title: Option<String>,
    /// Where the fetch stands.
    pub status: LinkStatus,
    /// Why the fetch failed, when it did.
    pub error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// When the page was fetched (or given up on), RFC 3339.
    pub fetched_at: Option<String>,
}

/// One audit-log entry.
#[derive(Debug, Serialize)]
pub struct Event {
    /// Its id, increasing.
    pub id: i64,
    /// RFC 3339.
    pub occurred_at: String,
    /// Who did it.
    pub actor: String,
    /// What they did: `create`, `update`, `delete`, …
    pub action: String,
    /// What kind of thing: `task`, `comment`, `attachment`, …
    pub entity_type: String,
    /// Which one.
    pub entity_id: String,
    /// Details, as stored (a JSON object).
    pub data: Box<RawValue>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

/// `ms` as RFC 3339 in UTC with milliseconds, e.g. `2026-11-22T08:30:00.000Z`.
pub fn rfc3339(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    match OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(at) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        ),
        Err(_) => "1970-01-01T00:00:00.000Z".to_owned(),
    }
}

/// Milliseconds since the epoch from RFC 3339 text (any offset), or `None`.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        let ms = 1_795_336_200_123;
        let text = rfc3339(ms);
        assert_eq!(text, "2026-11-22T08:30:00.123Z");
        assert_eq!(parse_rfc3339(&text), Some(ms));
        assert_eq!(
            parse_rfc3339("2026-11-22T09:30:00.123+01:00"),
            Some(ms),
            "offsets are honoured"
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
