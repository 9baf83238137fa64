//! Regressions: this run's figures against the previous run's summary of the same profile.
//! A regression is flagged (in the output and the report), not failed on, unless asked: the
//! budgets are the pass mark, and a shared machine moves figures between runs.

use serde::{Deserialize, Serialize};

use crate::runner::{Summary, SUMMARY_VERSION};
use crate::stats::Outcome;

/// p99 grown past this factor (and by more than [`P99_MIN_GROWTH_MS`]) is a regression.
const P99_FACTOR: f64 = 1.5;
const P99_MIN_GROWTH_MS: f64 = 1.0;
/// A saturating scenario answering below this share of its previous rate has regressed.
const RPS_SHARE: f64 = 0.8;
/// Failed share grown by more than this is a regression.
const ERROR_RATE_GROWTH: f64 = 0.001;

/// A figure worse than in the previous run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Regression {
    pub scenario: String,
    pub target: String,
    /// `p99 ms`, `req/s` or `failed share`.
    pub metric: String,
    pub before: f64,
    pub after: f64,
}

/// Why the previous summary is not compared with.
#[derive(Debug, PartialEq)]
pub enum Incomparable {
    Version(u32),
    Profile(String),
}

/// The regressions of `current` against `previous`.
pub fn compare(previous: &Summary, current: &Summary) -> Result<Vec<Regression>, Incomparable> {
    if previous.version != SUMMARY_VERSION {
        return Err(Incomparable::Version(previous.version));
    }
    if previous.profile != current.profile {
        return Err(Incomparable::Profile(previous.profile.clone()));
    }
    let mut found = Vec::new();
    for scenario in &current.scenarios {
        let Some(before) = previous.scenarios.iter().find(|s| s.name == scenario.name) else {
            continue;
        };
        let pairs = [
            (Some(&scenario.outcome), Some(&before.outcome)),
            (scenario.peer.as_ref(), before.peer.as_ref()),
        ];
        for (now, then) in pairs {
            if let (Some(now), Some(then)) = (now, then) {
                found.extend(outcome(&scenario.name, scenario.closed, then, now));
            }
        }
    }
    Ok(found)
}

fn outcome(scenario: &str, closed: bool, before: &Outcome, after: &Outcome) -> Vec<Regression> {
    let flag = |metric: &str, then: f64, now: f64| Regression {
        scenario: scenario.to_owned(),
        target: after.target.clone(),
        metric: metric.to_owned(),
        before: then,
        after: now,
    };
    let mut found = Vec::new();
    let (p99_before, p99_after) = (before.latency_ms.p99, after.latency_ms.p99);
    if p99_after > p99_before * P99_FACTOR && p99_after - p99_before > P99_MIN_GROWTH_MS {
        found.push(flag("p99 ms", p99_before, p99_after));
    }
    if closed && after.rps < before.rps * RPS_SHARE {
        found.push(flag("req/s", before.rps, after.rps));
    }
    if after.error_rate > before.error_rate + ERROR_RATE_GROWTH {
        found.push(flag("failed share", before.error_rate, after.error_rate));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::ScenarioResult;
    use crate::stats::Percentiles;

    fn summary(profile: &str, p99: f64, rps: f64, error_rate: f64) -> Summary {
        let outcome = Outcome {
            target: "origin".into(),
            requests: 100,
            errors: 0,
            dropped: 0,
            seconds: 1.0,
            rps,
            error_rate,
            latency_ms: Percentiles {
                p50: 0.1,
                p90: 0.2,
                p95: 0.3,
                p99,
                max: p99,
            },
            cpu_us_per_answer: None,
            statuses: Default::default(),
            failures: vec![],
            timeline: vec![],
            histogram: vec![],
        };
        let scenario = ScenarioResult {
            name: "read-task".into(),
            about: String::new(),
            load: String::new(),
            closed: true,
            outcome,
            peer: None,
            checks: vec![],
        };
        Summary {
            version: SUMMARY_VERSION,
            profile: profile.into(),
            started: 0,
            scenarios: vec![scenario],
            skipped: vec![],
            regressions: vec![],
        }
    }

    #[test]
    fn worse_figures_are_flagged_and_noise_is_not() {
        let before = summary("full", 2.0, 10_000.0, 0.0);
        assert_eq!(
            compare(&before, &summary("full", 2.9, 8_100.0, 0.0005)),
            Ok(vec![])
        );
        let worse = compare(&before, &summary("full", 3.5, 7_000.0, 0.01)).expect("comparable");
        let metrics: Vec<&str> = worse.iter().map(|r| r.metric.as_str()).collect();
        assert_eq!(metrics, ["p99 ms", "req/s", "failed share"]);
    }

    #[test]
    fn another_profile_is_not_compared() {
        let before = summary("smoke", 2.0, 100.0, 0.0);
        assert_eq!(
            compare(&before, &summary("full", 9.0, 1.0, 0.0)),
            Err(Incomparable::Profile("smoke".into()))
        );
    }
}
