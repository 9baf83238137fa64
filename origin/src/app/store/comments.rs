//! Comments on tasks: keyset-paginated reads (oldest first) and writes logged in the audit log.

use serde_json::json;
use sqlx::{Connection, Row};

use super::{append_event, outbox, task_exists, user_exists, Followups, NewEvent, Store};
use super::{StoreError, Written};
use crate::app::model::{now_ms, rfc3339, Comment};

/// A new comment, validated.
#[derive(Debug, Clone)]
pub struct NewComment {
    /// Who writes it.
    pub author_id: i64,
    /// The text.
    pub body: String,
}

/// One page of a task's comments.
#[derive(Debug)]
pub struct CommentPage {
    /// The comments, oldest first.
    pub comments: Vec<Comment>,
    /// The id after which the next page starts, when more follow.
    pub next: Option<i64>,
}

const COMMENT_QUERY: &str = "SELECT c.id, c.task_id, c.author_id, u.name, c.body, c.created_at \
     FROM comments c JOIN users u ON u.id = c.author_id";

fn comment(row: &sqlx::any::AnyRow) -> Result<Comment, sqlx::Error> {
    Ok(Comment {
        id: row.try_get(0)?,
        task_id: row.try_get(1)?,
        author_id: row.try_get(2)?,
        author_name: row.try_get(3)?,
        body: row.try_get(4)?,
        created_at: rfc3339(row.try_get(5)?),
    })
}

impl Store {
    /// Up to `limit` comments of task `task_id` after comment `after`; `None` if no such task.
    pub async fn comments(
        &self,
        task_id: i64,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Option<CommentPage>, StoreError> {
        let db = self.database();
        let page = db
            .read("select", "comments", move || async move {
                let mut connection = db.acquire().await?;
                if !task_exists(&mut connection, task_id).await? {
                    return Ok(None);
                }
                let query = format!(
                    "{COMMENT_QUERY} WHERE c.task_id = $1 AND c.id > $2 ORDER BY c.id LIMIT $3"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(query))
                    .bind(task_id)
                    .bind(after.unwrap_or(0))
                    .bind(i64::from(limit) + 1)
                    .fetch_all(&mut *connection)
                    .await?;
                let mut comments = rows.iter().map(comment).collect::<Result<Vec<_>, _>>()?;
                let next = if comments.len() > limit as usize {
                    comments.truncate(limit as usize);
                    comments.last().map(|c| c.id)
                } else {
                    None
                };
                Ok(Some(CommentPage { comments, next }))
            })
            .await?;
        Ok(page)
    }

    /// Adds a comment to task `task_id` and logs it, with the jobs `followups` make of it stored
    /// in the outbox.
    pub async fn add_comment(
        &self,
        task_id: i64,
        new: &NewComment,
        actor: &str,
        followups: Followups<'_, Comment>,
    ) -> Result<Written<Comment>, StoreError> {
        let db = self.database();
        let created = db
            .observe("insert", "comments", async {
                let mut connection = db.acquire().await?;
                let mut tx = connection.begin().await?;
                if !task_exists(&mut tx, task_id).await? {
                    return Ok(Err(StoreError::NotFound));
                }
                if !user_exists(&mut tx, new.author_id).await? {
                    return Ok(Err(StoreError::Invalid(
                        "author_id",
                        "no user has this id".to_owned(),
                    )));
                }
                let now = now_ms();
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO comments (task_id, author_id, body, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(task_id)
                .bind(new.author_id)
                .bind(new.body.clone())
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                // Touching the task keeps "recently updated" lists honest.
                sqlx::query("UPDATE tasks SET updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(task_id)
                    .execute(&mut *tx)
                    .await?;
                let event = NewEvent::about(actor, "create", "comment", id)
                    .with_data(json!({ "task_id": task_id, "author_id": new.author_id }));
                append_event(&mut tx, &event, now).await?;
                let query = format!("{COMMENT_QUERY} WHERE c.id = $1");
                let row = sqlx::query(sqlx::AssertSqlSafe(query))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let created = comment(&row)?;
                let outbox = outbox::put(&mut tx, followups(&created), now).await?;
                tx.commit().await?;
                Ok(Ok(Written {
                    value: created,
                    outbox,
                }))
            })
            .await?;
        created
    }
}
