//! Links attached to tasks. A link is stored `pending` at once; the crawler queue fetches the
//! page later and records the outcome ([`Store::finish_link`]): its title, or why it failed.
//! Adding a link is logged in the audit log; the crawler's outcome is not a user's write.

use serde_json::json;
use sqlx::{Connection, Row};

use super::{append_event, task_exists, NewEvent, Store, StoreError};
use crate::app::model::{now_ms, rfc3339, LinkStatus, TaskLink};
use crate::core::dependencies::database::DbError;

/// The columns [`link`] reads, in its order.
const LINK_COLUMNS: &str = "id, task_id, url, title, status, error, created_at, fetched_at";

/// What the crawler found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The page was fetched; its `<title>`, if it had one.
    Fetched(Option<String>),
    /// The page cannot be fetched, for this reason.
    Failed(String),
}

fn link(row: &sqlx::any::AnyRow) -> Result<TaskLink, sqlx::Error> {
    let status: String = row.try_get(4)?;
    let status = LinkStatus::parse(&status).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "status".to_owned(),
        source: format!("unknown link status {status:?}").into(),
    })?;
    let fetched_at: Option<i64> = row.try_get(7)?;
    Ok(TaskLink {
        id: row.try_get(0)?,
        task_id: row.try_get(1)?,
        url: row.try_get(2)?,
        title: row.try_get(3)?,
        status,
        error: row.try_get(5)?,
        created_at: rfc3339(row.try_get(6)?),
        fetched_at: fetched_at.map(rfc3339),
    })
}

impl Store {
    /// Attaches `url` to task `task_id`, pending its fetch, and logs it.
    pub async fn add_link(
        &self,
        task_id: i64,
        url: &str,
        actor: &str,
    ) -> Result<TaskLink, StoreError> {
        let db = self.database();
        let created = db
            .observe("insert", "task_links", async {
                let mut connection = db.acquire().await?;
                let mut tx = connection.begin().await?;
                if !task_exists(&mut tx, task_id).await? {
                    return Ok(Err(StoreError::NotFound));
                }
                let now = now_ms();
                let insert = format!(
                    "INSERT INTO task_links (task_id, url, status, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING {LINK_COLUMNS}"
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(insert))
                    .bind(task_id)
                    .bind(url.to_owned())
                    .bind(LinkStatus::Pending.as_str())
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                let created = link(&row)?;
                sqlx::query("UPDATE tasks SET updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(task_id)
                    .execute(&mut *tx)
                    .await?;
                let event = NewEvent::about(actor, "create", "link", created.id)
                    .with_data(json!({ "task_id": task_id, "url": url }));
                append_event(&mut tx, &event, now).await?;
                tx.commit().await?;
                Ok(Ok(created))
            })
            .await?;
        created
    }

    /// Records what the crawler found for link `link_id`; `false` when the link is gone (its
    /// task was deleted meanwhile).
    pub async fn finish_link(
        &self,
        link_id: i64,
        outcome: &LinkOutcome,
    ) -> Result<bool, StoreError> {
        let (status, title, error) = match outcome {
            LinkOutcome::Fetched(title) => (LinkStatus::Fetched, title.clone(), None),
            LinkOutcome::Failed(error) => (LinkStatus::Failed, None, Some(error.clone())),
        };
        let db = self.database();
        let updated = db
            .observe("update", "task_links", async {
                let mut connection = db.acquire().await?;
                sqlx::query(
                    "UPDATE task_links SET status = $1, title = COALESCE($2, title), \
                     error = $3, fetched_at = $4 WHERE id = $5",
                )
                .bind(status.as_str())
                .bind(title)
                .bind(error)
                .bind(now_ms())
                .bind(link_id)
                .execute(&mut *connection)
                .await
            })
            .await?;
        Ok(updated.rows_affected() > 0)
    }

    /// Whether task `task_id` exists.
    pub async fn has_task(&self, task_id: i64) -> Result<bool, StoreError> {
        let db = self.database();
        let exists = db
            .read("select", "tasks", move || async move {
                let mut connection = db.acquire().await?;
                task_exists(&mut connection, task_id).await
            })
            .await?;
        Ok(exists)
    }

    /// Link `link_id` of task `task_id`, if both exist.
    pub async fn link(&self, task_id: i64, link_id: i64) -> Result<Option<TaskLink>, StoreError> {
        let db = self.database();
        let select =
            format!("SELECT {LINK_COLUMNS} FROM task_links WHERE id = $1 AND task_id = $2");
        let select = select.as_str();
        let row = db
            .read("select", "task_links", move || async move {
                let mut connection = db.acquire().await?;
                sqlx::query(sqlx::AssertSqlSafe(select.to_owned()))
                    .bind(link_id)
                    .bind(task_id)
                    .fetch_optional(&mut *connection)
                    .await
            })
            .await?;
        let found = row.as_ref().map(link).transpose().map_err(DbError::from)?;
        Ok(found)
    }

    /// The links of task `task_id`, oldest first; `None` if no such task.
    pub async fn links(&self, task_id: i64) -> Result<Option<Vec<TaskLink>>, StoreError> {
        let db = self.database();
        let links = db
            .read("select", "task_links", move || async move {
                let mut connection = db.acquire().await?;
                if !task_exists(&mut connection, task_id).await? {
                    return Ok(None);
                }
                let select = format!(
                    "SELECT {LINK_COLUMNS} FROM task_links \
                     WHERE task_id = $1 ORDER BY id LIMIT 1000"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(select))
                    .bind(task_id)
                    .fetch_all(&mut *connection)
                    .await?;
                Ok(Some(rows.iter().map(link).collect::<Result<Vec<_>, _>>()?))
            })
            .await?;
        Ok(links)
    }
}
