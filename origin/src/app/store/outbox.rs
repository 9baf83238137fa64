//! The job outbox: the jobs a write hands on (its webhook notification, its edge purges) are
//! stored in the write's own transaction, so that a committed change never loses them and an
//! aborted one never sends them. Once the write commits, [`crate::app::outbox`] queues them and
//! deletes the row; a row left behind (its instance stopped first, or the queues refused its
//! jobs) is queued by a sweep, on any instance.

use sqlx::{AnyConnection, Row};

use super::{Sql, Store, StoreError};
use crate::core::jobs::{Jobs, NewJob};

/// How long a row is left to whoever holds it (the instance that wrote it, or the sweep that
/// took it) before a sweep may take it: far longer than queuing its jobs takes.
pub const LEASE_MS: i64 = 10_000;
/// Rows deleted per statement at most (well under every database's limit on parameters).
const DELETE_CHUNK: usize = 1_000;

/// A write's jobs, stored with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outboxed {
    /// The row's id.
    pub id: i64,
    /// The jobs.
    pub jobs: Vec<NewJob>,
    /// When a sweep may take the row (Unix ms): past it, its writer leaves it to the sweep.
    pub due_at: i64,
}

/// Stores `jobs` in the transaction `connection` is in, written at `at` (ms); `None` when there
/// are none.
pub(super) async fn put(
    connection: &mut AnyConnection,
    jobs: Vec<NewJob>,
    at: i64,
) -> Result<Option<Outboxed>, sqlx::Error> {
    if jobs.is_empty() {
        return Ok(None);
    }
    let text = serde_json::to_string(&jobs).map_err(|error| sqlx::Error::Encode(error.into()))?;
    let due_at = at + LEASE_MS;
    let id: i64 =
        sqlx::query_scalar("INSERT INTO job_outbox (due_at, jobs) VALUES ($1, $2) RETURNING id")
            .bind(due_at)
            .bind(text)
            .fetch_one(connection)
            .await?;
    Ok(Some(Outboxed { id, jobs, due_at }))
}

/// Why a sweep left rows where they were.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queues did not take the jobs; the rows are taken again once their lease is over.
    #[error(transparent)]
    Jobs(#[from] crate::core::jobs::StoreError),
}

impl Store {
    /// Deletes the rows `ids`, whose jobs are queued.
    pub async fn outbox_done(&self, ids: &[i64]) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for chunk in ids.chunks(DELETE_CHUNK) {
            let mut sql = Sql::new("DELETE FROM job_outbox WHERE id IN (");
            sql.bind_list(chunk).push(")");
            let db = self.database();
            deleted += db
                .observe("delete", "job_outbox", async {
                    let mut connection = db.acquire().await?;
                    Ok(sql.query().execute(&mut *connection).await?.rows_affected())
                })
                .await?;
        }
        Ok(deleted)
    }

    /// Queues the jobs of up to `limit` rows due by `now` (ms), oldest first, and deletes those
    /// rows. The rows are taken first, in one statement that leases them for [`LEASE_MS`], so
    /// that no other sweep takes them while their jobs are queued and no transaction waits on
    /// the job store; rows whose jobs the job store refuses are taken again once the lease is
    /// over. Returns how many rows were queued.
    pub async fn sweep_outbox(
        &self,
        now: i64,
        limit: i64,
        jobs: &Jobs,
    ) -> Result<usize, SweepError> {
        let taken = self.take_due(now, limit).await?;
        if taken.is_empty() {
            return Ok(0);
        }
        let mut left = Vec::new();
        for (id, text) in &taken {
            match serde_json::from_str::<Vec<NewJob>>(text) {
                Ok(jobs) => left.extend(jobs),
                Err(error) => tracing::error!(id, %error, "an outbox row is not jobs: dropped"),
            }
        }
        jobs.enqueue_kept(&left).await?;
        let ids: Vec<i64> = taken.iter().map(|(id, _)| *id).collect();
        self.outbox_done(&ids).await?;
        Ok(taken.len())
    }

    /// Leases up to `limit` rows due by `now`: their ids and jobs, in the order written.
    async fn take_due(&self, now: i64, limit: i64) -> Result<Vec<(i64, String)>, StoreError> {
        let db = self.database();
        let taken = db
            .observe("update", "job_outbox", async {
                let mut connection = db.acquire().await?;
                // Most sweeps find nothing: a read first, so that they take no write lock.
                let any = sqlx::query("SELECT 1 FROM job_outbox WHERE due_at <= $1 LIMIT 1")
                    .bind(now)
                    .fetch_optional(&mut *connection)
                    .await?;
                if any.is_none() {
                    return Ok(Vec::new());
                }
                // `due_at <= $1` is checked again on each row as it is updated: a row another
                // sweep leased meanwhile (PostgreSQL waits for its lock) is passed over.
                let rows = sqlx::query(
                    "UPDATE job_outbox SET due_at = $2 WHERE due_at <= $1 AND id IN \
                     (SELECT id FROM job_outbox WHERE due_at <= $1 ORDER BY due_at, id LIMIT $3) \
                     RETURNING id, jobs",
                )
                .bind(now)
                .bind(now + LEASE_MS)
                .bind(limit)
                .fetch_all(&mut *connection)
                .await?;
                let mut taken = Vec::with_capacity(rows.len());
                for row in &rows {
                    taken.push((row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?));
                }
                // `RETURNING` keeps no order: the jobs go in the order their writes stored them.
                taken.sort_unstable_by_key(|(id, _)| *id);
                Ok(taken)
            })
            .await?;
        Ok(taken)
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
