//! The aggregates behind `/api/stats` and `/api/tasks/popular`.

use serde::Serialize;
use serde_json::json;
use sqlx::Row;

use super::{Store, StoreError};
use crate::app::model::{now_ms, rfc3339};

/// A task ranked by its number of comments.
#[derive(Debug, Serialize)]
pub struct PopularTask {
    /// The task's id.
    pub id: i64,
    /// Its title.
    pub title: String,
    /// Its status.
    pub status: String,
    /// How many comments it has.
    pub comment_count: i64,
}

/// The aggregates of `GET /api/stats`.
pub type TaskStats = serde_json::Value;

impl Store {
    /// The `limit` tasks with the most comments.
    pub async fn popular_tasks(&self, limit: u32) -> Result<Vec<PopularTask>, StoreError> {
        let db = self.database();
        let rows = db
            .read("select", "comments", move || async move {
                let mut connection = db.acquire().await?;
                sqlx::query(
                    "SELECT t.id, t.title, t.status, COUNT(c.id) AS comment_count \
                     FROM tasks t JOIN comments c ON c.task_id = t.id \
                     GROUP BY t.id, t.title, t.status \
                     ORDER BY comment_count DESC, t.id ASC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&mut *connection)
                .await
            })
            .await?;
        let tasks = rows
            .iter()
            .map(|row| {
                Ok(PopularTask {
                    id: row.try_get(0)?,
                    title: row.try_get(1)?,
                    status: row.try_get(2)?,
                    comment_count: row.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(crate::core::dependencies::database::DbError::from)?;
        Ok(tasks)
    }

    /// Aggregates over the whole tracker: expensive on purpose, so the cache carries it.
    pub async fn stats(&self) -> Result<TaskStats, StoreError> {
        let db = self.database();
        let stats = db
            .read("aggregate", "tasks", move || async move {
                let mut connection = db.acquire().await?;
                let counts = |sql: &'static str| sqlx::query(sql);
                let mut by_status = serde_json::Map::new();
                for row in
                    counts("SELECT status, COUNT(*) FROM tasks GROUP BY status ORDER BY status")
                        .fetch_all(&mut *connection)
                        .await?
                {
                    by_status.insert(row.try_get(0)?, json!(row.try_get::<i64, _>(1)?));
                }
                let mut by_priority = serde_json::Map::new();
                for row in counts(
                    "SELECT priority, COUNT(*) FROM tasks GROUP BY priority ORDER BY priority",
                )
                .fetch_all(&mut *connection)
                .await?
                {
                    by_priority.insert(row.try_get(0)?, json!(row.try_get::<i64, _>(1)?));
                }
                let scalar = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
                let tasks = scalar("SELECT COUNT(*) FROM tasks")
                    .fetch_one(&mut *connection)
                    .await?;
                let users = scalar("SELECT COUNT(*) FROM users")
                    .fetch_one(&mut *connection)
                    .await?;
                let comments = scalar("SELECT COUNT(*) FROM comments")
                    .fetch_one(&mut *connection)
                    .await?;
                let events = scalar("SELECT COUNT(*) FROM events")
                    .fetch_one(&mut *connection)
                    .await?;
                let day_ago = now_ms() - 86_400_000;
                let events_last_day: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE occurred_at >= $1")
                        .bind(day_ago)
                        .fetch_one(&mut *connection)
                        .await?;
                let mut busiest = Vec::new();
                for row in counts(
                    "SELECT u.id, u.name, COUNT(t.id) AS open_tasks FROM users u \
                     JOIN tasks t ON t.assignee_id = u.id WHERE t.status <> 'done' \
                     GROUP BY u.id, u.name ORDER BY open_tasks DESC, u.id ASC LIMIT 5",
                )
                .fetch_all(&mut *connection)
                .await?
                {
                    busiest.push(json!({
                        "user_id": row.try_get::<i64, _>(0)?,
                        "name": row.try_get::<String, _>(1)?,
                        "open_tasks": row.try_get::<i64, _>(2)?,
                    }));
                }
                Ok(json!({
                    "tasks": { "total": tasks, "by_status": by_status, "by_priority": by_priority },
                    "users": { "total": users, "busiest": busiest },
                    "comments": {
                        "total": comments,
                        "per_task": if tasks > 0 { comments as f64 / tasks as f64 } else { 0.0 },
                    },
                    "events": { "total": events, "last_24h": events_last_day },
                    "generated_at": rfc3339(now_ms()),
                }))
            })
            .await?;
        Ok(stats)
    }
}
