-- The jobs a write hands on (its webhook notification, its edge purges), stored in the write's
-- own transaction and relayed to the job queues once it commits: a change acknowledged is a
-- change whose jobs are kept, whatever happens to the process or to Redis after the commit.
-- A row is deleted once its jobs are queued (ids are never reused, so a late delete cannot
-- take a newer row); rows older than a few seconds are left by an
-- instance that stopped first, and any instance relays them.
-- postgres/ holds the same migration for PostgreSQL: keep the two in step.
CREATE TABLE job_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at BIGINT NOT NULL,
    jobs TEXT NOT NULL
);
CREATE INDEX job_outbox_by_time ON job_outbox (created_at, id);
