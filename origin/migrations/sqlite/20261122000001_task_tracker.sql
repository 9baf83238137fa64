-- The task tracker's schema (SQLite). Times are milliseconds since the Unix epoch.
-- postgres/ holds the same migration for PostgreSQL: keep the two in step.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE tasks (
    id           INTEGER PRIMARY KEY,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL CHECK (status IN ('todo', 'in_progress', 'done')),
    priority     TEXT NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    assignee_id  BIGINT REFERENCES users (id),
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX tasks_by_update ON tasks (updated_at, id);
CREATE INDEX tasks_by_status ON tasks (status, updated_at, id);
CREATE INDEX tasks_by_assignee ON tasks (assignee_id, updated_at, id);

CREATE TABLE task_tags (
    task_id  BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    tag      TEXT NOT NULL,
    PRIMARY KEY (task_id, tag)
);
CREATE INDEX task_tags_by_tag ON task_tags (tag, task_id);

CREATE TABLE comments (
    id          INTEGER PRIMARY KEY,
    task_id     BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    author_id   BIGINT NOT NULL REFERENCES users (id),
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX comments_by_task ON comments (task_id, id);

CREATE TABLE images (
    key           TEXT PRIMARY KEY,
    content_type  TEXT NOT NULL,
    width         BIGINT NOT NULL,
    height        BIGINT NOT NULL,
    bytes         BLOB NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE attachments (
    id          INTEGER PRIMARY KEY,
    task_id     BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    image_key   TEXT NOT NULL REFERENCES images (key),
    filename    TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);
CREATE INDEX attachments_by_task ON attachments (task_id, id);

CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    occurred_at  BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    entity_type  TEXT NOT NULL,
    entity_id    TEXT NOT NULL,
    data         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_time ON events (occurred_at, id);
CREATE INDEX events_by_actor ON events (actor, occurred_at, id);
CREATE INDEX events_by_entity ON events (entity_type, entity_id, occurred_at, id);
