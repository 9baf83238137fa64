-- Links attached to tasks, with the title fetched from the linked page (a link preview).
CREATE TABLE task_links (
    id          INTEGER PRIMARY KEY,
    task_id     BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    url         TEXT NOT NULL,
    title       TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX task_links_by_task ON task_links (task_id, id);
