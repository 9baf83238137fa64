//! Tasks: lists (asked for as [`super::task_query`] describes), reads with their tags and
//! attachments, and writes that append to the audit log in the same transaction. The
//! aggregates are in [`super::task_stats`].

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::{AnyConnection, Connection, FromRow, Row};

use super::task_query::{
    push_filters, push_keyset, push_order, SortColumn, TaskFilter, TaskList, TaskPage,
};
use super::NewEvent;
use super::StoreError;
use super::{append_event, outbox, user_exists, Followups, Sql, Store, Written};
use crate::app::model::{now_ms, rfc3339, Attachment, Priority, Status, Task, TaskDetail};

const TASK_COLUMNS: &str =
    "id, title, description, status, priority, assignee_id, created_at, updated_at";

/// A task as stored.
#[derive(Debug, FromRow)]
struct TaskRow {
    id: i64,
    title: String,
    description: String,
    status: String,
    priority: String,
    assignee_id: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TaskRow {
    fn into_task(self, tags: Vec<String>) -> Task {
        Task {
            id: self.id,
            title: self.title,
            description: self.description,
            status: Status::parse(&self.status).unwrap_or(Status::Todo),
            priority: Priority::parse(&self.priority).unwrap_or(Priority::Medium),
            assignee_id: self.assignee_id,
            tags,
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        }
    }

    fn sort_value(&self, column: SortColumn) -> i64 {
        match column {
            SortColumn::Id => self.id,
            SortColumn::CreatedAt => self.created_at,
            SortColumn::UpdatedAt => self.updated_at,
        }
    }
}

/// A new task, validated.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// One line.
    pub title: String,
    /// Free text.
    pub description: String,
    /// Where it stands.
    pub status: Status,
    /// How urgent.
    pub priority: Priority,
    /// Who works on it.
    pub assignee_id: Option<i64>,
    /// Labels.
    pub tags: Vec<String>,
}

/// A partial update, validated: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TaskChanges {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New status.
    pub status: Option<Status>,
    /// New priority.
    pub priority: Option<Priority>,
    /// New assignee; `Some(None)` unassigns.
    pub assignee_id: Option<Option<i64>>,
    /// New labels, replacing the old.
    pub tags: Option<Vec<String>>,
}

/// The tags of each of `ids`.
async fn tags_of(
    connection: &mut AnyConnection,
    ids: &[i64],
) -> Result<BTreeMap<i64, Vec<String>>, sqlx::Error> {
    let mut tags: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    if ids.is_empty() {
        return Ok(tags);
    }
    let mut sql = Sql::new("SELECT task_id, tag FROM task_tags WHERE task_id IN (");
    sql.bind_list(ids).push(") ORDER BY task_id, tag");
    for row in sql.query().fetch_all(connection).await? {
        let task_id: i64 = row.try_get(0)?;
        tags.entry(task_id).or_default().push(row.try_get(1)?);
    }
    Ok(tags)
}

async fn with_tags(
    connection: &mut AnyConnection,
    rows: Vec<TaskRow>,
) -> Result<Vec<Task>, sqlx::Error> {
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let mut tags = tags_of(connection, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let tags = tags.remove(&row.id).unwrap_or_default();
            row.into_task(tags)
        })
        .collect())
}

async fn insert_tags(
    connection: &mut AnyConnection,
    task_id: i64,
    tags: &[String],
) -> Result<(), sqlx::Error> {
    for tag in tags {
        sqlx::query("INSERT INTO task_tags (task_id, tag) VALUES ($1, $2)")
            .bind(task_id)
            .bind(tag.clone())
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

fn unknown_assignee() -> StoreError {
    StoreError::Invalid("assignee_id", "no user has this id".to_owned())
}

impl Store {
    /// One page of tasks matching `filter`.
    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<TaskList, StoreError> {
        let db = self.database();
        let result = db
            .read("select", "tasks", move || async move {
                let mut connection = db.acquire().await?;
                let mut sql = Sql::new(&format!("SELECT {TASK_COLUMNS} FROM tasks"));
                push_filters(&mut sql, filter);
                let (limit, offset) = match &filter.page {
                    TaskPage::Cursor { limit, after } => {
                        if let Some(after) = after {
                            push_keyset(&mut sql, filter.sort, *after);
                        }
                        (i64::from(*limit) + 1, 0)
                    }
                    TaskPage::Offset { page, per_page } => (
                        i64::from(*per_page),
                        i64::from(page.saturating_sub(1)) * i64::from(*per_page),
                    ),
                };
                push_order(&mut sql, filter.sort);
                sql.push(" LIMIT ")
                    .bind(limit)
                    .push(" OFFSET ")
                    .bind(offset);
                let rows = sql.query().fetch_all(&mut *connection).await?;
                let mut rows = rows
                    .iter()
                    .map(TaskRow::from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                let mut next = None;
                let mut total = None;
                match &filter.page {
                    TaskPage::Cursor { limit, .. } => {
                        if rows.len() > *limit as usize {
                            rows.truncate(*limit as usize);
                            next = rows
                                .last()
                                .map(|row| (row.sort_value(filter.sort.column), row.id));
                        }
                    }
                    TaskPage::Offset { .. } => {
                        let mut count = Sql::new("SELECT COUNT(*) FROM tasks");
                        push_filters(&mut count, filter);
                        let row = count.query().fetch_one(&mut *connection).await?;
                        total = Some(row.try_get::<i64, _>(0)?);
                    }
                }
                let tasks = with_tags(&mut connection, rows).await?;
                Ok(TaskList { tasks, next, total })
            })
            .await?;
        Ok(result)
    }

    /// The task `id` with its comment count and attachments, if it exists.
    pub async fn task(&self, id: i64) -> Result<Option<TaskDetail>, StoreError> {
        let db = self.database();
        let detail = db
            .read("select", "tasks", move || async move {
                let mut connection = db.acquire().await?;
                detail_on(&mut connection, id).await
            })
            .await?;
        Ok(detail)
    }

    /// Creates a task and logs it; returns the stored task, read in the same transaction, with
    /// the jobs `followups` make of it stored in the outbox.
    pub async fn create_task(
        &self,
        new: &NewTask,
        actor: &str,
        followups: Followups<'_, TaskDetail>,
    ) -> Result<Written<TaskDetail>, StoreError> {
        let db = self.database();
        let written = db
            .observe("insert", "tasks", async {
                let mut connection = db.acquire().await?;
                let mut tx = connection.begin().await?;
                if let Some(assignee) = new.assignee_id {
                    if !user_exists(&mut tx, assignee).await? {
                        return Ok(None);
                    }
                }
                let now = now_ms();
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO tasks (title, description, status, priority, assignee_id, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
                )
                .bind(new.title.clone())
                .bind(new.description.clone())
                .bind(new.status.as_str())
                .bind(new.priority.as_str())
                .bind(new.assignee_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                insert_tags(&mut tx, id, &new.tags).await?;
                let event = NewEvent::about(actor, "create", "task", id).with_data(json!({
                    "title": new.title, "status": new.status, "priority": new.priority,
                    "assignee_id": new.assignee_id, "tags": new.tags,
                }));
                append_event(&mut tx, &event, now).await?;
                let written = read_back(&mut tx, id, followups, now).await?;
                tx.commit().await?;
                Ok(Some(written))
            })
            .await?
            .ok_or_else(unknown_assignee)?;
        Ok(written)
    }

    /// Applies `changes` to task `id` and logs them; returns the updated task.
    pub async fn update_task(
        &self,
        id: i64,
        changes: &TaskChanges,
        actor: &str,
        followups: Followups<'_, TaskDetail>,
    ) -> Result<Written<TaskDetail>, StoreError> {
        let db = self.database();
        let outcome = db
            .observe("update", "tasks", async {
                let mut connection = db.acquire().await?;
                let mut tx = connection.begin().await?;
                if let Some(Some(assignee)) = changes.assignee_id {
                    if !user_exists(&mut tx, assignee).await? {
                        return Ok(Err(unknown_assignee()));
                    }
                }
                let now = now_ms();
                let mut sql = Sql::new("UPDATE tasks SET updated_at = ");
                sql.bind(now);
                let mut changed = serde_json::Map::new();
                if let Some(title) = &changes.title {
                    sql.push(", title = ").bind(title.as_str());
                    changed.insert("title".into(), json!(title));
                }
                if let Some(description) = &changes.description {
                    sql.push(", description = ").bind(description.as_str());
                    changed.insert("description".into(), json!(description));
                }
                if let Some(status) = changes.status {
                    sql.push(", status = ").bind(status.as_str());
                    changed.insert("status".into(), json!(status));
                }
                if let Some(priority) = changes.priority {
                    sql.push(", priority = ").bind(priority.as_str());
                    changed.insert("priority".into(), json!(priority));
                }
                if let Some(assignee) = changes.assignee_id {
                    match assignee {
                        Some(user) => sql.push(", assignee_id = ").bind(user),
                        None => sql.push(", assignee_id = NULL"),
                    };
                    changed.insert("assignee_id".into(), json!(assignee));
                }
                sql.push(" WHERE id = ").bind(id);
                let updated = sql.query().execute(&mut *tx).await?.rows_affected();
                if updated == 0 {
                    return Ok(Err(StoreError::NotFound));
                }
                if let Some(tags) = &changes.tags {
                    sqlx::query("DELETE FROM task_tags WHERE task_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    insert_tags(&mut tx, id, tags).await?;
                    changed.insert("tags".into(), json!(tags));
                }
                let event = NewEvent::about(actor, "update", "task", id)
                    .with_data(serde_json::Value::Object(changed));
                append_event(&mut tx, &event, now).await?;
                let written = read_back(&mut tx, id, followups, now).await?;
                tx.commit().await?;
                Ok(Ok(written))
            })
            .await?;
        outcome
    }

    /// Deletes task `id` with its comments and attachments, and logs it, with the jobs
    /// `followups` make stored in the outbox.
    pub async fn delete_task(
        &self,
        id: i64,
        actor: &str,
        followups: Followups<'_, i64>,
    ) -> Result<Written<()>, StoreError> {
        let db = self.database();
        let deleted = db
            .observe("delete", "tasks", async {
                let mut connection = db.acquire().await?;
                let mut tx = connection.begin().await?;
                let deleted = sqlx::query("DELETE FROM tasks WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    return Ok(None);
                }
                let now = now_ms();
                let event = NewEvent::about(actor, "delete", "task", id);
                append_event(&mut tx, &event, now).await?;
                let outbox = outbox::put(&mut tx, followups(&id), now).await?;
                tx.commit().await?;
                Ok(Some(Written { value: (), outbox }))
            })
            .await?;
        deleted.ok_or(StoreError::NotFound)
    }
}

/// The task `id` with its comment count and attachments, if it exists, read on `connection`.
async fn detail_on(
    connection: &mut AnyConnection,
    id: i64,
) -> Result<Option<TaskDetail>, sqlx::Error> {
    let query = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(query))
        .bind(id)
        .fetch_optional(&mut *connection)
        .await?
    else {
        return Ok(None);
    };
    let row = TaskRow::from_row(&row)?;
    let mut tasks = with_tags(connection, vec![row]).await?;
    let comment_count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM comments WHERE task_id = $1")
        .bind(id)
        .fetch_one(&mut *connection)
        .await?;
    let attachments = attachments_of(connection, id).await?;
    Ok(tasks.pop().map(|task| TaskDetail {
        task,
        comment_count,
        attachments,
    }))
}

/// Task `id` as the transaction on `connection` wrote it, with the jobs `followups` make of it
/// stored in the outbox at `now`.
async fn read_back(
    connection: &mut AnyConnection,
    id: i64,
    followups: Followups<'_, TaskDetail>,
    now: i64,
) -> Result<Written<TaskDetail>, sqlx::Error> {
    let detail = detail_on(connection, id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    let outbox = outbox::put(connection, followups(&detail), now).await?;
    Ok(Written {
        value: detail,
        outbox,
    })
}

/// The attachments of task `id`, oldest first.
async fn attachments_of(
    connection: &mut AnyConnection,
    task_id: i64,
) -> Result<Vec<Attachment>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT a.id, a.image_key, a.filename, i.content_type, i.width, i.height, a.created_at \
         FROM attachments a JOIN images i ON i.key = a.image_key \
         WHERE a.task_id = $1 ORDER BY a.id",
    )
    .bind(task_id)
    .fetch_all(connection)
    .await?;
    rows.iter()
        .map(|row| {
            let key: String = row.try_get(1)?;
            Ok(Attachment {
                id: row.try_get(0)?,
                task_id,
                url: format!("/images/{key}"),
                filename: row.try_get(2)?,
                content_type: row.try_get(3)?,
                width: row.try_get(4)?,
                height: row.try_get(5)?,
                created_at: rfc3339(row.try_get(6)?),
            })
        })
        .collect()
}
