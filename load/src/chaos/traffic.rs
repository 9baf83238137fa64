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

use crate::driver::{client, describe, Client};

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
    /// The same, with `Cache-Control: max-age=0`, as a browser's reload sends it: the edge
    /// validates its copy with an origin every time, and lets the copy stand in (stale-if-error)
    /// when no origin answers.
    Reload,
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
    /// The path and query asked for.
    pub target: String,
    /// The status, or `None` when no answer came (refused, reset, timed out).
    pub status: Option<u16>,
    /// Why no whole answer came, when none did.
    pub lost: Option<Lost>,
    /// The client's error then, with its causes (`connection closed before message completed`).
    pub error: Option<String>,
    /// `Cache-Status`, when one came.
    pub cache_status: Option<String>,
    /// The error body's `code`, for answers outside 2xx.
    pub code: Option<String>,
    /// Whether a `Retry-After` came with it.
    pub retry_after: bool,
    /// Whether the answer was an HTML page (`Content-Type: text/html`).
    pub html: bool,
}

/// How an answer failed to come whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// No response head: the connection was refused, reset or closed first.
    NoHead,
    /// The head came, then the body broke off.
    BodyBrokeOff,
    /// Nothing whole within the client's timeout.
    TimedOut,
}

impl Lost {
    /// How a report names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoHead => "no response head",
            Self::BodyBrokeOff => "body broke off",
            Self::TimedOut => "timed out",
        }
    }
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
    /// Reloads per second.
    pub reloads: f64,
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
            (Kind::Reload, rates.reloads),
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
            let target = request
                .uri()
                .path_and_query()
                .map_or_else(String::new, ToString::to_string);
            let seen = send(&http, request).await;
            let answer = Answer {
                lane: lane.name,
                kind,
                at: due - start,
                latency: due.elapsed(),
                target,
                status: seen.status,
                lost: seen.lost,
                error: seen.error,
                cache_status: seen.cache_status,
                code: seen.code,
                retry_after: seen.retry_after,
                html: seen.html,
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
        Kind::Read | Kind::Reload => (
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
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header("accept", accept);
    if kind == Kind::Reload {
        request = request.header("cache-control", "max-age=0");
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default();
    (request, comment)
}

/// What [`send`] saw of an answer.
#[derive(Debug, Default)]
struct Seen {
    status: Option<u16>,
    lost: Option<Lost>,
    error: Option<String>,
    cache_status: Option<String>,
    /// The error body's `code`, outside 2xx.
    code: Option<String>,
    retry_after: bool,
    html: bool,
}

/// What came back for `request`, within the client's timeout.
async fn send(http: &Client, request: Request<Full<Bytes>>) -> Seen {
    let exchange = async {
        let response = match http.request(request).await {
            Ok(response) => response,
            Err(error) => {
                return Seen {
                    lost: Some(Lost::NoHead),
                    error: Some(describe(&error)),
                    ..Seen::default()
                }
            }
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let mut seen = Seen {
            status: Some(status),
            cache_status: header("cache-status"),
            retry_after: response.headers().contains_key("retry-after"),
            html: header("content-type").is_some_and(|value| value.starts_with("text/html")),
            ..Seen::default()
        };
        let body = match response.into_body().collect().await {
            Ok(body) => body,
            Err(error) => {
                // The head came but not the whole body: as failed as no answer.
                seen.status = None;
                seen.lost = Some(Lost::BodyBrokeOff);
                seen.error = Some(describe(&error));
                return seen;
            }
        };
        let body = body.to_bytes();
        seen.code = (!(200..300).contains(&status))
            .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
            .flatten()
            .and_then(|error| error["code"].as_str().map(str::to_owned));
        seen
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Seen {
            lost: Some(Lost::TimedOut),
            ..Seen::default()
        })
}
