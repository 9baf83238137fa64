//! The database handle every query goes through: one pool for SQLite or PostgreSQL (chosen by
//! the URL's scheme), migrations per dialect, a timeout on every query, and
//! `db_queries_total` / `db_query_duration_seconds` per operation and table. Queries take
//! their connection through [`Database::acquire`], which the pool metrics count and time
//! (`db_pool_waiting`, `db_pool_acquire_duration_seconds`).
//!
//! Queries are written once with `$1, $2, …` placeholders, which both SQLite and PostgreSQL
//! accept; the application ships one migration folder per dialect with the same versions.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, ConnectOptions, Executor};
use tracing::Instrument;

use crate::core::dependencies::breaker::CircuitBreaker;
use crate::core::dependencies::guarded::{Failure, Guard, Outcome};
use crate::core::dependencies::retry::Retrier;
use crate::core::observability::dependency_metrics::DbMetrics;
use crate::core::observability::{telemetry, timing};

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file: the embedded default.
    Sqlite,
    /// A PostgreSQL server: the production setting.
    Postgres,
}

/// A failed query or connection, classified for the error a client sees.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported database.
    #[error("unsupported database URL (expected sqlite:… or postgres://…): {0}")]
    UnsupportedUrl(String),
    /// The query ran longer than the configured timeout.
    #[error("query timed out after {0:?}")]
    Timeout(Duration),
    /// A uniqueness or foreign-key constraint refused the write.
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// The database could not be reached, or no connection was free in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database's circuit breaker is open: the query was not attempted.
    #[error("database circuit breaker open")]
    CircuitOpen,
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error: {0}")]
    Query(String),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db)
                if db.is_unique_violation()
                    || db.is_foreign_key_violation()
                    || db.is_check_violation() =>
            {
                Self::Constraint(db.message().to_owned())
            }
            // The server ended the session (`pg_terminate_backend`, a shutdown: SQLSTATE class
            // 57) or lost the connection (class 08, but for 08P01, a protocol violation): the
            // database is out, not the query.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|code| {
                    code.starts_with("57P") || (code.starts_with("08") && code != "08P01")
                }) =>
            {
                Self::Unavailable(error.to_string())
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed => Self::Unavailable(error.to_string()),
            // The connection closed while TLS was being negotiated (`sslmode=prefer`): the
            // server went away, the query never ran.
            sqlx::Error::Protocol(message) if message.contains("SSLRequest") => {
                Self::Unavailable(error.to_string())
            }
            _ => Self::Query(error.to_string()),
        }
    }
}

/// How to open the database.
#[derive(Debug, Clone)]
pub struct DbSettings {
    /// `sqlite:path` or `postgres://…`.
    pub url: String,
    /// Most connections held open.
    pub pool_size: u32,
    /// Bound on every query and on waiting for a connection.
    pub query_timeout: Duration,
}

impl DbError {
    /// Whether the database itself failed (as opposed to the query or its data): what opens
    /// the breaker and what a read retries.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout(_))
    }
}

/// The application's database.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    query_timeout: Duration,
    metrics: DbMetrics,
    breaker: Option<CircuitBreaker>,
    retrier: Retrier,
}

impl Backend {
    /// The name OpenTelemetry gives the database system (`db.system.name`).
    pub const fn system_name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgresql",
        }
    }

    /// The backend `url` names.
    pub fn of(url: &str) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(DbError::UnsupportedUrl(redact(url)))
        }
    }
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Creates the folder an SQLite file lives in, so that first start needs no set-up.
fn create_sqlite_folder(url: &str) -> Result<(), DbError> {
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    match Path::new(path).parent() {
        Some(folder) if !folder.as_os_str().is_empty() => std::fs::create_dir_all(folder)
            .map_err(|e| DbError::Unavailable(format!("cannot create {}: {e}", folder.display()))),
        _ => Ok(()),
    }
}

/// How often a SQLite database's write-ahead log is copied into its file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Copies the write-ahead log into the database file every [`CHECKPOINT_EVERY`], without
/// waiting for readers or writers (a passive checkpoint), until the pool closes. SQLite would
/// otherwise checkpoint (and sync the file) inside whichever commit fills the log past 1,000
/// pages: about one write in a hundred would wait milliseconds for it.
fn checkpoint_in_background(pool: AnyPool) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if pool.is_closed() {
                return;
            }
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::debug!(%error, "background checkpoint failed; the next one tries again");
            }
        }
    });
}

impl Database {
    /// Opens a pool on `settings.url`; SQLite files and their folder are created if missing.
    pub async fn connect(settings: &DbSettings, metrics: DbMetrics) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(&settings.url)?;
        let mut url = settings.url.clone();
        if backend == Backend::Sqlite {
            create_sqlite_folder(&url)?;
            if !url.contains("mode=") {
                url.push_str(if url.contains('?') { "&" } else { "?" });
                url.push_str("mode=rwc");
            }
        }
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| DbError::UnsupportedUrl(format!("{}: {e}", redact(&settings.url))))?
            .disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(settings.pool_size.max(1))
            .acquire_timeout(settings.query_timeout)
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Readers never wait for the writer; writers wait for each other.
                        connection.execute("PRAGMA journal_mode = WAL").await?;
                        connection.execute("PRAGMA synchronous = NORMAL").await?;
                        connection.execute("PRAGMA busy_timeout = 5000").await?;
                        // Checkpoints run in the background (`checkpoint_in_background`), not
                        // in the commit that happens to fill the log; this is a bound only:
                        // should passive checkpoints fall behind (a reader holding an old
                        // snapshot), the commit that takes the log past ~80 MB checkpoints.
                        connection
                            .execute("PRAGMA wal_autocheckpoint = 20000")
                            .await?;
                        connection.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        metrics.pool().attach(&pool);
        if backend == Backend::Sqlite {
            checkpoint_in_background(pool.clone());
        }
        Ok(Self {
            pool,
            backend,
            query_timeout: settings.query_timeout,
            metrics,
            breaker: None,
            retrier: Retrier {
                policy: crate::core::dependencies::retry::RetryPolicy {
                    attempts: 1,
                    ..Default::default()
                },
                ..Retrier::default()
            },
        })
    }

    /// Guards every query with `breaker`: outages (unreachable, timed out) open it, and while
    /// it is open queries fail at once with [`DbError::CircuitOpen`].
    #[must_use]
    pub fn with_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Retries reads ([`Self::read`]) that failed on an outage, through `retrier`.
    #[must_use]
    pub fn with_retries(mut self, retrier: Retrier) -> Self {
        self.retrier = retrier;
        self
    }

    /// The breaker guarding queries, if any.
    pub fn breaker(&self) -> Option<&CircuitBreaker> {
        self.breaker.as_ref()
    }

    /// Runs the read-only `query` like [`Self::observe`], and again (with backoff, within the
    /// retry budget) when the database failed; `query` makes each attempt anew.
    pub async fn read<T, F, Fut>(
        &self,
        operation: &'static str,
        table: &'static str,
        mut query: F,
    ) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.retrier
            .run(DbError::is_outage, || {
                self.observe(operation, table, query())
            })
            .await
    }

    /// Applies the migrations for this database's dialect.
    pub async fn migrate(&self, sqlite: &Migrator, postgres: &Migrator) -> Result<(), DbError> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// How long a trivial query takes, bounded by `timeout`. Health checks ask the database
    /// itself, whatever the breaker says.
    pub async fn ping(&self, timeout: Duration) -> Result<Duration, DbError> {
        let started = Instant::now();
        let guard = Guard::unguarded(timeout);
        self.guarded(&guard, "select", "ping", async {
            let mut connection = self.acquire().await?;
            sqlx::query("SELECT 1").execute(&mut *connection).await
        })
        .await?;
        Ok(started.elapsed())
    }

    /// Closes the pool: waits for checked-out connections to return, then closes them all.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection from the pool, for one query or several (a transaction: `begin` on it);
    /// wrap the work in [`Self::observe`] or [`Self::read`]. The wait is counted and timed.
    pub async fn acquire(&self) -> Result<PoolConnection<Any>, sqlx::Error> {
        self.metrics.pool().acquiring(self.pool.acquire()).await
    }

    /// The pool itself, for migrations and tests; queries go through [`Self::acquire`], so
    /// that the time they wait for a connection is measured.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Runs `query` under the query timeout, counting it as `operation` on `table`.
    pub async fn observe<T, F>(
        &self,
        operation: &'static str,
        table: &'static str,
        query: F,
    ) -> Result<T, DbError>
    where
        F: Future<Output = Result<T, sqlx::Error>>,
    {
        self.observe_within(self.query_timeout, operation, table, query)
            .await
    }

    /// [`Self::observe`] with its own bound, for maintenance work such as loading demo data.
    pub async fn observe_within<T, F>(
        &self,
        timeout: Duration,
        operation: &'static str,
        table: &'static str,
        query: F,
    ) -> Result<T, DbError>
    where
        F: Future<Output = Result<T, sqlx::Error>>,
    {
        let guard = Guard {
            breaker: self.breaker.clone(),
            timeout,
        };
        self.guarded(&guard, operation, table, query).await
    }

    /// Runs `query` through `guard`, counted and timed.
    async fn guarded<T, F>(
        &self,
        guard: &Guard,
        operation: &'static str,
        table: &'static str,
        query: F,
    ) -> Result<T, DbError>
    where
        F: Future<Output = Result<T, sqlx::Error>>,
    {
        let query = async { query.await.map_err(DbError::from) };
        let record = |outcome: Outcome, elapsed| {
            timing::add_db(elapsed);
            self.metrics
                .record(operation, table, outcome.as_str(), elapsed)
        };
        let span = telemetry::dependency_span(self.backend.system_name(), operation, table);
        guard
            .call(query, DbError::is_outage, record)
            .instrument(span)
            .await
            .map_err(|failure| match failure {
                Failure::Error(error) => error,
                Failure::Timeout(after) => DbError::Timeout(after),
                Failure::CircuitOpen => DbError::CircuitOpen,
            })
    }

    /// Takes this database's write lock inside `transaction`, so that concurrent starts of
    /// several instances serialize their one-time work (PostgreSQL: an advisory lock keyed by
    /// `key`; SQLite: the single writer lock, which a no-op write acquires).
    pub async fn lock_for_writing(
        &self,
        transaction: &mut sqlx::AnyConnection,
        key: i64,
    ) -> Result<(), sqlx::Error> {
        match self.backend {
            Backend::Postgres => {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(key)
                    .execute(transaction)
                    .await?
            }
            Backend::Sqlite => {
                // The migrations table always exists once the database is migrated.
                sqlx::query("DELETE FROM _sqlx_migrations WHERE 1 = 0")
                    .execute(transaction)
                    .await?
            }
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_come_from_the_scheme_and_passwords_never_leak() {
        assert_eq!(Backend::of("sqlite:data/x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(
            Backend::of("postgres://u:p@h/db").ok(),
            Some(Backend::Postgres)
        );
        let error = Backend::of("mysql://user:secret@host/db").expect_err("unsupported");
        assert!(!error.to_string().contains("secret"), "{error}");
        assert!(error.to_string().contains("user:***@host"), "{error}");
    }
}
