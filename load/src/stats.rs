//! What a run records: every answer's latency in an HdrHistogram (1 µs to a minute, three
//! significant digits), the same per second for the timeline, status counts, failures and
//! requests dropped by the generator; and the summary ([`Outcome`]) the budgets and the report
//! read.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The longest latency recorded exactly; longer ones count as this.
const MAX_MICROS: u64 = 60_000_000;
/// Least server CPU time a CPU-per-answer figure is given for: `/proc` counts in 10 ms ticks,
/// so below a second the figure would be off by more than 1%.
const MIN_CPU_MICROS: f64 = 1_000_000.0;
/// Failures kept as examples for the report.
const EXAMPLES: usize = 5;

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// An answer with this status; `ok` when it was the expected one.
    Status { code: u16, ok: bool },
    /// No answer within the plan's timeout.
    Timeout,
    /// The connection failed or broke (the text says how).
    Transport(String),
}

impl Ending {
    fn is_ok(&self) -> bool {
        matches!(self, Self::Status { ok: true, .. })
    }

    fn label(&self) -> String {
        match self {
            Self::Status { code, .. } => code.to_string(),
            Self::Timeout => "timeout".to_owned(),
            Self::Transport(_) => "transport-error".to_owned(),
        }
    }
}

/// The running record of one scenario against one target (all rounds pooled).
#[derive(Debug)]
pub struct Recorder {
    latency: Histogram<u64>,
    seconds: Vec<Second>,
    /// Seconds of earlier rounds, so a round's timeline follows the last one's.
    offset: usize,
    statuses: BTreeMap<String, u64>,
    errors: u64,
    dropped: u64,
    examples: Vec<String>,
    measured: Duration,
    /// Server CPU time while measuring, µs, when every round could read it.
    cpu_micros: Option<f64>,
    cpu_rounds: u32,
}

#[derive(Debug)]
struct Second {
    latency: Histogram<u64>,
    errors: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant histogram bounds are valid")
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            latency: histogram(),
            seconds: Vec::new(),
            offset: 0,
            statuses: BTreeMap::new(),
            errors: 0,
            dropped: 0,
            examples: Vec::new(),
            measured: Duration::ZERO,
            cpu_micros: None,
            cpu_rounds: 0,
        }
    }
}

impl Recorder {
    /// One answer (or failure), `at` from the start of measuring, after `latency`.
    pub fn record(&mut self, at: Duration, latency: Duration, ending: &Ending, path: &str) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        self.latency.saturating_record(micros);
        let ok = ending.is_ok();
        let second = self.second(at);
        second.latency.saturating_record(micros);
        if !ok {
            second.errors += 1;
        }
        *self.statuses.entry(ending.label()).or_default() += 1;
        if !ok {
            self.errors += 1;
            if self.examples.len() < EXAMPLES {
                let what = match ending {
                    Ending::Transport(why) => format!("{path}: {why}"),
                    other => format!("{path}: {}", other.label()),
                };
                self.examples.push(what);
            }
        }
    }

    /// The target's CPU time over one round's measured window (`None`: not known).
    pub fn add_cpu(&mut self, micros: Option<f64>) {
        let known = self.cpu_rounds == 0 || self.cpu_micros.is_some();
        self.cpu_micros = match (micros, known) {
            (Some(micros), true) => Some(self.cpu_micros.unwrap_or(0.0) + micros),
            _ => None,
        };
        self.cpu_rounds += 1;
    }

    /// A request the generator could not start: too many were in flight.
    pub fn drop_one(&mut self) {
        self.dropped += 1;
    }

    /// Ends a round that measured for `measured`; the next round's seconds come after it.
    pub fn end_round(&mut self, measured: Duration) {
        self.measured += measured;
        // Answers to requests due before the end may come after it, in a later second.
        self.offset =
            (self.offset + measured.as_secs_f64().ceil() as usize).max(self.seconds.len());
        while self.seconds.len() < self.offset {
            self.seconds.push(Second {
                latency: histogram(),
                errors: 0,
            });
        }
    }

    /// For progress lines, `at` into the current round: the last complete second's answers,
    /// failures and p99 in milliseconds.
    pub fn latest_second(&self, at: Duration) -> Option<(u64, u64, f64)> {
        let index = (self.offset + at.as_secs() as usize).checked_sub(1)?;
        let second = self.seconds.get(index)?;
        Some((
            second.latency.len(),
            second.errors,
            ms(second.latency.value_at_quantile(0.99)),
        ))
    }

    fn second(&mut self, at: Duration) -> &mut Second {
        let index = self.offset + at.as_secs() as usize;
        while self.seconds.len() <= index {
            self.seconds.push(Second {
                latency: histogram(),
                errors: 0,
            });
        }
        &mut self.seconds[index]
    }

    /// The summary of everything recorded.
    pub fn outcome(&self, target: &str) -> Outcome {
        let answers = self.latency.len();
        let seconds = self.measured.as_secs_f64();
        let at = |q: f64| ms(self.latency.value_at_quantile(q));
        Outcome {
            target: target.to_owned(),
            requests: answers,
            errors: self.errors,
            dropped: self.dropped,
            seconds,
            rps: if seconds > 0.0 {
                answers as f64 / seconds
            } else {
                0.0
            },
            error_rate: failure_share(self.errors + self.dropped, answers + self.dropped),
            latency_ms: Percentiles {
                p50: at(0.50),
                p90: at(0.90),
                p95: at(0.95),
                p99: at(0.99),
                max: ms(self.latency.max()),
            },
            cpu_us_per_answer: self
                .cpu_micros
                .filter(|us| answers > 0 && *us >= MIN_CPU_MICROS)
                .map(|us| us / answers as f64),
            statuses: self.statuses.clone(),
            failures: self.examples.clone(),
            timeline: self.timeline(),
            histogram: self.buckets(),
        }
    }

    fn timeline(&self) -> Vec<SecondRow> {
        self.seconds
            .iter()
            .map(|second| SecondRow {
                requests: second.latency.len(),
                errors: second.errors,
                p99_ms: ms(second.latency.value_at_quantile(0.99)),
            })
            .collect()
    }

    /// Counts per latency band, bands growing by a quarter from 20 µs: the histogram chart.
    fn buckets(&self) -> Vec<Bucket> {
        if self.latency.is_empty() {
            return Vec::new();
        }
        self.latency
            .iter_log(20, 1.25)
            .map(|band| Bucket {
                upto_ms: ms(band.value_iterated_to()),
                count: band.count_since_last_iteration(),
            })
            .collect()
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn failure_share(failed: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        failed as f64 / total as f64
    }
}

/// The summary of one scenario against one target: what the budgets check and the report shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    /// The target's name.
    pub target: String,
    /// Answers and failures recorded while measuring.
    pub requests: u64,
    /// Requests that failed: wrong status, timeout or transport error.
    pub errors: u64,
    /// Requests due that the generator could not start (its in-flight limit was reached).
    pub dropped: u64,
    /// Seconds measured.
    pub seconds: f64,
    /// Answers per second.
    pub rps: f64,
    /// Failed and dropped requests over all requests due.
    pub error_rate: f64,
    /// Latency percentiles, in milliseconds.
    pub latency_ms: Percentiles,
    /// The target's CPU time per answer, µs, when its processes were given (`--cpu`) and spent
    /// at least a second of CPU while measured (less is too coarse to show).
    #[serde(default)]
    pub cpu_us_per_answer: Option<f64>,
    /// Answers per status code (and `timeout`, `transport-error`).
    pub statuses: BTreeMap<String, u64>,
    /// A few failures, as examples.
    pub failures: Vec<String>,
    /// Per second: answers, failures, p99.
    pub timeline: Vec<SecondRow>,
    /// The latency histogram.
    pub histogram: Vec<Bucket>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// One second of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SecondRow {
    pub requests: u64,
    pub errors: u64,
    pub p99_ms: f64,
}

/// Answers whose latency fell in the band ending at `upto_ms`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bucket {
    pub upto_ms: f64,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: Ending = Ending::Status {
        code: 200,
        ok: true,
    };

    #[test]
    fn percentiles_failures_and_rounds_are_pooled_into_one_outcome() {
        let mut recorder = Recorder::default();
        for i in 0..990u64 {
            let at = Duration::from_millis(i);
            recorder.record(at, Duration::from_micros(1_000), &OK, "/a");
        }
        for i in 0..10u64 {
            let at = Duration::from_millis(990 + i);
            let ending = Ending::Status {
                code: 503,
                ok: false,
            };
            recorder.record(at, Duration::from_micros(40_000), &ending, "/b");
        }
        recorder.end_round(Duration::from_secs(1));
        recorder.record(
            Duration::from_millis(10),
            Duration::from_secs(5),
            &Ending::Timeout,
            "/c",
        );
        recorder.drop_one();
        recorder.end_round(Duration::from_secs(1));

        let outcome = recorder.outcome("origin");
        assert_eq!(outcome.requests, 1001);
        assert_eq!(outcome.errors, 11);
        assert_eq!(outcome.dropped, 1);
        assert!((outcome.error_rate - 12.0 / 1002.0).abs() < 1e-9);
        assert!((outcome.rps - 500.5).abs() < 1e-9);
        assert!(
            (outcome.latency_ms.p95 - 1.0).abs() < 0.01,
            "{:?}",
            outcome.latency_ms
        );
        assert!(
            (outcome.latency_ms.p99 - 40.0).abs() < 0.1,
            "{:?}",
            outcome.latency_ms
        );
        assert!((outcome.latency_ms.max - 5000.0).abs() < 5.0);
        assert_eq!(outcome.statuses["200"], 990);
        assert_eq!(outcome.statuses["503"], 10);
        assert_eq!(outcome.statuses["timeout"], 1);
        assert_eq!(outcome.failures.len(), EXAMPLES);
        // The second round's second follows the first round's.
        let rows: Vec<(u64, u64)> = outcome
            .timeline
            .iter()
            .map(|s| (s.requests, s.errors))
            .collect();
        assert_eq!(rows, [(1000, 10), (1, 1)]);
        assert_eq!(outcome.histogram.iter().map(|b| b.count).sum::<u64>(), 1001);
    }

    #[test]
    fn cpu_per_answer_is_given_from_a_second_of_cpu_and_only_when_every_round_was_read() {
        let mut recorder = Recorder::default();
        for i in 0..1000u64 {
            recorder.record(
                Duration::from_millis(i),
                Duration::from_micros(100),
                &OK,
                "/",
            );
        }
        recorder.add_cpu(Some(600_000.0));
        recorder.end_round(Duration::from_secs(1));
        assert_eq!(
            recorder.outcome("origin").cpu_us_per_answer,
            None,
            "0.6 s is too coarse"
        );
        recorder.add_cpu(Some(600_000.0));
        recorder.end_round(Duration::from_secs(1));
        assert_eq!(recorder.outcome("origin").cpu_us_per_answer, Some(1_200.0));
        recorder.add_cpu(None);
        assert_eq!(
            recorder.outcome("origin").cpu_us_per_answer,
            None,
            "a round not read"
        );
    }

    #[test]
    fn an_empty_run_has_no_rate_and_no_failures() {
        let mut recorder = Recorder::default();
        recorder.end_round(Duration::from_secs(2));
        let outcome = recorder.outcome("edge");
        assert_eq!(
            (outcome.requests, outcome.rps, outcome.error_rate),
            (0, 0.0, 0.0)
        );
        assert!(outcome.histogram.is_empty());
    }
}
