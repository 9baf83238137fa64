//! One row per fault, cut from the traffic's record, checked against the fault's promise, and
//! printed as a table (terminal and Markdown).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use super::faults::{Fault, UncachedReads};
use super::traffic::{Answer, Kind, Lost, Record};
use super::Window;

/// What one fault cost.
#[derive(Debug, Clone)]
pub struct Row {
    /// The fault.
    pub fault: Fault,
    /// Requests due from the steady traffic before it to its recovery.
    pub requests: usize,
    /// Reads and reloads without a 2xx answer during the fault (lanes that were up).
    pub failed_reads: usize,
    /// Answers during the fault by a stored copy standing in for the origin
    /// (`Cache-Status: …; fwd=stale`).
    pub served_stale: usize,
    /// Writes without a 2xx answer during the fault.
    pub failed_writes: usize,
    /// How the failed writes were answered (`503 DATABASE_UNAVAILABLE +Retry-After` …).
    pub write_failures: Vec<String>,
    /// The failed reads, each described (`edge read /api/tasks/7 12 ms (502 ORIGIN_UNREACHABLE, Cache-Status: …) at 181.2 s`).
    pub read_failures: Vec<String>,
    /// Reads of pages never read before without a 2xx answer during the fault.
    pub failed_uncached: usize,
    /// How they were answered (`502 ORIGIN_UNREACHABLE`, `502 html page` …).
    pub uncached_failures: Vec<String>,
    /// Writes acknowledged and not in the database afterwards.
    pub writes_lost: usize,
    /// p99 of the answers before the fault.
    pub p99_before: Duration,
    /// p99 of the answers during it.
    pub p99_during: Duration,
    /// From the restore until everything was ready again.
    pub recovery: Duration,
    /// The slowest answers while it was held: `edge write 512 ms (201)`.
    pub slowest: Vec<String>,
    /// Each promise the row breaks, in words.
    pub broken: Vec<String>,
}

impl Row {
    /// The row of `fault`, held during `window`, from `record`; `stored` are the comments
    /// the database holds.
    /// `check_p99` says whether the p99 promise is checked (see [`super::Profile`]).
    pub fn of(
        fault: Fault,
        window: Window,
        record: &Record,
        stored: &HashSet<String>,
        check_p99: bool,
    ) -> Self {
        let end = window.recovered + Duration::from_secs(1);
        let within =
            |answer: &&Answer, from: Duration, to: Duration| answer.at >= from && answer.at < to;
        let during: Vec<&Answer> = record
            .answers
            .iter()
            .filter(|a| within(a, window.injected, end))
            .filter(|a| !(fault.takes_down_direct_lane() && a.lane == "origin"))
            .collect();
        let failed = |kinds: &[Kind]| -> Vec<&Answer> {
            during
                .iter()
                .copied()
                .filter(|a| kinds.contains(&a.kind) && !a.ok())
                .collect()
        };
        let failed_reads = failed(&[Kind::Read, Kind::Reload]);
        let failed_writes = failed(&[Kind::Write]);
        let failed_uncached = failed(&[Kind::Uncached]);
        let before: Vec<Duration> = record
            .answers
            .iter()
            .filter(|a| within(a, window.before, window.injected))
            .map(|a| a.latency)
            .collect();
        let held_until = window
            .restored
            .max(window.injected + Duration::from_millis(500));
        let mut held: Vec<&Answer> = during
            .iter()
            .copied()
            .filter(|a| a.at < held_until)
            .collect();
        held.sort_by_key(|a| std::cmp::Reverse(a.latency));
        let slowest = held.iter().take(5).map(|a| describe(a)).collect();
        let held: Vec<Duration> = held.iter().map(|a| a.latency).collect();
        let writes_lost = record
            .acknowledged
            .iter()
            .filter(|comment| written_at(comment).is_some_and(|at| at >= window.before && at < end))
            .filter(|comment| !stored.contains(*comment))
            .count();
        let mut row = Self {
            fault,
            requests: record
                .answers
                .iter()
                .filter(|a| within(a, window.before, end))
                .count(),
            failed_reads: failed_reads.len(),
            read_failures: failed_reads.iter().map(|a| describe(a)).collect(),
            served_stale: during.iter().filter(|a| a.ok() && stood_in(a)).count(),
            failed_writes: failed_writes.len(),
            write_failures: summary(&failed_writes),
            failed_uncached: failed_uncached.len(),
            uncached_failures: summary(&failed_uncached),
            writes_lost,
            p99_before: p99(before),
            p99_during: p99(held),
            recovery: window.recovered.saturating_sub(window.restored),
            slowest,
            broken: Vec::new(),
        };
        row.broken = row.check(&failed_writes, check_p99);
        row.broken.extend(row.check_uncached(&failed_uncached));
        row
    }

    /// p99 during against p99 before.
    pub fn p99_ratio(&self) -> f64 {
        self.p99_during.as_secs_f64() / self.p99_before.as_secs_f64().max(1e-6)
    }

    fn check_uncached(&self, failed: &[&Answer]) -> Option<String> {
        match self.fault.promise().uncached {
            UncachedReads::Unchecked => None,
            UncachedReads::Answered => (!failed.is_empty()).then(|| {
                format!(
                    "{} reads of uncached pages failed (allowed 0)",
                    failed.len()
                )
            }),
            UncachedReads::FailCleanly => {
                let unclear = failed.iter().filter(|a| !failed_cleanly(a)).count();
                (unclear > 0).then(|| {
                    format!(
                        "{unclear} reads of uncached pages failed without a 502/503/504 \
                         error body"
                    )
                })
            }
        }
    }

    fn check(&self, failed_writes: &[&Answer], check_p99: bool) -> Vec<String> {
        let promise = self.fault.promise();
        let mut broken = Vec::new();
        if self.writes_lost > 0 {
            broken.push(format!("{} acknowledged writes lost", self.writes_lost));
        }
        if let Some(limit) = promise.failed_reads.filter(|l| self.failed_reads > *l) {
            broken.push(format!(
                "{} failed reads (allowed {limit})",
                self.failed_reads
            ));
        }
        if promise.serves_stale && self.served_stale == 0 {
            broken.push("no read was answered by a stored copy standing in".to_owned());
        }
        if let Some(limit) = promise.failed_writes.filter(|l| self.failed_writes > *l) {
            broken.push(format!(
                "{} failed writes (allowed {limit})",
                self.failed_writes
            ));
        }
        let slow_or_wrong = failed_writes.iter().any(|a| {
            a.status != Some(503)
                || a.code.as_deref() != Some("DATABASE_UNAVAILABLE")
                || !a.retry_after
                || a.latency > Duration::from_secs(1)
        });
        if promise.writes_fail_fast && slow_or_wrong {
            broken.push(
                "failed writes were not all a fast 503 DATABASE_UNAVAILABLE with Retry-After"
                    .to_owned(),
            );
        }
        let p99_limit = promise.p99_ratio.filter(|_| check_p99);
        if let Some(limit) = p99_limit.filter(|l| self.p99_ratio() > *l) {
            broken.push(format!(
                "p99 {:.1}x before (allowed {limit}x)",
                self.p99_ratio()
            ));
        }
        if let Some(limit) = promise.recovery.filter(|l| self.recovery > *l) {
            broken.push(format!(
                "recovered in {:.1} s (allowed {} s)",
                self.recovery.as_secs_f64(),
                limit.as_secs()
            ));
        }
        broken
    }
}

/// Whether a failed answer says why, as a client can read it: `502`, `503` or `504` with the
/// JSON error body's `code`, or an HTML page.
fn failed_cleanly(answer: &Answer) -> bool {
    matches!(answer.status, Some(502..=504)) && (answer.code.is_some() || answer.html)
}

/// Whether a stored copy answered in the origin's place: `Cache-Status` has a member with
/// `fwd=stale` (stale-if-error, or an unreachable origin's stand-in).
fn stood_in(answer: &Answer) -> bool {
    answer.cache_status.as_deref().is_some_and(|value| {
        value
            .split(',')
            .any(|member| member.split(';').any(|param| param.trim() == "fwd=stale"))
    })
}

/// `edge write /api/tasks/3/comments 512 ms (201) at 7.3 s`, with `Cache-Status` when one came.
fn describe(answer: &Answer) -> String {
    let kind = match answer.kind {
        Kind::Read => "read",
        Kind::Reload => "reload",
        Kind::Write => "write",
        Kind::Uncached => "uncached read",
    };
    let status = match (answer.status, &answer.code) {
        (None, _) => {
            let lost = answer.lost.map_or("no answer", Lost::as_str);
            match &answer.error {
                Some(error) => format!("{lost}: {error}"),
                None => lost.to_owned(),
            }
        }
        (Some(status), None) => status.to_string(),
        (Some(status), Some(code)) => format!("{status} {code}"),
    };
    let cache = answer
        .cache_status
        .as_deref()
        .map_or_else(String::new, |value| format!(", Cache-Status: {value}"));
    format!(
        "{} {kind} {} {} ms ({status}{cache}) at {:.1} s",
        answer.lane,
        answer.target,
        ms(answer.latency),
        answer.at.as_secs_f64()
    )
}

/// When a campaign comment was written, from its text (`chaos <lane> <n> at <ms> ms`).
fn written_at(comment: &str) -> Option<Duration> {
    let millis = comment.rsplit(" at ").next()?.strip_suffix(" ms")?;
    millis.parse().ok().map(Duration::from_millis)
}

/// The distinct ways `answers` failed, with counts: `3× 503 DATABASE_UNAVAILABLE +Retry-After`.
fn summary(answers: &[&Answer]) -> Vec<String> {
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for answer in answers {
        let kind = match answer.status {
            None => "no answer".to_owned(),
            Some(status) => {
                let code = match (&answer.code, answer.html) {
                    (Some(code), _) => code.as_str(),
                    (None, true) => "html page",
                    (None, false) => "-",
                };
                let retry = if answer.retry_after {
                    " +Retry-After"
                } else {
                    ""
                };
                format!("{status} {code}{retry}")
            }
        };
        match kinds.iter_mut().find(|(known, _)| *known == kind) {
            Some((_, count)) => *count += 1,
            None => kinds.push((kind, 1)),
        }
    }
    kinds
        .into_iter()
        .map(|(kind, count)| format!("{count}× {kind}"))
        .collect()
}

fn p99(mut latencies: Vec<Duration>) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    latencies.sort_unstable();
    let rank = (latencies.len() * 99).div_ceil(100).max(1);
    latencies[rank - 1]
}

fn ms(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1000.0)
}

/// One of a row's lists of answers, for the report's notes under the table.
type Items = fn(&Row) -> &[String];

/// The rows as a Markdown table, each followed by what it broke.
pub fn markdown(rows: &[Row], profile: &str) -> String {
    let mut text = format!(
        "# Chaos campaign ({profile})\n\n\
         | fault | requests | failed reads | served stale | failed writes | writes lost | failed uncached reads | p99 before (ms) | p99 during (ms) | ratio | recovery (s) | verdict |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    );
    for row in rows {
        let verdict = if row.broken.is_empty() {
            "kept".to_owned()
        } else {
            format!("**broken**: {}", row.broken.join("; "))
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.1} | {verdict} |",
            row.fault.name(),
            row.requests,
            row.failed_reads,
            row.served_stale,
            row.failed_writes,
            row.writes_lost,
            row.failed_uncached,
            ms(row.p99_before),
            ms(row.p99_during),
            row.p99_ratio(),
            row.recovery.as_secs_f64(),
        );
    }
    let lists: [(&str, Items); 4] = [
        ("Slowest answers while each fault was held", |row| {
            &row.slowest
        }),
        ("Failed reads of pages read before", |row| {
            &row.read_failures
        }),
        ("How failed writes were answered", |row| &row.write_failures),
        ("How failed reads of uncached pages were answered", |row| {
            &row.uncached_failures
        }),
    ];
    for (title, items) in lists {
        let _ = writeln!(text, "\n{title}:\n");
        for row in rows.iter().filter(|row| !items(row).is_empty()) {
            let _ = writeln!(text, "- {}: {}", row.fault.name(), items(row).join(", "));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_is_the_answer_below_which_99_in_100_fall() {
        let latencies: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(p99(latencies), Duration::from_millis(198));
        assert_eq!(
            p99(vec![Duration::from_millis(7)]),
            Duration::from_millis(7)
        );
        assert_eq!(p99(Vec::new()), Duration::ZERO);
    }

    #[test]
    fn a_stand_in_is_told_by_its_forward_reason() {
        let answer = |value: &str| Answer {
            lane: "edge",
            kind: Kind::Reload,
            at: Duration::ZERO,
            latency: Duration::ZERO,
            target: "/api/tasks/1".to_owned(),
            status: Some(200),
            lost: None,
            error: None,
            cache_status: Some(value.to_owned()),
            code: None,
            retry_after: false,
            html: false,
        };
        let stale = "rampart-origin; hit, rampart-edge; fwd=stale; detail=stale-if-error";
        assert!(stood_in(&answer(stale)));
        assert!(!stood_in(&answer("rampart-edge; hit; ttl=120")));
        assert!(!stood_in(&answer(
            "rampart-edge; fwd=miss; detail=fwd=stale"
        )));
    }

    #[test]
    fn a_comment_says_when_it_was_written() {
        assert_eq!(
            written_at("chaos edge 17 at 5230 ms"),
            Some(Duration::from_millis(5230))
        );
        assert_eq!(written_at("a comment"), None);
    }
}
