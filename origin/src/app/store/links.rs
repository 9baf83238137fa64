//! Links attached to tasks, with the title of the linked page; writes logged in the audit log.

use serde_json::json;
use sqlx::Row;

use super::{append_event, task_exists, NewEvent, Store, StoreError};
use crate::app::model::{now_ms, rfc3339, TaskLink};

fn link(row: &sqlx::any::AnyRow) -> Result<TaskLink, sqlx::Error> {
    Ok(TaskLink {
        id: row.try_get(0)?,
        task_id: row.try_get(1)?,
        url: row.try_get(2)?,
        title: row.try_get(3)?,
        created_at: rfc3339(row.try_get(4)?),
    })
}

impl Store {
    /// Attaches `url` (titled `title`) to task `task_id` and logs it.
    pub async fn add_link(
        &self,
        task_id: i64,
        url: &str,
        title: Option<&str>,
        actor: &str,
    ) -> Result<TaskLink, StoreError> {
        let db = self.database();
        let created = db
            .observe("insert", "task_links", async {
                let mut tx = db.pool().begin().await?;
                if !task_exists(&mut tx, task_id).await? {
                    return Ok(Err(StoreError::NotFound));
                }
                let now = now_ms();
                let row = sqlx::query(
                    "INSERT INTO task_links (task_id, url, title, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING id, task_id, url, title, created_at",
                )
                .bind(task_id)
                .bind(url.to_owned())
                .bind(title.map(str::to_owned))
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

    /// Whether task `task_id` exists.
    pub async fn has_task(&self, task_id: i64) -> Result<bool, StoreError> {
        let db = self.database();
        let exists = db
            .read("select", "tasks", move || async move {
                let mut connection = db.pool().acquire().await?;
                task_exists(&mut connection, task_id).await
            })
            .await?;
        Ok(exists)
    }

    /// The links of task `task_id`, oldest first; `None` if no such task.
    pub async fn links(&self, task_id: i64) -> Result<Option<Vec<TaskLink>>, StoreError> {
        let db = self.database();
        let links = db
            .read("select", "task_links", move || async move {
                let mut connection = db.pool().acquire().await?;
                if !task_exists(&mut connection, task_id).await? {
                    return Ok(None);
                }
                let rows = sqlx::query(
                    "SELECT id, task_id, url, title, created_at FROM task_links \
                     WHERE task_id = $1 ORDER BY id LIMIT 1000",
                )
                .bind(task_id)
                .fetch_all(&mut *connection)
                .await?;
                Ok(Some(rows.iter().map(link).collect::<Result<Vec<_>, _>>()?))
            })
            .await?;
        Ok(links)
    }
}
