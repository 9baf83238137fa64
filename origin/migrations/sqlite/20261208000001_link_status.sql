-- Links are fetched in the background (the crawler queue): each records where its fetch stands.
-- postgres/ holds the same migration for PostgreSQL: keep the two in step.
-- Links stored before this migration were fetched when they were added.
ALTER TABLE task_links ADD COLUMN status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'fetched', 'failed'));
ALTER TABLE task_links ADD COLUMN error TEXT;
ALTER TABLE task_links ADD COLUMN fetched_at BIGINT;
UPDATE task_links SET status = 'fetched', fetched_at = created_at;

-- Clean-up looks for images no attachment refers to; deleting an image checks the same.
CREATE INDEX attachments_by_image ON attachments (image_key);
