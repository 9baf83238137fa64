//! How a task list is asked for: filters, the sort column and direction, the page (a keyset
//! cursor or an offset), and the SQL each adds to the list query.

use super::Sql;
use crate::app::model::{Status, Task};

/// The column a list is ordered by (ties broken by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    /// Creation order.
    Id,
    /// When created.
    CreatedAt,
    /// When last changed.
    UpdatedAt,
}

/// A list order, as written in `?sort=`: a column name, `-` first for descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// The column.
    pub column: SortColumn,
    /// Largest first.
    pub descending: bool,
}

impl Default for Sort {
    /// Most recently updated first.
    fn default() -> Self {
        Self {
            column: SortColumn::UpdatedAt,
            descending: true,
        }
    }
}

impl Sort {
    /// The order `text` names (`id`, `created_at`, `updated_at`, each optionally after `-`).
    pub fn parse(text: &str) -> Option<Self> {
        let (descending, name) = match text.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, text),
        };
        let column = match name {
            "id" => SortColumn::Id,
            "created_at" => SortColumn::CreatedAt,
            "updated_at" => SortColumn::UpdatedAt,
            _ => return None,
        };
        Some(Self { column, descending })
    }

    /// The `?sort=` text of this order.
    pub fn name(self) -> String {
        let column = match self.column {
            SortColumn::Id => "id",
            SortColumn::CreatedAt => "created_at",
            SortColumn::UpdatedAt => "updated_at",
        };
        format!("{}{column}", if self.descending { "-" } else { "" })
    }
}

/// Which page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskPage {
    /// Keyset pagination: `limit` rows after the position `(sort value, id)`.
    Cursor {
        /// Rows per page.
        limit: u32,
        /// The last row of the previous page.
        after: Option<(i64, i64)>,
    },
    /// Offset pagination, 1-based.
    Offset {
        /// The page number.
        page: u32,
        /// Rows per page.
        per_page: u32,
    },
}

/// What `GET /api/tasks` asks for.
#[derive(Debug, Clone)]
pub struct TaskFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only this assignee.
    pub assignee: Option<i64>,
    /// Only tasks with this tag.
    pub tag: Option<String>,
    /// Only tasks changed at or after this time (ms).
    pub updated_since: Option<i64>,
    /// The order.
    pub sort: Sort,
    /// The page.
    pub page: TaskPage,
}

/// One page of tasks.
#[derive(Debug)]
pub struct TaskList {
    /// The tasks.
    pub tasks: Vec<Task>,
    /// The position after the last task, when more follow (cursor pagination).
    pub next: Option<(i64, i64)>,
    /// How many tasks match (offset pagination).
    pub total: Option<i64>,
}

pub(super) fn push_filters(sql: &mut Sql, filter: &TaskFilter) {
    sql.push(" WHERE 1 = 1");
    if let Some(status) = filter.status {
        sql.push(" AND status = ").bind(status.as_str());
    }
    if let Some(assignee) = filter.assignee {
        sql.push(" AND assignee_id = ").bind(assignee);
    }
    if let Some(tag) = &filter.tag {
        sql.push(" AND id IN (SELECT task_id FROM task_tags WHERE tag = ")
            .bind(tag.as_str())
            .push(")");
    }
    if let Some(since) = filter.updated_since {
        sql.push(" AND updated_at >= ").bind(since);
    }
}

fn column_name(column: SortColumn) -> &'static str {
    match column {
        SortColumn::Id => "id",
        SortColumn::CreatedAt => "created_at",
        SortColumn::UpdatedAt => "updated_at",
    }
}

pub(super) fn push_keyset(sql: &mut Sql, sort: Sort, (value, id): (i64, i64)) {
    let op = if sort.descending { "<" } else { ">" };
    let column = column_name(sort.column);
    if sort.column == SortColumn::Id {
        sql.push(&format!(" AND id {op} ")).bind(id);
    } else {
        // A row-value comparison, which both databases answer with an index range scan.
        sql.push(&format!(" AND ({column}, id) {op} ("))
            .bind(value)
            .push(", ")
            .bind(id)
            .push(")");
    }
}

pub(super) fn push_order(sql: &mut Sql, sort: Sort) {
    let direction = if sort.descending { "DESC" } else { "ASC" };
    let column = column_name(sort.column);
    if sort.column == SortColumn::Id {
        sql.push(&format!(" ORDER BY id {direction}"));
    } else {
        sql.push(&format!(" ORDER BY {column} {direction}, id {direction}"));
    }
}
