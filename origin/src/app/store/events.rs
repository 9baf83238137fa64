//! The audit log: appended by every write, listed newest first with keyset pagination, exported
//! whole as a stream that reads one batch at a time (constant memory, paced by the client), and
//! bulk-inserted in batches.

use std::io;

use bytes::Bytes;
use futures::Stream;
use serde_json::value::RawValue;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Sql, Store, StoreError};
use crate::app::model::{rfc3339, Event};
use crate::core::dependencies::database::{Backend, DbError};

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

/// `text` as an SQL expression in CSV form: always quoted, quotes doubled (RFC 4180).
fn csv_field(text: &str) -> String {
    format!("'\"' || REPLACE({text}, '\"', '\"\"') || '\"'")
}

/// The SQL expression rendering one event as an export line, so that the database does the
/// formatting and each row crosses the driver as one string. Times are RFC 3339 in UTC with
/// milliseconds, exactly as the API writes them.
fn line_expression(backend: Backend, format: ExportFormat) -> String {
    let time = match backend {
        Backend::Sqlite => {
            "strftime('%Y-%m-%dT%H:%M:%S', occurred_at / 1000, 'unixepoch') || '.' || \
             substr('00' || (occurred_at % 1000), -3) || 'Z'"
        }
        Backend::Postgres => {
            "to_char(to_timestamp(occurred_at / 1000) AT TIME ZONE 'UTC', \
             'YYYY-MM-DD\"T\"HH24:MI:SS') || '.' || lpad(CAST(occurred_at % 1000 AS TEXT), 3, '0') || 'Z'"
        }
    };
    match (format, backend) {
        (ExportFormat::Csv, _) => [
            "CAST(id AS TEXT)".to_owned(),
            format!("({time})"),
            csv_field("actor"),
            csv_field("action"),
            csv_field("entity_type"),
            csv_field("entity_id"),
            csv_field("data"),
        ]
        .join(" || ',' || "),
        (_, Backend::Sqlite) => format!(
            "json_object('id', id, 'occurred_at', {time}, 'actor', actor, 'action', action, \
             'entity_type', entity_type, 'entity_id', entity_id, 'data', json(data))"
        ),
        (_, Backend::Postgres) => format!(
            "CAST(json_build_object('id', id, 'occurred_at', {time}, 'actor', actor, \
             'action', action, 'entity_type', entity_type, 'entity_id', entity_id, \
             'data', CAST(data AS json)) AS TEXT)"
        ),
    }
}

impl ExportFormat {
    /// What separates two lines.
    fn separator(self) -> &'static str {
        match self {
            Self::Ndjson => "\n",
            Self::Csv => "\r\n",
            Self::Json => ",",
        }
    }
}

/// One batch of an export: its lines joined by the database, and where it ended.
struct ExportBatch {
    rows: i64,
    text: Option<String>,
    /// The position of the batch's last row, when a full batch was read.
    last: Option<(i64, i64)>,
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
        let batch = self
            .store
            .export_batch(&self.filter, self.format, self.after, EXPORT_BATCH)
            .await
            .map_err(io::Error::other)?;
        let text = batch.text.unwrap_or_default();
        let mut out = Vec::with_capacity(text.len() + 64);
        match self.format {
            ExportFormat::Json if self.first => out.push(b'['),
            ExportFormat::Json if batch.rows > 0 => out.push(b','),
            ExportFormat::Csv if self.first => {
                out.extend_from_slice(EVENT_COLUMNS.replace(' ', "").as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            _ => {}
        }
        out.extend_from_slice(text.as_bytes());
        if batch.rows > 0 && self.format != ExportFormat::Json {
            out.extend_from_slice(self.format.separator().as_bytes());
        }
        self.first = false;
        self.after = batch.last;
        if batch.last.is_none() {
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
            // A row-value comparison, which both databases answer with an index range scan.
            sql.push(" AND (occurred_at, id) < (")
                .bind(at)
                .push(", ")
                .bind(id)
                .push(")");
        }
        sql.push(" ORDER BY occurred_at DESC, id DESC LIMIT ")
            .bind(i64::from(limit) + 1);
        let rows = db
            .observe("select", "events", async {
                let mut connection = db.acquire().await?;
                sql.query().fetch_all(&mut *connection).await
            })
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

    /// The next `limit` events matching `filter` after position `after`, oldest first, rendered
    /// and joined by the database: one row crosses the driver per batch, not one per event.
    async fn export_batch(
        &self,
        filter: &EventFilter,
        format: ExportFormat,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<ExportBatch, DbError> {
        let db = self.database();
        let push_range = |sql: &mut Sql| {
            push_filter(sql, filter);
            if let Some((at, id)) = after {
                sql.push(" AND (occurred_at, id) > (")
                    .bind(at)
                    .push(", ")
                    .bind(id)
                    .push(")");
            }
        };
        let mut bound = Sql::new("SELECT occurred_at, id FROM events");
        push_range(&mut bound);
        bound
            .push(" ORDER BY occurred_at, id LIMIT 1 OFFSET ")
            .bind(limit - 1);
        let last = db
            .observe("export", "events", async {
                let mut connection = db.acquire().await?;
                bound.query().fetch_optional(&mut *connection).await
            })
            .await?
            .map(|row| Ok::<_, sqlx::Error>((row.try_get(0)?, row.try_get(1)?)))
            .transpose()?;

        let aggregate = match db.backend() {
            Backend::Sqlite => "group_concat",
            Backend::Postgres => "string_agg",
        };
        let line = line_expression(db.backend(), format);
        let mut sql = Sql::new(&format!("SELECT COUNT(*), {aggregate}(line, "));
        sql.bind(format.separator()).push(&format!(
            " ORDER BY occurred_at, id) FROM (SELECT occurred_at, id, {line} AS line FROM events"
        ));
        push_range(&mut sql);
        if let Some((at, id)) = last {
            sql.push(" AND (occurred_at, id) <= (")
                .bind(at)
                .push(", ")
                .bind(id)
                .push(")");
        }
        sql.push(") AS batch");
        let row = db
            .observe("export", "events", async {
                let mut connection = db.acquire().await?;
                sql.query().fetch_one(&mut *connection).await
            })
            .await?;
        Ok(ExportBatch {
            rows: row.try_get(0)?,
            text: row.try_get(1)?,
            last,
        })
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
        db.observe("insert", "events", async {
            let mut connection = db.acquire().await?;
            sql.query().execute(&mut *connection).await
        })
        .await?;
        Ok(())
    }
}
