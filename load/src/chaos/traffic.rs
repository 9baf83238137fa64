//! Steady traffic while faults come and go: reads of task pages and writes of comments at
//! fixed rates (the open model: a request is started when due, whatever came of the last),
//! through the edge and directly at an origin. Every answer is kept with when it was sent, so
//! each fault's rows are cut from one record; every acknowledged write is kept to be looked
//! for in the database afterwards.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::driver::{client, Client};

/// Requests to one base URL.
#[derive(Debug, Clone)]
pub struct Lane {
    /// `edge` or `origin`.
    pub name: &'static str,
    /// Where they go.
    pub base: String,
}

/// Reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `GET /api/tasks/{id}` of a task read before (cached).
    Read,
    /// `POST /api/tasks/{id}/comments`.
    Write,
    /// A page never read before (a query of its own): the task as JSON, or its HTML page
    /// asked for by a browser, every other one. Only an origin can answer it.
    Uncached,
}

/// One answer (or its absence).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The lane's name.
    pub lane: &'static str,
    /// Read or write.
    pub kind: Kind,
    /// When it was due, from the start of the campaign.
    pub at: Duration,
    /// From when it was due to its whole answer.
    pub latency: Duration,
    /// The status, or `None` when no answer came (refused, reset, timed out).
    pub status: Option<u16>,
    /// The error body's `code`, for answers outside 2xx.
    pub code: Option<String>,
    /// Whether a `Retry-After` came with it.
    pub retry_after: bool,
    /// Whether the answer was an HTML page (`Content-Type: text/html`).
    pub html: bool,
}

impl Answer {
    /// A 2xx answer.
    pub fn ok(&self) -> bool {
        self.status
            .is_some_and(|status| (200..300).contains(&status))
    }
}

/// Everything the traffic saw.
#[derive(Debug, Default)]
pub struct Record {
    /// Every answer, in the order they came.
    pub answers: Vec<Answer>,
    /// The text of every comment the origins acknowledged (`201`).
    pub acknowledged: Vec<String>,
}

/// The shared record.
pub type Shared = Arc<Mutex<Record>>;

/// Reads and writes per second on each lane.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    /// Reads per second.
    pub reads: f64,
    /// Writes per second.
    pub writes: f64,
    /// Reads of pages never read before, per second.
    pub uncached: f64,
}

/// How many tasks the reads and writes go to (the demo data's small set has more).
const TASKS: u64 = 12;
/// Longest wait for one answer.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Sends the traffic of `lanes` at `rates` from `start` until `stop` says so.
pub async fn run(
    lanes: Vec<Lane>,
    rates: Rates,
    start: Instant,
    record: Shared,
    stop: watch::Receiver<bool>,
) {
    let http = client();
    let mut tasks = tokio::task::JoinSet::new();
    for lane in lanes {
        let kinds = [
            (Kind::Read, rates.reads),
            (Kind::Write, rates.writes),
            (Kind::Uncached, rates.uncached),
        ];
        for (kind, rate) in kinds {
            let (http, lane, record, stop) = (
                http.clone(),
                lane.clone(),
                Arc::clone(&record),
                stop.clone(),
            );
            tasks.spawn(stream(http, lane, kind, rate, start, record, stop));
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// One kind of request on one lane, one every `1/rate` seconds.
async fn stream(
    http: Client,
    lane: Lane,
    kind: Kind,
    rate: f64,
    start: Instant,
    record: Shared,
    stop: watch::Receiver<bool>,
) {
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut sent = tokio::task::JoinSet::new();
    let mut due = Instant::now();
    for n in 0u64.. {
        if *stop.borrow() {
            break;
        }
        tokio::time::sleep_until(due).await;
        let (http, lane, record) = (http.clone(), lane.clone(), Arc::clone(&record));
        sent.spawn(async move {
            let task = 1 + n % TASKS;
            let (request, comment) = request(&lane, kind, task, n, due - start);
            let (status, code, retry_after, html) = send(&http, request).await;
            let answer = Answer {
                lane: lane.name,
                kind,
                at: due - start,
                latency: due.elapsed(),
                status,
                code,
                retry_after,
                html,
            };
            let mut record = record.lock().unwrap_or_else(PoisonError::into_inner);
            if let (Some(201), Some(comment)) = (answer.status, comment) {
                record.acknowledged.push(comment);
            }
            record.answers.push(answer);
        });
        while sent.try_join_next().is_some() {}
        due += period;
    }
    while sent.join_next().await.is_some() {}
}

/// The request, and for a write the comment's text (unique in the campaign).
fn request(
    lane: &Lane,
    kind: Kind,
    task: u64,
    n: u64,
    at: Duration,
) -> (Request<Full<Bytes>>, Option<String>) {
    let mut accept = "application/json";
    let (method, uri, body, comment) = match kind {
        Kind::Read => (
            Method::GET,
            format!("{}/api/tasks/{task}", lane.base),
            String::new(),
            None,
        ),
        Kind::Uncached => {
            let fresh = format!("fresh={}-{n}", lane.name);
            let uri = if n % 2 == 0 {
                format!("{}/api/tasks/{task}?{fresh}", lane.base)
            } else {
                accept = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8";
                format!("{}/tasks/{task}?{fresh}", lane.base)
            };
            (Method::GET, uri, String::new(), None)
        }
        Kind::Write => {
            let comment = format!("chaos {} {n} at {} ms", lane.name, at.as_millis());
            let body = serde_json::json!({ "author_id": 1, "body": comment }).to_string();
            let uri = format!("{}/api/tasks/{task}/comments", lane.base);
            (Method::POST, uri, body, Some(comment))
        }
    };
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header("accept", accept)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default();
    (request, comment)
}

/// What [`send`] saw: status, error code, `Retry-After`, HTML.
type Seen = (Option<u16>, Option<String>, bool, bool);

/// The status, error code, whether `Retry-After` came and whether the answer was HTML; `None`
/// status when no answer came.
async fn send(http: &Client, request: Request<Full<Bytes>>) -> Seen {
    let exchange = async {
        let response = http.request(request).await.ok()?;
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let html = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/html"));
        let body = response.into_body().collect().await.ok()?.to_bytes();
        let code = (!(200..300).contains(&status))
            .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
            .flatten()
            .and_then(|error| error["code"].as_str().map(str::to_owned));
        Some((Some(status), code, retry_after, html))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or((None, None, false, false))
}
