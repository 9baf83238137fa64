//! The audit log: appended by every write, listed newest first with keyset pagination, exported
//! whole as a stream that reads one batch at a time (constant memory, paced by the client), and
//! bulk-inserted in batches.

use std::io;

use bytes::Bytes;
use futures::Stream;
use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Sql, Store, StoreError};
use crate::app::model::{rfc3339, Event};
use crate::core::database::DbError;

/// Rows read per query while exporting.
const EXPORT_BATCH: i64 = 2000;
/// Rows written per statement by a bulk insert.
const INSERT_BATCH: usize = 500;

/// An audit-log entry to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// When it happened (ms); `None` means now.
    pub occurred_at: Option<i64>,
    /// Who did it.
    pub actor: String,
    /// What they did.
    pub action: String,
    /// What kind of thing.
    pub entity_type: String,
    /// Which one.
    pub entity_id: String,
    /// Details: a JSON object.
    pub data: serde_json::Value,
}

impl NewEvent {
    /// `actor` did `action` to the `entity_type` with id `entity_id`, now.
    pub fn about(actor: &str, action: &str, entity_type: &str, entity_id: impl ToString) -> Self {
        Self {
            occurred_at: None,
            actor: actor.to_owned(),
            action: action.to_owned(),
            entity_type: entity_type.to_owned(),
            entity_id: entity_id.to_string(),
            data: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// With details `data`.
    #[must_use]
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }
}

/// Which events a list or an export covers.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// At or after this time (ms).
    pub from: Option<i64>,
    /// Before this time (ms).
    pub to: Option<i64>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this kind of entity.
    pub entity_type: Option<String>,
    /// Only this entity (with `entity_type`).
    pub entity_id: Option<String>,
}

/// One page of events, newest first.
#[derive(Debug)]
pub struct EventPage {
    /// The events.
    pub events: Vec<Event>,
    /// The position `(occurred_at, id)` after the last one, when more follow.
    pub next: Option<(i64, i64)>,
}

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line.
    Ndjson,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON array.
    Json,
}

impl ExportFormat {
    /// The format named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ndjson" => Some(Self::Ndjson),
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    /// The response's media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Ndjson => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
        }
    }

    /// The file extension offered for downloads.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Ndjson => "ndjson",
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }
}

/// What a bulk insert did: rows written, and the input positions the database refused.
#[derive(Debug, Default)]
pub struct BulkOutcome {
    /// Rows written.
    pub inserted: usize,
    /// Positions (in the input) of rows the database refused, with the reason.
    pub failed: Vec<(usize, String)>,
}

const EVENT_COLUMNS: &str = "id, occurred_at, actor, action, entity_type, entity_id, data";

fn push_filter(sql: &mut Sql, filter: &EventFilter) {
    sql.push(" WHERE 1 = 1");
    if let Some(from) = filter.from {
        sql.push(" AND occurred_at >= ").bind(from);
    }
    if let Some(to) = filter.to {
        sql.push(" AND occurred_at < ").bind(to);
    }
    if let Some(actor) = &filter.actor {
        sql.push(" AND actor = ").bind(actor.as_str());
    }
    if let Some(entity_type) = &filter.entity_type {
        sql.push(" AND entity_type = ").bind(entity_type.as_str());
    }
    if let Some(entity_id) = &filter.entity_id {
        sql.push(" AND entity_id = ").bind(entity_id.as_str());
    }
}

/// An event row borrowed for serialization.
#[derive(Debug, Serialize)]
struct EventLine<'a> {
    id: i64,
    occurred_at: &'a str,
    actor: &'a str,
    action: &'a str,
    entity_type: &'a str,
    entity_id: &'a str,
    data: &'a RawValue,
}

/// The columns of one event row.
struct EventColumns {
    id: i64,
    occurred_at: i64,
    actor: String,
    action: String,
    entity_type: String,
    entity_id: String,
    data: String,
}

fn columns(row: &AnyRow) -> Result<EventColumns, sqlx::Error> {
    Ok(EventColumns {
        id: row.try_get(0)?,
        occurred_at: row.try_get(1)?,
        actor: row.try_get(2)?,
        action: row.try_get(3)?,
        entity_type: row.try_get(4)?,
        entity_id: row.try_get(5)?,
        data: row.try_get(6)?,
    })
}

fn raw_data(data: &str) -> Box<RawValue> {
    RawValue::from_string(data.to_owned()).unwrap_or_else(|_| {
        RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| unreachable!("valid JSON"))
    })
}

/// Serializes `rows` in `format` onto `out`; `first` says whether they open the export.
fn write_batch(
    out: &mut Vec<u8>,
    rows: &[EventColumns],
    format: ExportFormat,
    first: bool,
) -> Result<(), io::Error> {
    if format == ExportFormat::Csv {
        let mut writer = csv::WriterBuilder::new().from_writer(&mut *out);
        if first {
            writer.write_record(EVENT_COLUMNS.split(", "))?;
        }
        for row in rows {
            writer.write_record([
                row.id.to_string().as_str(),
                &rfc3339(row.occurred_at),
                &row.actor,
                &row.action,
                &row.entity_type,
                &row.entity_id,
                &row.data,
            ])?;
        }
        return writer.flush();
    }
    for (i, row) in rows.iter().enumerate() {
        if format == ExportFormat::Json && !(first && i == 0) {
            out.push(b',');
        }
        let data = raw_data(&row.data);
        let occurred_at = rfc3339(row.occurred_at);
        let line = EventLine {
            id: row.id,
            occurred_at: &occurred_at,
            actor: &row.actor,
            action: &row.action,
            entity_type: &row.entity_type,
            entity_id: &row.entity_id,
            data: &data,
        };
        serde_json::to_writer(&mut *out, &line)?;
        if format == ExportFormat::Ndjson {
            out.push(b'\n');
        }
    }
    Ok(())
}

/// Where an export stands between batches.
struct Export {
    store: Store,
    filter: EventFilter,
    format: ExportFormat,
    after: Option<(i64, i64)>,
    first: bool,
    done: bool,
}

impl Export {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, io::Error> {
        if self.done {
            return Ok(None);
        }
        let rows = self
            .store
            .event_batch(&self.filter, self.after, EXPORT_BATCH)
            .await
            .map_err(io::Error::other)?;
        let mut out = Vec::with_capacity(rows.len() * 160 + 2);
        if self.first && self.format == ExportFormat::Json {
            out.push(b'[');
        }
        write_batch(&mut out, &rows, self.format, self.first)?;
        self.first = false;
        self.after = rows.last().map(|row| (row.occurred_at, row.id));
        if rows.len() < EXPORT_BATCH as usize {
            self.done = true;
            if self.format == ExportFormat::Json {
                out.push(b']');
            }
        }
        Ok(Some(Bytes::from(out)))
    }
}

impl Store {
    /// Up to `limit` events matching `filter`, newest first, before position `before`.
    pub async fn events(
        &self,
        filter: &EventFilter,
        before: Option<(i64, i64)>,
        limit: u32,
    ) -> Result<EventPage, StoreError> {
        let db = self.database();
        let mut sql = Sql::new(&format!("SELECT {EVENT_COLUMNS} FROM events"));
        push_filter(&mut sql, filter);
        if let Some((at, id)) = before {
            sql.push(" AND (occurred_at < ")
                .bind(at)
                .push(" OR (occurred_at = ")
                .bind(at)
                .push(" AND id < ")
                .bind(id)
                .push("))");
        }
        sql.push(" ORDER BY occurred_at DESC, id DESC LIMIT ")
            .bind(i64::from(limit) + 1);
        let rows = db
            .observe("select", "events", sql.query().fetch_all(db.pool()))
            .await?;
        let mut rows = rows
            .iter()
            .map(columns)
            .collect::<Result<Vec<_>, _>>()
            .map_err(DbError::from)?;
        let mut next = None;
        if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            next = rows.last().map(|row| (row.occurred_at, row.id));
        }
        let events = rows
            .into_iter()
            .map(|row| Event {
                id: row.id,
                occurred_at: rfc3339(row.occurred_at),
                data: raw_data(&row.data),
                actor: row.actor,
                action: row.action,
                entity_type: row.entity_type,
                entity_id: row.entity_id,
            })
            .collect();
        Ok(EventPage { events, next })
    }

    /// Oldest-first events matching `filter` after position `after`.
    async fn event_batch(
        &self,
        filter: &EventFilter,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<Vec<EventColumns>, DbError> {
        let db = self.database();
        let mut sql = Sql::new(&format!("SELECT {EVENT_COLUMNS} FROM events"));
        push_filter(&mut sql, filter);
        if let Some((at, id)) = after {
            sql.push(" AND (occurred_at > ")
                .bind(at)
                .push(" OR (occurred_at = ")
                .bind(at)
                .push(" AND id > ")
                .bind(id)
                .push("))");
        }
        sql.push(" ORDER BY occurred_at ASC, id ASC LIMIT ")
            .bind(limit);
        let rows = db
            .observe("export", "events", sql.query().fetch_all(db.pool()))
            .await?;
        Ok(rows.iter().map(columns).collect::<Result<Vec<_>, _>>()?)
    }

    /// Every event matching `filter`, oldest first, as a stream of `format` chunks. One batch is
    /// read when the client has taken the previous one, so memory stays constant.
    pub fn export_events(
        &self,
        filter: EventFilter,
        format: ExportFormat,
    ) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
        let export = Export {
            store: self.clone(),
            filter,
            format,
            after: None,
            first: true,
            done: false,
        };
        futures::stream::try_unfold(export, |mut export| async move {
            Ok(export.next_chunk().await?.map(|chunk| (chunk, export)))
        })
    }

    /// Inserts `events` in batches, each batch in one transaction; a batch the database refuses
    /// is retried row by row, so that only the rows at fault are reported.
    pub async fn insert_events(&self, events: &[(usize, NewEvent)], now: i64) -> BulkOutcome {
        let mut outcome = BulkOutcome::default();
        for batch in events.chunks(INSERT_BATCH) {
            match self.insert_batch(batch, now).await {
                Ok(()) => outcome.inserted += batch.len(),
                Err(_) => {
                    for row in batch {
                        match self.insert_batch(std::slice::from_ref(row), now).await {
                            Ok(()) => outcome.inserted += 1,
                            Err(error) => outcome.failed.push((row.0, error.to_string())),
                        }
                    }
                }
            }
        }
        outcome
    }

    async fn insert_batch(&self, batch: &[(usize, NewEvent)], now: i64) -> Result<(), DbError> {
        let mut sql = Sql::new(
            "INSERT INTO events (occurred_at, actor, action, entity_type, entity_id, data) VALUES ",
        );
        for (i, (_, event)) in batch.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind(event.occurred_at.unwrap_or(now))
                .push(", ")
                .bind(event.actor.as_str())
                .push(", ")
                .bind(event.action.as_str())
                .push(", ")
                .bind(event.entity_type.as_str())
                .push(", ")
                .bind(event.entity_id.as_str())
                .push(", ")
                .bind(event.data.to_string())
                .push(")");
        }
        let db = self.database();
        db.observe("insert", "events", sql.query().execute(db.pool()))
            .await?;
        Ok(())
    }
}
