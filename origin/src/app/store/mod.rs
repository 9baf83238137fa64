//! The task tracker's data access: every query the application runs, written once for SQLite
//! and PostgreSQL, each counted and bounded by [`Database::observe`].

mod comments;
mod events;
mod images;
mod links;
mod outbox;
mod retention;
pub mod seed;
mod task_query;
mod task_stats;
mod tasks;

use sqlx::any::AnyArguments;
use sqlx::migrate::Migrator;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AssertSqlSafe};

use crate::core::dependencies::database::{Database, DbError};
use crate::core::jobs::NewJob;

pub use comments::{CommentPage, NewComment};
pub use events::{BulkOutcome, EventFilter, EventPage, ExportFormat, NewEvent};
pub use images::{content_key, NewImage, StoredImage};
pub use links::LinkOutcome;
pub use outbox::{Outboxed, SweepError, LEASE_MS};
pub use retention::RETENTION_BATCH;
pub use task_query::{Sort, SortColumn, TaskFilter, TaskList, TaskPage};
pub use task_stats::{PopularTask, TaskStats};
pub use tasks::{NewTask, TaskChanges};

/// Migrations for SQLite files.
pub static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
/// The same migrations for PostgreSQL.
pub static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// What a write hands on, made from what it wrote: the jobs stored with it in the outbox.
pub type Followups<'a, T> = &'a (dyn Fn(&T) -> Vec<NewJob> + Send + Sync);

/// No jobs: a write that hands nothing on.
pub fn no_followups<T>(_: &T) -> Vec<NewJob> {
    Vec::new()
}

/// What a write returns once committed: what it wrote, and its outbox row, if it stored one.
#[derive(Debug)]
pub struct Written<T> {
    /// What was written, as the transaction read it back.
    pub value: T,
    /// The jobs stored with it, to be queued now ([`crate::app::outbox`]).
    pub outbox: Option<Outboxed>,
}

/// Why a store operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The resource (or the one it belongs to) does not exist.
    #[error("not found")]
    NotFound,
    /// A field refers to something that does not exist.
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbError),
}

/// The application's tables.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    /// The store on `db`, migrated to the newest schema.
    pub async fn open(db: Database) -> Result<Self, DbError> {
        db.migrate(&SQLITE_MIGRATIONS, &POSTGRES_MIGRATIONS).await?;
        Ok(Self { db })
    }

    /// The database underneath.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The store on `db` instead: the same pool with the core's breaker and retries.
    #[must_use]
    pub fn with_database(self, db: Database) -> Self {
        Self { db }
    }
}

/// A value bound to a `$n` placeholder of an [`Sql`] statement.
#[derive(Debug, Clone)]
enum Param {
    Int(i64),
    Text(String),
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<String> for Param {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

/// A statement assembled at run time (filters, sort orders) with numbered placeholders.
#[derive(Debug, Default)]
struct Sql {
    text: String,
    params: Vec<Param>,
}

impl Sql {
    fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    /// Appends literal SQL (never user input).
    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    fn bind(&mut self, value: impl Into<Param>) -> &mut Self {
        self.params.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.params.len().to_string());
        self
    }

    /// Appends a placeholder for each of `values`, separated by commas (for `IN (…)`).
    fn bind_list<T: Into<Param> + Copy>(&mut self, values: &[T]) -> &mut Self {
        for (n, value) in values.iter().enumerate() {
            if n > 0 {
                self.push(", ");
            }
            self.bind(*value);
        }
        self
    }

    fn query(&self) -> Query<'_, Any, AnyArguments> {
        let mut query = sqlx::query(AssertSqlSafe(self.text.clone()));
        for param in &self.params {
            query = match param {
                Param::Int(value) => query.bind(*value),
                Param::Text(value) => query.bind(value.clone()),
            };
        }
        query
    }
}

/// Whether task `id` exists.
async fn task_exists(connection: &mut AnyConnection, id: i64) -> Result<bool, sqlx::Error> {
    let found = sqlx::query("SELECT 1 FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_optional(connection)
        .await?;
    Ok(found.is_some())
}

/// Whether user `id` exists.
async fn user_exists(connection: &mut AnyConnection, id: i64) -> Result<bool, sqlx::Error> {
    let found = sqlx::query("SELECT 1 FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(connection)
        .await?;
    Ok(found.is_some())
}

/// Appends one audit-log entry inside the caller's transaction.
async fn append_event(
    connection: &mut AnyConnection,
    event: &NewEvent,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO events (occurred_at, actor, action, entity_type, entity_id, data) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(event.occurred_at.unwrap_or(at))
    .bind(event.actor.clone())
    .bind(event.action.clone())
    .bind(event.entity_type.clone())
    .bind(event.entity_id.clone())
    .bind(event.data.to_string())
    .execute(connection)
    .await?;
    Ok(())
}
