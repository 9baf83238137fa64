-- The jobs a write hands on (its webhook notification, its edge purges), stored in the write's
-- own transaction and relayed to the job queues once it commits: a change acknowledged is a
-- change whose jobs are kept, whatever happens to the process or to Redis after the commit.
-- A row is deleted once its jobs are queued (ids are never reused, so a late delete cannot
-- take a newer row). `due_at` is when a sweep may take it: 10 s after the write (a row still
-- there was left by an instance that stopped first, or refused by Redis), and again 10 s after
-- each sweep that took it (a lease, so that no other sweep takes it meanwhile).
-- postgres/ holds the same migration for PostgreSQL: keep the two in step.
CREATE TABLE job_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    due_at BIGINT NOT NULL,
    jobs TEXT NOT NULL
);
CREATE INDEX job_outbox_by_due_time ON job_outbox (due_at, id);
