//! The status page's view: what [`super::status`] read ([`Snapshot`]) turned into the rows,
//! tiles and charts of `origin/templates/status.html`, which askama compiles in and which
//! escapes every value (route templates and request ids come from clients).

use std::time::{Duration, SystemTime};

use askama::Template;

use super::status_charts::{self, Chart, Series, Unit};
use super::status_format::{bytes, clock, date_time, duration, millis, percent, rate};
use crate::core::cache::CacheStats;
use crate::core::dependencies::breaker::{BreakerReport, BreakerState, BreakerTiming};
use crate::core::jobs::{Queue, QueueCounts};
use crate::core::observability::history::{Sample, SlowRequest, SAMPLES};

/// What the page shows, read at one moment.
#[derive(Debug)]
pub struct Snapshot {
    /// When it was read.
    pub now: SystemTime,
    /// The origin's version.
    pub version: &'static str,
    /// Time since the origin started.
    pub uptime: Duration,
    /// Open client connections.
    pub connections: i64,
    /// The samples, the oldest first.
    pub samples: Vec<Sample>,
    /// Time between samples.
    pub interval: Duration,
    /// Requests at least this slow are listed.
    pub slow_threshold: Duration,
    /// The slow requests, the newest first.
    pub slow: Vec<SlowRequest>,
    /// Each breaker's state and timing.
    pub breakers: Vec<(BreakerReport, BreakerTiming)>,
    /// The job queues.
    pub jobs: JobsSnapshot,
    /// The response cache's counters and size.
    pub cache: CacheStats,
}

/// The job queues' counts, or why they could not be read.
#[derive(Debug)]
pub struct JobsSnapshot {
    /// Jobs are kept in Redis (else in process).
    pub durable: bool,
    /// Jobs waiting in process for the store to come back.
    pub buffered: usize,
    /// Each queue's counts, or the reason there are none.
    pub queues: Result<Vec<(Queue, QueueCounts)>, String>,
}

/// Renders the page.
pub fn render(snapshot: Snapshot) -> Result<String, askama::Error> {
    Page::new(snapshot).render()
}

#[derive(Debug, Template)]
#[template(path = "status.html")]
struct Page {
    version: &'static str,
    generated: String,
    uptime: String,
    interval: String,
    window: String,
    slow_threshold: String,
    tiles: Vec<Tile>,
    charts: Vec<Chart>,
    breakers: Vec<BreakerRow>,
    queues: Vec<QueueRow>,
    jobs_store: String,
    jobs_error: Option<String>,
    cache: Vec<(&'static str, String)>,
    slow: Vec<SlowRow>,
}

/// A headline figure.
#[derive(Debug)]
struct Tile {
    label: &'static str,
    value: String,
    note: String,
    /// `ok`, `warn`, `bad` or empty.
    tone: &'static str,
}

#[derive(Debug)]
struct BreakerRow {
    name: &'static str,
    state: &'static str,
    tone: &'static str,
    recent_failures: usize,
    transitions: u64,
    last_failure: String,
    next_attempt: String,
}

#[derive(Debug)]
struct QueueRow {
    name: &'static str,
    counts: QueueCounts,
    oldest: String,
    tone: &'static str,
}

#[derive(Debug)]
struct SlowRow {
    time: String,
    method: String,
    route: String,
    status: u16,
    tone: &'static str,
    duration: String,
    request_id: String,
}

impl Page {
    fn new(snapshot: Snapshot) -> Self {
        let window = snapshot.interval * SAMPLES as u32;
        let (queues, jobs_error) = match &snapshot.jobs.queues {
            Ok(queues) => (queues.iter().map(queue_row).collect(), None),
            Err(reason) => (Vec::new(), Some(reason.clone())),
        };
        Self {
            version: snapshot.version,
            generated: date_time(snapshot.now),
            uptime: duration(snapshot.uptime),
            interval: duration(snapshot.interval),
            window: duration(window),
            slow_threshold: millis(snapshot.slow_threshold.as_secs_f64() * 1000.0),
            tiles: tiles(&snapshot),
            charts: charts(&snapshot.samples, snapshot.interval),
            breakers: snapshot.breakers.iter().map(breaker_row).collect(),
            queues,
            jobs_store: jobs_store(&snapshot.jobs),
            jobs_error,
            cache: cache_rows(&snapshot.cache),
            slow: snapshot.slow.iter().map(slow_row).collect(),
        }
    }
}

fn tiles(snapshot: &Snapshot) -> Vec<Tile> {
    let latest = snapshot.samples.last();
    let interval = duration(snapshot.interval);
    let (hits, misses) = snapshot
        .samples
        .iter()
        .fold((0, 0), |(h, m), s| (h + s.cache_hits, m + s.cache_misses));
    let window_ratio = (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64);
    vec![
        Tile {
            label: "Requests",
            value: latest.map_or_else(|| "–".to_owned(), |s| rate(s.rate())),
            note: format!("over the last {interval}"),
            tone: "",
        },
        latency_tile(latest, &interval),
        Tile {
            label: "Cache hit ratio",
            value: window_ratio.map_or_else(|| "–".to_owned(), percent),
            note: format!("{hits} hits, {misses} misses in the window"),
            tone: "",
        },
        breakers_tile(&snapshot.breakers),
        queues_tile(&snapshot.jobs),
        Tile {
            label: "Connections",
            value: snapshot.connections.to_string(),
            note: "open now".to_owned(),
            tone: "",
        },
    ]
}

fn latency_tile(latest: Option<&Sample>, interval: &str) -> Tile {
    let value = latest.and_then(|s| s.p99);
    let note = match latest.and_then(|s| s.p50.zip(s.p95)) {
        Some((p50, p95)) => format!("p99 · p50 {} · p95 {}", millis(p50), millis(p95)),
        None => format!("p99, no requests in the last {interval}"),
    };
    Tile {
        label: "Latency",
        value: value.map_or_else(|| "–".to_owned(), millis),
        note,
        tone: "",
    }
}

fn breakers_tile(breakers: &[(BreakerReport, BreakerTiming)]) -> Tile {
    let not_closed: Vec<&str> = breakers
        .iter()
        .filter(|(report, _)| report.state != BreakerState::Closed)
        .map(|(report, _)| report.name)
        .collect();
    let (value, tone) = if not_closed.is_empty() {
        ("all closed".to_owned(), "ok")
    } else {
        (format!("{} not closed", not_closed.len()), "bad")
    };
    Tile {
        label: "Circuit breakers",
        value,
        note: if not_closed.is_empty() {
            format!("{} dependencies answering", breakers.len())
        } else {
            not_closed.join(", ")
        },
        tone,
    }
}

fn queues_tile(jobs: &JobsSnapshot) -> Tile {
    let Ok(queues) = &jobs.queues else {
        return Tile {
            label: "Job queues",
            value: "unknown".to_owned(),
            note: "the job store did not answer".to_owned(),
            tone: "bad",
        };
    };
    let waiting: u64 = queues.iter().map(|(_, c)| c.waiting + c.delayed).sum();
    let dead: u64 = queues.iter().map(|(_, c)| c.dead).sum();
    Tile {
        label: "Job queues",
        value: format!("{waiting} waiting"),
        note: format!("{dead} dead-lettered"),
        tone: if dead > 0 { "warn" } else { "ok" },
    }
}

fn charts(samples: &[Sample], interval: Duration) -> Vec<Chart> {
    let times: Vec<SystemTime> = samples.iter().map(|s| s.at).collect();
    let values = |pick: fn(&Sample) -> Option<f64>| samples.iter().map(pick).collect();
    let series = |class, label, pick| Series {
        class,
        label,
        values: values(pick),
    };
    let chart = |id, caption, unit, series: &[Series]| {
        status_charts::chart(id, caption, unit, &times, series, SAMPLES, interval)
    };
    vec![
        chart(
            "rate",
            "Request rate",
            Unit::PerSecond,
            &[series("rate", "requests", |s| Some(s.rate()))],
        ),
        chart(
            "latency",
            "Latency",
            Unit::Millis,
            &[
                series("p50", "p50", |s| s.p50),
                series("p95", "p95", |s| s.p95),
                series("p99", "p99", |s| s.p99),
            ],
        ),
        chart(
            "hit-ratio",
            "Cache hit ratio",
            Unit::Ratio,
            &[series("ratio", "hit ratio", Sample::hit_ratio)],
        ),
    ]
}

fn breaker_row((report, timing): &(BreakerReport, BreakerTiming)) -> BreakerRow {
    let (state, tone) = match report.state {
        BreakerState::Closed => ("closed", "ok"),
        BreakerState::Open => ("open", "bad"),
        BreakerState::HalfOpen => ("half-open", "warn"),
    };
    let next_attempt = match (report.state, timing.retry_in) {
        (BreakerState::Open, Some(wait)) if wait.is_zero() => "on the next call".to_owned(),
        (BreakerState::Open, Some(wait)) => format!("in {}", duration(wait)),
        (BreakerState::HalfOpen, _) => "trial calls going through".to_owned(),
        _ => "–".to_owned(),
    };
    BreakerRow {
        name: report.name,
        state,
        tone,
        recent_failures: report.recent_failures,
        transitions: report.transitions,
        last_failure: timing.since_failure.map_or_else(
            || "never".to_owned(),
            |ago| format!("{} ago", duration(ago)),
        ),
        next_attempt,
    }
}

fn queue_row((queue, counts): &(Queue, QueueCounts)) -> QueueRow {
    let tone = if counts.dead > 0 || counts.paused {
        "warn"
    } else {
        ""
    };
    QueueRow {
        name: queue.as_str(),
        counts: counts.clone(),
        oldest: if counts.waiting == 0 {
            "–".to_owned()
        } else {
            duration(Duration::from_millis(counts.oldest_waiting_ms))
        },
        tone,
    }
}

fn jobs_store(jobs: &JobsSnapshot) -> String {
    if !jobs.durable {
        return "Kept in process: not durable, and each instance has its own (set REDIS_URL)."
            .to_owned();
    }
    match jobs.buffered {
        0 => "Kept in Redis Streams.".to_owned(),
        held => format!("Kept in Redis Streams; {held} held in process until Redis answers."),
    }
}

fn cache_rows(stats: &CacheStats) -> Vec<(&'static str, String)> {
    let served = stats.hits + stats.stale_hits;
    let lookups = served + stats.misses + stats.collapsed;
    let ratio = if lookups == 0 {
        "–".to_owned()
    } else {
        percent(served as f64 / lookups as f64)
    };
    vec![
        ("Entries (in process)", stats.entries.to_string()),
        ("Size (in process)", bytes(stats.bytes)),
        ("Hit ratio since start", ratio),
        (
            "Hits / stale hits",
            format!("{} / {}", stats.hits, stats.stale_hits),
        ),
        (
            "Misses / collapsed",
            format!("{} / {}", stats.misses, stats.collapsed),
        ),
        (
            "Refreshes / load errors",
            format!("{} / {}", stats.refreshes, stats.load_errors),
        ),
        (
            "Redis hits / errors",
            format!("{} / {}", stats.redis_hits, stats.redis_errors),
        ),
        ("Invalidated", stats.invalidated.to_string()),
    ]
}

fn slow_row(request: &SlowRequest) -> SlowRow {
    let tone = match request.status {
        500.. => "bad",
        400..=499 => "warn",
        _ => "",
    };
    SlowRow {
        time: clock(request.at),
        method: request.method.clone(),
        route: request.route.to_string(),
        status: request.status,
        tone,
        duration: millis(request.duration.as_secs_f64() * 1000.0),
        request_id: request.request_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn sample(requests: u64, p99: Option<f64>) -> Sample {
        Sample {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_778_421_807),
            seconds: 10.0,
            requests,
            p50: p99.map(|p| p / 4.0),
            p95: p99.map(|p| p / 2.0),
            p99,
            cache_hits: requests / 2,
            cache_misses: requests / 2,
        }
    }

    fn snapshot(slow: Vec<SlowRequest>) -> Snapshot {
        Snapshot {
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_778_421_807),
            version: "0.1.0",
            uptime: Duration::from_secs(3725),
            connections: 3,
            samples: vec![
                sample(120, Some(8.0)),
                sample(0, None),
                sample(40, Some(2.0)),
            ],
            interval: Duration::from_secs(10),
            slow_threshold: Duration::from_millis(500),
            slow,
            breakers: vec![(
                BreakerReport {
                    name: "redis",
                    state: BreakerState::Open,
                    recent_failures: 0,
                    transitions: 1,
                    last_failure_time: None,
                    next_attempt_time: None,
                },
                BreakerTiming {
                    since_failure: Some(Duration::from_secs(12)),
                    retry_in: Some(Duration::from_secs(48)),
                },
            )],
            jobs: JobsSnapshot {
                durable: true,
                buffered: 0,
                queues: Ok(vec![(
                    Queue::EdgePurge,
                    QueueCounts {
                        waiting: 4,
                        dead: 1,
                        oldest_waiting_ms: 90_000,
                        ..QueueCounts::default()
                    },
                )]),
            },
            cache: CacheStats {
                entries: 12,
                bytes: 3 << 20,
                ..CacheStats::default()
            },
        }
    }

    #[test]
    fn client_supplied_text_is_escaped() {
        let html = render(snapshot(vec![SlowRequest {
            at: SystemTime::UNIX_EPOCH,
            method: "GET".into(),
            route: Arc::from("/api/<script>alert(1)</script>"),
            status: 503,
            duration: Duration::from_millis(1500),
            request_id: "\"><img src=x onerror=alert(2)>".into(),
        }]))
        .expect("renders");
        assert!(!html.contains("<script>alert"), "route escaped");
        assert!(!html.contains("<img src=x"), "request id escaped");
        assert!(
            html.contains("/api/&#60;script&#62;alert(1)"),
            "route shown"
        );
        assert!(html.contains("1.5 s"));
    }

    #[test]
    fn the_page_holds_every_section() {
        let html = render(snapshot(Vec::new())).expect("renders");
        for series in ["rate", "latency", "hit-ratio"] {
            let svg = format!("<svg class=\"chart\" data-series=\"{series}\"");
            assert!(html.contains(&svg), "{series} chart");
        }
        // Rate: 3 points; latency: 2 samples × 3 percentiles; hit ratio: 2 samples.
        assert_eq!(html.matches("<circle").count(), 3 + 6 + 2);
        assert!(html.contains("href=\"/status/style.css\""));
        assert!(
            !html.contains("style=\""),
            "no inline style: the CSP forbids it"
        );
        assert!(!html.contains("<script"), "no script");
        for text in [
            "id=\"breakers\"",
            "in 48 s",
            "12 s ago",
            "id=\"queues\"",
            "edge-purge",
        ] {
            assert!(html.contains(text), "{text}");
        }
        assert!(html.contains("3 MiB"), "cache size");
        assert!(
            html.contains("No request took 500 ms or more"),
            "empty slow list"
        );
        assert!(html.contains("1 h 2 min"), "uptime");
    }

    #[test]
    fn an_unreachable_job_store_is_said_so() {
        let mut snapshot = snapshot(Vec::new());
        snapshot.jobs.queues = Err("the job store did not answer within 2 s".to_owned());
        let html = render(snapshot).expect("renders");
        assert!(html.contains("did not answer within 2 s"));
    }
}
