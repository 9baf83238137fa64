//! Retention: audit-log entries past their keeping time, and stored images that no task refers
//! to any more (their tasks were deleted). Both are deleted in batches, one short statement
//! (and transaction) each, so that a large backlog never holds the table's locks for long.

use super::{Store, StoreError};
use crate::core::dependencies::database::{Database, DbError};

/// Rows deleted per statement.
pub const RETENTION_BATCH: i64 = 1000;

/// One batch of old audit-log entries, oldest first (the `events_by_time` index).
const DELETE_EVENTS: &str = "DELETE FROM events WHERE id IN \
     (SELECT id FROM events WHERE occurred_at < $1 ORDER BY occurred_at, id LIMIT $2)";

/// One batch of old images that no attachment refers to (the `attachments_by_image` index).
/// An attachment added meanwhile keeps its image: the foreign key refuses the delete.
const DELETE_IMAGES: &str = "DELETE FROM images WHERE key IN \
     (SELECT i.key FROM images i WHERE i.created_at < $1 \
      AND NOT EXISTS (SELECT 1 FROM attachments a WHERE a.image_key = i.key) \
      ORDER BY i.created_at LIMIT $2)";

impl Store {
    /// Deletes the audit-log entries that occurred before `cutoff` (Unix ms), `batch` rows per
    /// statement; returns how many.
    pub async fn delete_events_before(&self, cutoff: i64, batch: i64) -> Result<u64, StoreError> {
        Ok(delete_in_batches(self.database(), "events", DELETE_EVENTS, cutoff, batch).await?)
    }

    /// Deletes the images stored before `cutoff` (Unix ms) that no attachment refers to,
    /// `batch` rows per statement; returns how many.
    pub async fn delete_unreferenced_images(
        &self,
        cutoff: i64,
        batch: i64,
    ) -> Result<u64, StoreError> {
        Ok(delete_in_batches(self.database(), "images", DELETE_IMAGES, cutoff, batch).await?)
    }
}

/// Runs `statement` (`$1` the cutoff, `$2` the batch size) until a batch comes back short.
async fn delete_in_batches(
    db: &Database,
    table: &'static str,
    statement: &'static str,
    cutoff: i64,
    batch: i64,
) -> Result<u64, DbError> {
    let batch = batch.max(1);
    let mut total = 0;
    loop {
        let deleted = db
            .observe("delete", table, async {
                let mut connection = db.acquire().await?;
                sqlx::query(statement)
                    .bind(cutoff)
                    .bind(batch)
                    .execute(&mut *connection)
                    .await
            })
            .await?
            .rows_affected();
        total += deleted;
        if deleted < batch.unsigned_abs() {
            return Ok(total);
        }
        // Let other writers in between batches.
        tokio::task::yield_now().await;
    }
}
