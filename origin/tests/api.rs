//! The task-tracker API over real HTTP, each test run twice: on an SQLite file and on a
//! throwaway PostgreSQL database, with the same migrations and the same expectations.

mod common;

use common::{cache_status, metrics, start, PostgresDb, TestOrigin};
use origin::app::UploadLimits;
use origin::config::Config;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// An origin on one backend, and a client for it.
struct Api {
    origin: TestOrigin,
    postgres: Option<PostgresDb>,
    client: Client,
}

impl Api {
    async fn start(backend: Backend, mut config: Config) -> Self {
        let postgres = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PostgresDb::create().await),
        };
        if let Some(db) = &postgres {
            config.database.url = db.url.clone();
        }
        Self {
            origin: start(config).await,
            postgres,
            client: Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin.base)
    }

    async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("reachable")
    }

    async fn json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("JSON body")
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Response {
        self.client
            .request(method, self.url(path))
            .header("x-actor", "tester")
            .json(&body)
            .send()
            .await
            .expect("reachable")
    }

    async fn finish(self) {
        drop(self.origin);
        if let Some(db) = self.postgres {
            db.drop_now().await;
        }
    }
}

/// The `field` names listed in a validation error.
async fn invalid_fields(response: Response) -> Vec<String> {
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(body["code"], "VALIDATION_ERROR");
    assert_eq!(body["statusCode"], 422);
    body["metadata"]["fields"]
        .as_array()
        .expect("fields listed")
        .iter()
        .map(|f| f["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn ids(list: &Value) -> Vec<i64> {
    list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|t| t["id"].as_i64().expect("id"))
        .collect()
}

/// A `width`×`height` RGB PNG.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&pixels))
        .expect("encode");
    bytes
}

macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Backend::Postgres).await
            })*
        }
    };
}

on_both_databases!(
    demo_data_and_task_crud_with_audit_trail,
    invalid_input_is_refused_field_by_field,
    task_lists_filter_sort_and_paginate,
    comments_paginate_and_writes_invalidate_the_cache,
    attachments_are_checked_stored_and_served,
    audit_log_lists_exports_and_bulk_inserts,
    stats_popular_and_pages,
    cold_key_stampede_reaches_the_database_once,
);

async fn demo_data_and_task_crud_with_audit_trail(backend: Backend) {
    let api = Api::start(backend, Config::default()).await;
    let first = api.json("/api/tasks/1").await;
    assert_eq!(first["id"], 1, "demo tasks have ids from 1");
    let stats = api.json("/api/stats").await;
    assert_eq!(stats["tasks"]["total"], 60);
    assert_eq!(stats["users"]["total"], 20);
    assert_eq!(stats["comments"]["total"], 400);

    let body =
        json!({"title": "Ship it", "priority": "high", "assignee_id": 2, "tags": ["ops", "docs"]});
    let created = api.send(reqwest::Method::POST, "/api/tasks", body).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let task: Value = created.json().await.expect("task");
    let id = task["id"].as_i64().expect("id");
    assert_eq!(location, format!("/api/tasks/{id}"));
    assert_eq!(task["status"], "todo", "status defaults to todo");
    assert_eq!(
        task["tags"],
        json!(["docs", "ops"]),
        "tags come back sorted"
    );

    let patch = json!({"status": "done", "assignee_id": null, "title": "Shipped"});
    let updated = api.send(reqwest::Method::PATCH, &location, patch).await;
    assert_eq!(updated.status(), StatusCode::OK);
    let updated: Value = updated.json().await.expect("task");
    assert_eq!(updated["status"], "done");
    assert_eq!(updated["assignee_id"], Value::Null, "null unassigns");
    assert_eq!(updated["priority"], "high", "absent fields are kept");
    assert_eq!(api.json(&location).await["title"], "Shipped");

    let deleted = api
        .send(reqwest::Method::DELETE, &location, Value::Null)
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(api.get(&location).await.status(), StatusCode::NOT_FOUND);
    let again = api
        .send(reqwest::Method::DELETE, &location, Value::Null)
        .await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    let trail = api
        .json(&format!("/api/events?entity_type=task&entity_id={id}"))
        .await;
    let actions: Vec<&str> = trail["data"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(actions, ["delete", "update", "create"], "newest first");
    assert!(trail["data"]
        .as_array()
        .expect("events")
        .iter()
        .all(|e| e["actor"] == "tester"));
    assert_eq!(trail["data"][1]["data"]["status"], "done");
    api.finish().await;
}

async fn invalid_input_is_refused_field_by_field(backend: Backend) {
    let api = Api::start(backend, Config::default()).await;
    let bad = json!({"title": " ", "status": "later", "priority": "meh", "tags": ["Not OK"], "assignee_id": -1});
    let fields = invalid_fields(api.send(reqwest::Method::POST, "/api/tasks", bad).await).await;
    assert_eq!(
        fields,
        ["title", "status", "priority", "assignee_id", "tags"]
    );
    let missing = api
        .send(reqwest::Method::POST, "/api/tasks", json!({}))
        .await;
    assert_eq!(invalid_fields(missing).await, ["title"]);
    let ghost = json!({"title": "x", "assignee_id": 99999});
    let ghost = api.send(reqwest::Method::POST, "/api/tasks", ghost).await;
    assert_eq!(invalid_fields(ghost).await, ["assignee_id"]);
    let unknown = json!({"title": "x", "colour": "red"});
    let unknown = api.send(reqwest::Method::POST, "/api/tasks", unknown).await;
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let broken = api
        .client
        .post(api.url("/api/tasks"))
        .header("content-type", "application/json")
        .body("{\"title\": ")
        .send()
        .await
        .expect("reachable");
    assert_eq!(broken.status(), StatusCode::BAD_REQUEST);
    let body: Value = broken.json().await.expect("JSON error");
    assert_eq!(body["code"], "VALIDATION_ERROR");
    let untyped = api
        .client
        .post(api.url("/api/tasks"))
        .body("{}")
        .send()
        .await
        .expect("reachable");
    assert_eq!(untyped.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    for path in [
        "/api/tasks/999999",
        "/api/tasks/abc",
        "/api/tasks/0",
        "/api/tasks/999999/comments",
    ] {
        let response = api.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.expect("JSON error");
        assert_eq!(body["code"], "NOT_FOUND");
    }
    let query = api
        .get("/api/tasks?limit=500&sort=colour&status=later&updated_since=yesterday")
        .await;
    assert_eq!(
        invalid_fields(query).await,
        ["status", "updated_since", "sort", "limit"]
    );
    let cursor = api.get("/api/tasks?cursor=bm90IGEgY3Vyc29y").await;
    assert_eq!(invalid_fields(cursor).await, ["cursor"]);
    let comment = json!({"body": ""});
    let comment = api
        .send(reqwest::Method::POST, "/api/tasks/1/comments", comment)
        .await;
    assert_eq!(invalid_fields(comment).await, ["author_id", "body"]);
    api.finish().await;
}

async fn task_lists_filter_sort_and_paginate(backend: Backend) {
    let api = Api::start(backend, Config::default()).await;
    // Cursor pagination visits every task exactly once, in order.
    let mut seen = Vec::new();
    let mut path = "/api/tasks?sort=id&limit=7".to_owned();
    loop {
        let page = api.json(&path).await;
        seen.extend(ids(&page));
        match page["pagination"]["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/tasks?sort=id&limit=7&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, (1..=60).collect::<Vec<_>>());

    // The default order is most recently updated first, across pages too.
    let first = api.json("/api/tasks?limit=30").await;
    let cursor = first["pagination"]["next_cursor"].as_str().expect("more");
    let second = api
        .json(&format!("/api/tasks?limit=30&cursor={cursor}"))
        .await;
    let stamps: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|p| p["data"].as_array().expect("data").clone())
        .map(|t| t["updated_at"].as_str().expect("time").to_owned())
        .collect();
    assert_eq!(stamps.len(), 60);
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "descending");
    let wrong_sort = api
        .get(&format!("/api/tasks?sort=id&cursor={cursor}"))
        .await;
    assert_eq!(invalid_fields(wrong_sort).await, ["cursor"]);

    // Offset pagination reports the total.
    let page = api.json("/api/tasks?page=3&per_page=25&sort=id").await;
    assert_eq!(page["pagination"]["total"], 60);
    assert_eq!(page["pagination"]["total_pages"], 3);
    assert_eq!(ids(&page), (51..=60).collect::<Vec<_>>());

    // Filters only return matching tasks, and the counts add up.
    let mut total = 0;
    for status in ["todo", "in_progress", "done"] {
        let page = api
            .json(&format!("/api/tasks?status={status}&per_page=100"))
            .await;
        assert!(page["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|t| t["status"] == status));
        total += page["pagination"]["total"].as_i64().expect("total");
    }
    assert_eq!(total, 60);
    let tagged = api
        .send(
            reqwest::Method::POST,
            "/api/tasks",
            json!({"title": "t", "tags": ["zebra"], "assignee_id": 7}),
        )
        .await;
    let tagged: Value = tagged.json().await.expect("task");
    assert_eq!(
        ids(&api.json("/api/tasks?tag=zebra").await),
        [tagged["id"].as_i64().expect("id")]
    );
    let mine = api.json("/api/tasks?assignee=7&limit=100").await;
    assert!(mine["data"]
        .as_array()
        .expect("data")
        .iter()
        .all(|t| t["assignee_id"] == 7));
    let since = tagged["updated_at"].as_str().expect("time");
    let recent = api.json(&format!("/api/tasks?updated_since={since}")).await;
    assert_eq!(ids(&recent), [tagged["id"].as_i64().expect("id")]);
    api.finish().await;
}

async fn comments_paginate_and_writes_invalidate_the_cache(backend: Backend) {
    let api = Api::start(backend, Config::default()).await;
    let path = "/api/tasks/1/comments?limit=100";
    let first = api.get(path).await;
    assert_eq!(cache_status(&first), "rampart-origin; fwd=miss; stored");
    assert_eq!(first.headers()["cache-tag"], "comments:1");
    let first: Value = first.json().await.expect("comments");
    let cached = api.get(path).await;
    assert!(cache_status(&cached).starts_with("rampart-origin; hit"));

    // Walk every page: ids ascend and none repeats.
    let mut seen = Vec::new();
    let mut next = "/api/tasks/1/comments?limit=9".to_owned();
    loop {
        let page = api.json(&next).await;
        seen.extend(ids(&page));
        match page["pagination"]["next_cursor"].as_str() {
            Some(cursor) => next = format!("/api/tasks/1/comments?limit=9&cursor={cursor}"),
            None => break,
        }
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    let count = api.json("/api/tasks/1").await["comment_count"]
        .as_i64()
        .expect("count");
    assert_eq!(seen.len() as i64, count);
    assert_eq!(
        first["data"].as_array().expect("data").len() as i64,
        count.min(100)
    );

    let comment = json!({"author_id": 3, "body": "Fixed in <b>main</b>"});
    let posted = api
        .send(reqwest::Method::POST, "/api/tasks/1/comments", comment)
        .await;
    assert_eq!(posted.status(), StatusCode::CREATED);
    let posted: Value = posted.json().await.expect("comment");
    assert_eq!(posted["body"], "Fixed in <b>main</b>");
    let after = api.get("/api/tasks/1/comments?limit=100").await;
    assert_eq!(
        cache_status(&after),
        "rampart-origin; fwd=miss; stored",
        "the write dropped the cached list"
    );
    let detail = api.json("/api/tasks/1").await;
    assert_eq!(detail["comment_count"].as_i64(), Some(count + 1));
    let ghost = api
        .send(
            reqwest::Method::POST,
            "/api/tasks/1/comments",
            json!({"author_id": 4242, "body": "hi"}),
        )
        .await;
    assert_eq!(invalid_fields(ghost).await, ["author_id"]);
    api.finish().await;
}

async fn attachments_are_checked_stored_and_served(backend: Backend) {
    let mut config = Config::default();
    config.application.uploads = UploadLimits {
        max_bytes: 200_000,
        max_pixels: 1_000_000,
    };
    let api = Api::start(backend, config).await;
    let image = png(120, 80);
    let raw = api
        .client
        .post(api.url("/api/tasks/2/attachments"))
        .header("content-type", "image/png")
        .body(image.clone())
        .send()
        .await
        .expect("reachable");
    assert_eq!(raw.status(), StatusCode::CREATED);
    let attachment: Value = raw.json().await.expect("attachment");
    assert_eq!(attachment["width"], 120);
    assert_eq!(attachment["height"], 80);
    let url = attachment["url"].as_str().expect("url").to_owned();
    assert!(
        url.starts_with("/images/") && url.ends_with(".png"),
        "{url}"
    );

    let served = api.get(&url).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert!(served.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .contains("max-age=31536000"));
    let etag = served.headers()["etag"].to_str().expect("ascii").to_owned();
    assert!(etag.starts_with('"'), "strong: {etag}");
    assert_eq!(served.bytes().await.expect("body").to_vec(), image);
    let revalidated = api
        .client
        .get(api.url(&url))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("reachable");
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);

    // Multipart with a `file` field; the file name is kept.
    let boundary = "rampart-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"chart.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&png(30, 30));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let multipart = api
        .client
        .post(api.url("/api/tasks/2/attachments"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("reachable");
    assert_eq!(multipart.status(), StatusCode::CREATED);
    let attachment: Value = multipart.json().await.expect("attachment");
    assert_eq!(attachment["filename"], "chart.png");
    let detail = api.json("/api/tasks/2").await;
    assert_eq!(detail["attachments"].as_array().expect("list").len(), 2);

    let post = |body: Vec<u8>, content_type: &'static str| {
        api.client
            .post(api.url("/api/tasks/2/attachments"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let text = post(b"GIF? no, text".to_vec(), "image/gif")
        .await
        .expect("reachable");
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let json_body = post(b"{}".to_vec(), "application/json")
        .await
        .expect("reachable");
    assert_eq!(json_body.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A header claiming 20000×20000 pixels is refused before any pixel is read.
    let mut bomb = png(1, 1);
    bomb[16..20].copy_from_slice(&20_000_u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&20_000_u32.to_be_bytes());
    let bomb = post(bomb, "image/png").await.expect("reachable");
    assert_eq!(invalid_fields(bomb).await, ["file"]);
    let huge = post(vec![0x89; 400_000], "image/png")
        .await
        .expect("reachable");
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        huge.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "the unread body's connection is not reused"
    );
    let body: Value = huge.json().await.expect("JSON error");
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE");
    let orphan = api
        .client
        .post(api.url("/api/tasks/999999/attachments"))
        .header("content-type", "image/png")
        .body(png(4, 4))
        .send()
        .await
        .expect("reachable");
    assert_eq!(orphan.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        api.get("/images/nothing-here.png").await.status(),
        StatusCode::NOT_FOUND
    );
    api.finish().await;
}

async fn audit_log_lists_exports_and_bulk_inserts(backend: Backend) {
    let api = Api::start(backend, Config::default()).await;
    let tricky = "comma, \"quote\"\nnew line";
    let bulk = json!({"events": [
        {"actor": "importer", "action": "sync", "entity_type": "ticket", "entity_id": 7,
         "occurred_at": "2020-01-01T00:00:00Z", "data": {"note": tricky}},
        {"actor": "importer", "action": "", "entity_type": "ticket", "entity_id": "8"},
        {"actor": "importer", "action": "sync", "entity_type": "ticket", "entity_id": "9",
         "occurred_at": "2020-01-02T00:00:00Z"},
        "not an object",
        {"actor": "importer", "action": "sync", "entity_type": "ticket", "entity_id": "10",
         "occurred_at": "last week"},
    ]});
    let response = api
        .send(reqwest::Method::POST, "/api/events/bulk", bulk)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let outcome: Value = response.json().await.expect("outcome");
    assert_eq!(outcome["inserted"], 2);
    let failed: Vec<i64> = outcome["failed"]
        .as_array()
        .expect("failed")
        .iter()
        .map(|f| f["index"].as_i64().expect("index"))
        .collect();
    assert_eq!(failed, [1, 3, 4]);
    assert_eq!(outcome["failed"][0]["errors"][0]["field"], "action");

    let window = "from=2019-12-31T00:00:00Z&to=2020-01-03T00:00:00Z";
    let listed = api
        .json(&format!("/api/events?actor=importer&{window}"))
        .await;
    let entity_ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["entity_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(entity_ids, ["9", "7"], "newest first");

    // NDJSON: one object per line, oldest first.
    let ndjson = api
        .get(&format!(
            "/api/events/export?format=ndjson&actor=importer&{window}"
        ))
        .await;
    assert_eq!(ndjson.headers()["content-type"], "application/x-ndjson");
    let text = ndjson.text().await.expect("body");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["data"]["note"], tricky);
    // CSV: the field with a comma, quotes and a newline survives a real CSV reader.
    let csv_text = api
        .get("/api/events/export?format=csv&actor=importer")
        .await
        .text()
        .await
        .expect("body");
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = reader.headers().expect("header row").clone();
    assert_eq!(&headers[0], "id");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 2);
    let data: Value = serde_json::from_str(&rows[0][6]).expect("data column");
    assert_eq!(data["note"], tricky);

    // The whole log, in every format, holds every event exactly once.
    let total = api.json("/api/stats").await["events"]["total"]
        .as_i64()
        .expect("total");
    assert!(total > 2000, "more than one export batch: {total}");
    let all = api
        .get("/api/events/export")
        .await
        .text()
        .await
        .expect("body");
    let ids: Vec<i64> = all
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("line")["id"]
                .as_i64()
                .expect("id")
        })
        .collect();
    assert_eq!(ids.len() as i64, total);
    let unique: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
    let array: Value = api.json("/api/events/export?format=json").await;
    assert_eq!(array.as_array().expect("array").len() as i64, total);
    let bad = api.get("/api/events/export?format=xml&from=soon").await;
    assert_eq!(invalid_fields(bad).await, ["from", "format"]);
    let cached = api.get("/api/events").await;
    assert_eq!(
        cached.headers()["cache-control"],
        "no-store",
        "the audit log is never cached"
    );
    api.finish().await;
}

async fn stats_popular_and_pages(backend: Backend) {
    let api = Api::start(backend, Config::default()).await;
    let popular = api.json("/api/tasks/popular?limit=5").await;
    let counts: Vec<i64> = popular["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|t| t["comment_count"].as_i64().expect("count"))
        .collect();
    assert_eq!(counts.len(), 5);
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    let stats = api.get("/api/stats").await;
    assert_eq!(stats.headers()["cache-tag"], "stats");
    assert!(cache_status(&api.get("/api/stats").await).starts_with("rampart-origin; hit"));
    let task = json!({"title": "<script>alert(1)</script>", "tags": ["xss"]});
    let created: Value = api
        .send(reqwest::Method::POST, "/api/tasks", task)
        .await
        .json()
        .await
        .expect("task");
    let stats = api.json("/api/stats").await;
    assert_eq!(
        stats["tasks"]["total"], 61,
        "the write dropped the cached stats"
    );

    let page = api.get(&format!("/tasks/{}", created["id"])).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/html"));
    let html = page.text().await.expect("html");
    assert!(html.contains("alert(1)"), "the title is on the page");
    assert!(!html.contains("<script>"), "and escaped");
    let with_image = api.get("/tasks/1").await.text().await.expect("html");
    assert!(with_image.contains("/cdn-cgi/image/width=640,format=auto/images/"));
    assert!(with_image.contains("/assets/rampart."));
    let board = api.get("/").await.text().await.expect("html");
    assert!(board.contains("In progress") && board.contains("href=\"/tasks/"));
    assert_eq!(
        api.get("/tasks/999999").await.status(),
        StatusCode::NOT_FOUND
    );
    api.finish().await;
}

/// Concurrent requests for one cold key share one load: the database sees one query.
async fn cold_key_stampede_reaches_the_database_once(backend: Backend) {
    let api = Api::start(backend, Config::default()).await;
    api.json("/api/tasks/2").await; // Opens the pool, so only the stampede is counted.
    let before = select_count(&metrics(&api.origin.base).await, "tasks");
    let requests = (0..200).map(|_| api.get("/api/tasks/9"));
    let responses = futures::future::join_all(requests).await;
    assert!(responses.iter().all(|r| r.status() == StatusCode::OK));
    let text = metrics(&api.origin.base).await;
    let after = select_count(&text, "tasks");
    assert_eq!(after - before, 1, "200 concurrent misses, one query");
    // Answers from the cache never reach the router, yet count under their route template.
    let counted: u64 = text
        .lines()
        .filter(|l| {
            l.starts_with("http_requests_total{") && l.contains("route=\"/api/tasks/{id}\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(counted, 201, "every answer counted by its route template");
    api.finish().await;
}

/// `db_queries_total{operation="select",table=…,outcome="ok"}`.
fn select_count(metrics: &str, table: &str) -> u64 {
    let needle = format!("operation=\"select\",table=\"{table}\",outcome=\"ok\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("db_queries_total{") && l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Configured hot paths are loaded at start: the first visitor gets a hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_paths_are_warmed_at_start() {
    let mut config = Config::default();
    config.cache.warm_paths = vec!["/api/tasks/3".to_owned(), "/api/stats".to_owned()];
    let origin = start(config).await;
    let warmed = |text: &str| {
        text.lines()
            .any(|l| l.starts_with("http_requests_total{") && l.contains("route=\"/api/stats\""))
    };
    let mut seen = false;
    for _ in 0..100 {
        if warmed(&metrics(&origin.base).await) {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen, "the warming requests ran");
    for path in ["/api/tasks/3", "/api/stats"] {
        let response = reqwest::get(format!("{}{path}", origin.base))
            .await
            .expect("reachable");
        assert!(
            cache_status(&response).starts_with("rampart-origin; hit"),
            "{path}: {}",
            cache_status(&response)
        );
    }
}
