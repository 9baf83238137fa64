//! The job outbox: the jobs a write hands on (its webhook notification, its edge purges) are
//! stored in the write's own transaction, so that a committed change never loses them and an
//! aborted one never sends them. Once the write commits, [`crate::app::outbox`] queues them and
//! deletes the row; a row left behind (its instance stopped first, or the queues refused its
//! jobs) is queued by a sweep, on any instance.

use sqlx::{AnyConnection, Row};

use super::{Sql, Store, StoreError};
use crate::core::jobs::{Jobs, NewJob};

/// A write's jobs, stored with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outboxed {
    /// The row's id.
    pub id: i64,
    /// The jobs.
    pub jobs: Vec<NewJob>,
}

/// Stores `jobs` in the transaction `connection` is in, at `at` (ms); `None` when there are none.
pub(super) async fn put(
    connection: &mut AnyConnection,
    jobs: Vec<NewJob>,
    at: i64,
) -> Result<Option<Outboxed>, sqlx::Error> {
    if jobs.is_empty() {
        return Ok(None);
    }
    let text = serde_json::to_string(&jobs).map_err(|error| sqlx::Error::Encode(error.into()))?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO job_outbox (created_at, jobs) VALUES ($1, $2) RETURNING id",
    )
    .bind(at)
    .bind(text)
    .fetch_one(connection)
    .await?;
    Ok(Some(Outboxed { id, jobs }))
}

/// Why a sweep left rows where they were.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queues did not take the jobs; the rows stay for the next sweep.
    #[error(transparent)]
    Jobs(#[from] crate::core::jobs::StoreError),
}

impl Store {
    /// Deletes the rows `ids`, whose jobs are queued.
    pub async fn outbox_done(&self, ids: &[i64]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut sql = Sql::new("DELETE FROM job_outbox WHERE id IN (");
        sql.bind_list(ids).push(")");
        let db = self.database();
        let deleted = db
            .observe("delete", "job_outbox", async {
                let mut connection = db.acquire().await?;
                Ok(sql.query().execute(&mut *connection).await?.rows_affected())
            })
            .await?;
        Ok(deleted)
    }

    /// Queues the jobs of up to `limit` rows stored before `before` (ms), oldest first, and
    /// deletes those rows, in one transaction: a row goes only once its jobs are stored, and
    /// two instances sweeping at once do not both take it (PostgreSQL holds the deleted rows'
    /// locks until the commit, SQLite has one writer at a time). Returns how many rows.
    pub async fn sweep_outbox(
        &self,
        before: i64,
        limit: i64,
        jobs: &Jobs,
    ) -> Result<usize, SweepError> {
        let db = self.database();
        let swept = db
            .observe("delete", "job_outbox", async {
                let mut connection = db.acquire().await?;
                // Most sweeps find nothing: a read first, so that they take no write lock.
                let any = sqlx::query("SELECT 1 FROM job_outbox WHERE created_at < $1 LIMIT 1")
                    .bind(before)
                    .fetch_optional(&mut *connection)
                    .await?;
                if any.is_none() {
                    return Ok(Ok(0));
                }
                let mut tx = sqlx::Connection::begin(&mut *connection).await?;
                let rows = sqlx::query(
                    "DELETE FROM job_outbox WHERE id IN (SELECT id FROM job_outbox \
                     WHERE created_at < $1 ORDER BY created_at, id LIMIT $2) RETURNING id, jobs",
                )
                .bind(before)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                let mut taken = Vec::with_capacity(rows.len());
                for row in &rows {
                    taken.push((row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?));
                }
                // `RETURNING` keeps no order: the jobs go in the order their writes stored them.
                taken.sort_unstable_by_key(|(id, _)| *id);
                let mut left = Vec::new();
                for (id, text) in &taken {
                    match serde_json::from_str::<Vec<NewJob>>(text) {
                        Ok(jobs) => left.extend(jobs),
                        Err(error) => {
                            tracing::error!(id, %error, "an outbox row is not jobs: dropped")
                        }
                    }
                }
                if let Err(error) = jobs.enqueue_kept(&left).await {
                    tx.rollback().await?;
                    return Ok(Err(error));
                }
                tx.commit().await?;
                Ok(Ok(rows.len()))
            })
            .await
            .map_err(StoreError::from)?;
        Ok(swept?)
    }

    /// How many rows wait in the outbox.
    pub async fn outbox_len(&self) -> Result<i64, StoreError> {
        let db = self.database();
        let count = db
            .observe("select", "job_outbox", async {
                let mut connection = db.acquire().await?;
                sqlx::query_scalar("SELECT COUNT(*) FROM job_outbox")
                    .fetch_one(&mut *connection)
                    .await
            })
            .await?;
        Ok(count)
    }
}
