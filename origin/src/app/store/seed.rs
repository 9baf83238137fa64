//! Demo data for a new database: users, tasks with tags, a skewed spread of comments (a few
//! tasks are hot, as in real trackers), a long audit log and a few generated images. The same
//! seed gives the same data, so benchmarks and screenshots are repeatable.

use fastrand::Rng;
use serde_json::json;
use sqlx::Connection;

use super::images::content_key;
use super::{NewImage, Sql, Store, StoreError};
use crate::app::model::{now_ms, Priority, Status};
use crate::core::dependencies::database::DbError;

/// How much demo data to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedSize {
    /// Users.
    pub users: usize,
    /// Tasks, with ids 1..=tasks.
    pub tasks: usize,
    /// Comments.
    pub comments: usize,
    /// Audit-log events.
    pub events: usize,
    /// Generated images, attached to the first tasks.
    pub images: usize,
}

impl SeedSize {
    /// The default demo: 200 users, 1,000 tasks, 20,000 comments, 100,000 events, 3 images.
    pub const FULL: Self = Self {
        users: 200,
        tasks: 1000,
        comments: 20_000,
        events: 100_000,
        images: 3,
    };
    /// A small demo for tests.
    pub const SMALL: Self = Self {
        users: 20,
        tasks: 60,
        comments: 400,
        events: 2500,
        images: 1,
    };
}

const FIRST: &[&str] = &[
    "Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Alan", "Radia",
    "Edsger", "Hedy", "Donald", "Karen", "John", "Shafi", "Tim", "Sophie", "Niklaus", "Leslie",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "Turing",
    "Perlman",
    "Dijkstra",
    "Lamarr",
    "Knuth",
    "Jones",
    "McCarthy",
    "Goldwasser",
    "Berners-Lee",
    "Wilson",
    "Wirth",
    "Lamport",
];
const VERBS: &[&str] = &[
    "Fix",
    "Add",
    "Remove",
    "Refactor",
    "Document",
    "Speed up",
    "Investigate",
    "Migrate",
    "Test",
    "Review",
];
const OBJECTS: &[&str] = &[
    "the login form",
    "image uploads",
    "CSV export",
    "the cache warmer",
    "rate limiting",
    "the task board",
    "comment pagination",
    "search indexing",
    "the billing page",
    "dark mode",
    "email notifications",
    "the audit log",
    "API tokens",
    "mobile layout",
    "the onboarding flow",
    "webhook retries",
];
const TAGS: &[&str] = &[
    "bug",
    "feature",
    "frontend",
    "backend",
    "performance",
    "security",
    "docs",
    "ux",
    "infra",
    "good-first-issue",
];
const SENTENCES: &[&str] = &[
    "I can reproduce this on the staging environment.",
    "This looks related to the change we shipped last week.",
    "Could we add a test for the edge case with empty input?",
    "Benchmarks show a clear improvement after the fix.",
    "Let's pair on this tomorrow morning.",
    "The root cause is a missing index on the lookup table.",
    "Customers reported this twice since Monday.",
    "Moving this to the next sprint, it depends on the API change.",
    "Screenshots attached; the layout breaks below 400px.",
    "Done, please review the pull request when you have a minute.",
];

const DAY_MS: i64 = 86_400_000;
/// Bound on loading the demo data.
const SEED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
/// The advisory lock that serializes seeding across instances.
const SEED_LOCK: i64 = 0x7261_6d70;

/// Multi-row inserts of one table, flushed every 400 rows.
struct Batch {
    head: &'static str,
    sql: Sql,
    rows: usize,
}

impl Batch {
    fn new(head: &'static str) -> Self {
        Self {
            head,
            sql: Sql::new(head),
            rows: 0,
        }
    }

    fn row(&mut self) -> &mut Sql {
        self.rows += 1;
        self.sql.push(if self.rows == 1 { "(" } else { ", (" });
        &mut self.sql
    }

    async fn flush_if_full(&mut self, tx: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
        if self.rows >= 400 {
            self.flush(tx).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, tx: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
        if self.rows > 0 {
            self.sql.query().execute(tx).await?;
            self.sql = Sql::new(self.head);
            self.rows = 0;
        }
        Ok(())
    }
}

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.usize(..items.len())]
}

/// A task index skewed towards the first tasks: a few are hot, most are quiet.
fn skewed(rng: &mut Rng, count: usize) -> usize {
    let x = rng.f64();
    ((x * x * x) * count as f64) as usize % count.max(1)
}

impl Store {
    /// Fills an empty database with demo data of `size`; does nothing if any task exists.
    /// Returns whether it seeded.
    pub async fn seed_if_empty(&self, size: SeedSize) -> Result<bool, StoreError> {
        let db = self.database();
        let seeded = db
            .observe_within(SEED_TIMEOUT, "seed", "all", async {
                let mut connection = db.acquire().await?;
                let mut tx = connection.begin().await?;
                // Instances starting together: one seeds, the others then find data.
                db.lock_for_writing(&mut tx, SEED_LOCK).await?;
                let tasks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks")
                    .fetch_one(&mut *tx)
                    .await?;
                if tasks > 0 {
                    return Ok(false);
                }
                seed_rows(&mut tx, size, &mut Rng::with_seed(0x5eed)).await?;
                tx.commit().await?;
                Ok(true)
            })
            .await?;
        if !seeded {
            return Ok(false);
        }
        for i in 0..size.images.min(size.tasks) {
            let image = demo_image(i);
            let task = i64::try_from(i + 1).map_err(|e| DbError::Query(e.to_string()))?;
            self.attach_image(task, &image, "seed").await?;
        }
        Ok(true)
    }
}

async fn seed_rows(
    tx: &mut sqlx::AnyConnection,
    size: SeedSize,
    rng: &mut Rng,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let start = now - 180 * DAY_MS;
    let mut users = Batch::new("INSERT INTO users (name, email, created_at) VALUES ");
    for i in 0..size.users {
        let (first, last) = (pick(rng, FIRST), pick(rng, LAST));
        users
            .row()
            .bind(format!("{first} {last}"))
            .push(", ")
            .bind(format!(
                "{}.{}{i}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            ))
            .push(", ")
            .bind(start - rng.i64(0..365 * DAY_MS))
            .push(")");
        users.flush_if_full(tx).await?;
    }
    users.flush(tx).await?;

    let user = |rng: &mut Rng| rng.i64(1..=size.users.max(1) as i64);
    let mut created = Vec::with_capacity(size.tasks);
    let mut tasks = Batch::new(
        "INSERT INTO tasks (title, description, status, priority, assignee_id, created_at, updated_at) VALUES ",
    );
    let mut task_tags = Vec::new();
    for i in 0..size.tasks {
        let at = rng.i64(start..now - DAY_MS);
        created.push(at);
        let status = Status::ALL[[0, 0, 1, 2, 2][rng.usize(..5)]];
        let priority = Priority::ALL[[0, 1, 1, 1, 2, 2, 3][rng.usize(..7)]];
        let sql = tasks.row();
        sql.bind(format!("{} {}", pick(rng, VERBS), pick(rng, OBJECTS)))
            .push(", ")
            .bind(format!("{} {}", pick(rng, SENTENCES), pick(rng, SENTENCES)))
            .push(", ")
            .bind(status.as_str())
            .push(", ")
            .bind(priority.as_str());
        if rng.u8(..100) < 85 {
            sql.push(", ").bind(user(rng));
        } else {
            sql.push(", NULL");
        }
        sql.push(", ")
            .bind(at)
            .push(", ")
            .bind(rng.i64(at..now))
            .push(")");
        tasks.flush_if_full(tx).await?;
        let first_tag = rng.usize(..TAGS.len());
        for tag in TAGS.iter().cycle().skip(first_tag).take(rng.usize(..=3)) {
            task_tags.push(((i + 1) as i64, *tag));
        }
    }
    tasks.flush(tx).await?;
    let mut tags = Batch::new("INSERT INTO task_tags (task_id, tag) VALUES ");
    for (task, tag) in task_tags {
        tags.row().bind(task).push(", ").bind(tag).push(")");
        tags.flush_if_full(tx).await?;
    }
    tags.flush(tx).await?;

    let mut comments =
        Batch::new("INSERT INTO comments (task_id, author_id, body, created_at) VALUES ");
    for _ in 0..size.comments {
        let task = skewed(rng, size.tasks);
        comments
            .row()
            .bind((task + 1) as i64)
            .push(", ")
            .bind(user(rng))
            .push(", ")
            .bind(pick(rng, SENTENCES))
            .push(", ")
            .bind(rng.i64(created[task]..now))
            .push(")");
        comments.flush_if_full(tx).await?;
    }
    comments.flush(tx).await?;
    seed_events(tx, size, rng, start, now).await
}

async fn seed_events(
    tx: &mut sqlx::AnyConnection,
    size: SeedSize,
    rng: &mut Rng,
    start: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut events = Batch::new(
        "INSERT INTO events (occurred_at, actor, action, entity_type, entity_id, data) VALUES ",
    );
    let mut times: Vec<i64> = (0..size.events).map(|_| rng.i64(start..now)).collect();
    times.sort_unstable();
    for at in times {
        let (action, entity_type) = [
            ("update", "task"),
            ("update", "task"),
            ("create", "comment"),
            ("create", "task"),
            ("login", "user"),
            ("delete", "comment"),
        ][rng.usize(..6)];
        let actor = format!("user:{}", rng.usize(1..=size.users.max(1)));
        let entity = rng.usize(1..=size.tasks.max(1));
        let data = json!({ "field": pick(rng, &["status", "priority", "title", "assignee_id"]), "note": pick(rng, SENTENCES) });
        events
            .row()
            .bind(at)
            .push(", ")
            .bind(actor)
            .push(", ")
            .bind(action)
            .push(", ")
            .bind(entity_type)
            .push(", ")
            .bind(entity.to_string())
            .push(", ")
            .bind(data.to_string())
            .push(")");
        events.flush_if_full(tx).await?;
    }
    events.flush(tx).await
}

/// A generated photo-like PNG: smooth gradients with a few discs, different for each `index`.
fn demo_image(index: usize) -> NewImage {
    let (width, height) = (640_u32, 427_u32);
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    let hue = (index as f32 * 2.1).sin().abs();
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
            let disc = ((fx - 0.3 - 0.2 * hue).powi(2) + (fy - 0.5).powi(2)).sqrt() < 0.18;
            let sky = [
                40.0 + 150.0 * fy,
                90.0 + 120.0 * hue * fy,
                200.0 - 80.0 * fx,
            ];
            let rgb = if disc { [240.0, 200.0, 80.0] } else { sky };
            pixels.extend(rgb.map(|c| c.clamp(0.0, 255.0) as u8));
        }
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let written = encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(&pixels));
    if let Err(error) = written {
        tracing::warn!(%error, "demo image not encoded");
    }
    NewImage {
        key: content_key(&bytes, "png"),
        content_type: "image/png",
        width: i64::from(width),
        height: i64::from(height),
        filename: format!("demo-{}.png", index + 1),
        bytes,
    }
}
