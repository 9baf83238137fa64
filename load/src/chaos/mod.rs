//! The chaos campaign: under steady traffic (through the edge in workerd, and directly at an
//! origin), each fault of [`faults::Fault::ALL`] is injected, held, and undone, and one row says
//! what it cost: requests sent, failed reads and writes, reads a stored copy answered in the
//! origin's place, writes lost (acknowledged, then not in the database), p99 during the fault
//! against p99 before, and the time to recover (every origin ready and every breaker closed
//! again). Each row is checked against what Rampart promises for that fault; the table goes to
//! the terminal and to a Markdown report.

pub mod faults;
pub mod proxy;
pub mod redis;
pub mod report;
pub mod services;
pub mod traffic;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use faults::Fault;
use report::Row;
use services::{Programs, ServiceError, System};
use traffic::{Lane, Rates, Record};

/// How long and how hard the campaign runs.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// Fault lengths as a share of the full campaign's.
    pub scale: f64,
    /// Steady traffic before each fault (p99 "before" is measured here).
    pub before: Duration,
    /// Traffic per lane.
    pub rates: Rates,
    /// Whether the p99 promises are checked. A short fault's window holds too few answers for
    /// a p99 (in 1.7 s, the first write per origin that meets a frozen Redis is already 1%),
    /// so the short run reports p99 and the full run checks it.
    pub check_p99: bool,
}

impl Profile {
    /// Every fault at a third of its full length: CI runs it.
    pub const SHORT: Self = Self {
        scale: 0.34,
        before: Duration::from_secs(4),
        rates: Rates {
            reads: 40.0,
            reloads: 5.0,
            writes: 5.0,
            uncached: 4.0,
        },
        check_p99: false,
    };
    /// Every fault at its full length (Redis frozen 15 s, every origin down 30 s, …).
    pub const FULL: Self = Self {
        scale: 1.0,
        before: Duration::from_secs(10),
        rates: Rates {
            reads: 80.0,
            reloads: 10.0,
            writes: 10.0,
            uncached: 8.0,
        },
        check_p99: true,
    };
}

/// One fault's times, from the start of the campaign.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Steady traffic began.
    pub before: Duration,
    /// The fault was injected.
    pub injected: Duration,
    /// It was undone.
    pub restored: Duration,
    /// Everything was ready again (or the wait gave up).
    pub recovered: Duration,
}

/// Runs the campaign on a system started from `programs`, logs in `work`; returns the rows.
pub async fn run(
    programs: &Programs,
    work: &Path,
    profile: Profile,
    only: &[Fault],
    shape: redis::Shape,
) -> Result<Vec<Row>, ServiceError> {
    eprintln!(
        "chaos: starting Redis ({shape:?}), PostgreSQL, three origins, three proxies and the edge"
    );
    let mut system = System::start(programs, work, shape).await?;
    warm(&system).await;
    let start = Instant::now();
    let record = Arc::new(std::sync::Mutex::new(Record::default()));
    let (stop, stopped) = watch::channel(false);
    let lanes = vec![
        Lane {
            name: "edge",
            base: system.edge.url(),
        },
        Lane {
            name: "origin",
            base: system.origins[2].url(),
        },
    ];
    let traffic = tokio::spawn(traffic::run(
        lanes,
        profile.rates,
        start,
        Arc::clone(&record),
        stopped,
    ));
    let mut windows = Vec::new();
    for fault in Fault::ALL {
        if !fault.applies_to(shape) || (!only.is_empty() && !only.contains(&fault)) {
            continue;
        }
        let window = exercise(fault, &mut system, profile, start).await?;
        windows.push((fault, window));
    }
    let _ = stop.send(true);
    let _ = traffic.await;
    let stored = stored_comments(&system).await?;
    let record = std::mem::take(&mut *record.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(windows
        .into_iter()
        .map(|(fault, window)| Row::of(fault, window, &record, &stored, profile.check_p99))
        .collect())
}

/// Reads every task the traffic reads through each lane once, so that they are cached.
async fn warm(system: &System) {
    let http = crate::driver::client();
    for base in [system.edge.url(), system.origins[2].url()] {
        for task in 1..=12 {
            let uri = format!("{base}/api/tasks/{task}");
            if let Ok(request) = hyper::Request::get(uri).body(Default::default()) {
                let _ = http.request(request).await;
            }
        }
    }
}

/// One fault: steady traffic, the fault held for its length, the restore, the recovery.
async fn exercise(
    fault: Fault,
    system: &mut System,
    profile: Profile,
    start: Instant,
) -> Result<Window, ServiceError> {
    eprintln!("chaos: {}", fault.name());
    let before = start.elapsed();
    tokio::time::sleep(profile.before).await;
    let injected = start.elapsed();
    fault.inject(system, profile.scale).await?;
    tokio::time::sleep(fault.length(profile.scale)).await;
    fault.restore(system).await?;
    let restored = start.elapsed();
    let recovered = wait_until_recovered(system, Duration::from_secs(90)).await + restored;
    // A little steady traffic after, so that failures the fault caused late are counted.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(Window {
        before,
        injected,
        restored,
        recovered,
    })
}

/// How long until every origin answers `/health/ready` with 200 and reports every breaker
/// closed (`limit` at most).
async fn wait_until_recovered(system: &System, limit: Duration) -> Duration {
    let http = crate::driver::client();
    let started = Instant::now();
    while started.elapsed() < limit {
        let mut all = true;
        for origin in &system.origins {
            all &= healthy(&http, &origin.url()).await;
        }
        if all {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    limit
}

async fn healthy(http: &crate::driver::Client, base: &str) -> bool {
    use http_body_util::BodyExt;
    let get = |path: &str| hyper::Request::get(format!("{base}{path}")).body(Default::default());
    let Ok(ready) = get("/health/ready") else {
        return false;
    };
    if !matches!(http.request(ready).await, Ok(answer) if answer.status() == 200) {
        return false;
    }
    let Ok(breakers) = get("/health/circuit-breakers") else {
        return false;
    };
    let Ok(answer) = http.request(breakers).await else {
        return false;
    };
    let Ok(body) = answer.into_body().collect().await else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&body.to_bytes())
        .is_ok_and(|report| report["status"] == "healthy")
}

/// The text of every comment the campaign wrote that the database holds.
async fn stored_comments(system: &System) -> Result<HashSet<String>, ServiceError> {
    let listing = system
        .postgres
        .psql("SELECT body FROM comments WHERE body LIKE 'chaos %'")
        .await?;
    Ok(listing.lines().map(str::to_owned).collect())
}
