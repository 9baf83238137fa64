//! Budgets, k6-style thresholds: each one a scenario's plan sets becomes a [`Check`] of the
//! run's outcome, absolute (p99 ≤ 20 ms) or relative to the peer measured in the same run
//! (p99 ≤ 1.5 × nginx's). A run with any check missed fails.

use serde::{Deserialize, Serialize};

use crate::plan::Budget;
use crate::stats::Outcome;

/// Share of its offered rate an open-model scenario must answer when its budget says nothing.
const DEFAULT_RATE_SHARE: f64 = 0.9;
/// Failed share above which a peer's figures are not a fair comparison.
const PEER_ERROR_RATE: f64 = 0.01;

/// One threshold and whether the run met it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Check {
    /// What is checked, for people: `p99 ≤ 1.5 × nginx (0.41 ms) + 0.5 ms`.
    pub what: String,
    /// The measured value.
    pub actual: f64,
    /// The limit it is held to.
    pub limit: f64,
    /// Whether the limit is a ceiling (`≤`) rather than a floor.
    pub at_most: bool,
    pub ok: bool,
}

impl Check {
    fn at_most(what: String, actual: f64, limit: f64) -> Self {
        Self {
            what,
            actual,
            limit,
            at_most: true,
            ok: actual <= limit,
        }
    }

    fn at_least(what: String, actual: f64, limit: f64) -> Self {
        Self {
            what,
            actual,
            limit,
            at_most: false,
            ok: actual >= limit,
        }
    }
}

/// The checks of `budget` on a run, given the open model's offered rate (already scaled) and
/// the peer's outcome when the scenario has one.
pub fn evaluate(
    budget: &Budget,
    offered_rate: Option<f64>,
    outcome: &Outcome,
    peer: Option<&Outcome>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let latency = &outcome.latency_ms;
    if let Some(limit) = budget.p95_ms {
        checks.push(Check::at_most(
            format!("p95 ≤ {limit} ms"),
            latency.p95,
            limit,
        ));
    }
    if let Some(limit) = budget.p99_ms {
        checks.push(Check::at_most(
            format!("p99 ≤ {limit} ms"),
            latency.p99,
            limit,
        ));
    }
    if let Some(limit) = budget.error_rate {
        let what = format!("failed ≤ {}%", limit * 100.0);
        checks.push(Check::at_most(what, outcome.error_rate, limit));
    }
    match (budget.min_rps, offered_rate) {
        (Some(limit), _) => checks.push(Check::at_least(
            format!("≥ {limit} req/s"),
            outcome.rps,
            limit,
        )),
        (None, Some(rate)) => {
            let limit = rate * DEFAULT_RATE_SHARE;
            let what = format!(
                "≥ {:.0}% of the offered {rate:.0} req/s",
                DEFAULT_RATE_SHARE * 100.0
            );
            checks.push(Check::at_least(what, outcome.rps, limit));
        }
        (None, None) => {}
    }
    if let Some(peer) = peer {
        checks.extend(relative(budget, outcome, peer));
    }
    checks
}

fn relative(budget: &Budget, outcome: &Outcome, peer: &Outcome) -> Vec<Check> {
    if budget.p95_vs_peer.is_none() && budget.p99_vs_peer.is_none() && budget.rps_vs_peer.is_none()
    {
        return Vec::new();
    }
    let name = &peer.target;
    let mut checks = vec![Check::at_most(
        format!("{name} (the peer) failed ≤ {}%", PEER_ERROR_RATE * 100.0),
        peer.error_rate,
        PEER_ERROR_RATE,
    )];
    let slack = budget.peer_slack_ms.unwrap_or(0.0);
    let percentiles = [
        (
            "p95",
            budget.p95_vs_peer,
            outcome.latency_ms.p95,
            peer.latency_ms.p95,
        ),
        (
            "p99",
            budget.p99_vs_peer,
            outcome.latency_ms.p99,
            peer.latency_ms.p99,
        ),
    ];
    for (percentile, factor, own, peers) in percentiles {
        let Some(factor) = factor else { continue };
        let what = format!("{percentile} ≤ {factor} × {name}'s ({peers:.2} ms) + {slack} ms");
        checks.push(Check::at_most(what, own, factor * peers + slack));
    }
    if let Some(factor) = budget.rps_vs_peer {
        let what = format!("req/s ≥ {factor} × {name}'s ({:.0})", peer.rps);
        checks.push(Check::at_least(what, outcome.rps, factor * peer.rps));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Percentiles;

    fn outcome(target: &str, rps: f64, p99: f64, error_rate: f64) -> Outcome {
        Outcome {
            target: target.to_owned(),
            requests: 1000,
            errors: 0,
            dropped: 0,
            seconds: 1.0,
            rps,
            error_rate,
            latency_ms: Percentiles {
                p50: p99 / 4.0,
                p90: p99 / 2.0,
                p95: p99 / 1.5,
                p99,
                max: p99 * 2.0,
            },
            cpu_us_per_answer: None,
            statuses: Default::default(),
            failures: vec![],
            timeline: vec![],
            histogram: vec![],
        }
    }

    fn verdicts(checks: &[Check]) -> Vec<(String, bool)> {
        checks.iter().map(|c| (c.what.clone(), c.ok)).collect()
    }

    #[test]
    fn absolute_budgets_pass_at_their_limit_and_fail_past_it() {
        let budget = Budget {
            p95_ms: Some(2.0),
            p99_ms: Some(3.0),
            error_rate: Some(0.001),
            ..Budget::default()
        };
        let met = evaluate(
            &budget,
            Some(100.0),
            &outcome("origin", 90.0, 3.0, 0.001),
            None,
        );
        assert!(met.iter().all(|c| c.ok), "{:?}", verdicts(&met));
        assert_eq!(met.len(), 4, "the offered rate is checked by default");
        let missed = evaluate(
            &budget,
            Some(100.0),
            &outcome("origin", 89.0, 3.1, 0.002),
            None,
        );
        assert_eq!(
            missed.iter().filter(|c| !c.ok).count(),
            4,
            "{:?}",
            verdicts(&missed)
        );
    }

    #[test]
    fn relative_budgets_follow_the_peer_measured_in_the_same_run() {
        let budget = Budget {
            p99_vs_peer: Some(1.5),
            rps_vs_peer: Some(1.0),
            peer_slack_ms: Some(0.5),
            ..Budget::default()
        };
        let nginx = outcome("nginx", 10_000.0, 1.0, 0.0);
        let met = evaluate(
            &budget,
            None,
            &outcome("origin", 10_000.0, 2.0, 0.0),
            Some(&nginx),
        );
        assert!(met.iter().all(|c| c.ok), "{:?}", verdicts(&met));
        let slower = evaluate(
            &budget,
            None,
            &outcome("origin", 9_999.0, 2.01, 0.0),
            Some(&nginx),
        );
        assert_eq!(
            slower.iter().filter(|c| !c.ok).count(),
            2,
            "{:?}",
            verdicts(&slower)
        );
        let broken_peer = outcome("nginx", 10_000.0, 1.0, 0.5);
        let unfair = evaluate(
            &budget,
            None,
            &outcome("origin", 10_000.0, 2.0, 0.0),
            Some(&broken_peer),
        );
        assert!(
            !unfair[0].ok,
            "a failing peer fails the run: {:?}",
            verdicts(&unfair)
        );
    }

    #[test]
    fn a_p95_budget_follows_the_peers_p95() {
        let budget = Budget {
            p95_vs_peer: Some(2.0),
            peer_slack_ms: Some(1.0),
            ..Budget::default()
        };
        // The helper's p95 is p99 / 1.5: the peer's is 10 ms, so the limit is 21 ms.
        let peer = outcome("plain", 100.0, 15.0, 0.0);
        let within = evaluate(
            &budget,
            None,
            &outcome("edge", 100.0, 31.5, 0.0),
            Some(&peer),
        );
        assert!(within.iter().all(|c| c.ok), "{:?}", verdicts(&within));
        let beyond = evaluate(
            &budget,
            None,
            &outcome("edge", 100.0, 31.6, 0.0),
            Some(&peer),
        );
        let missed: Vec<_> = beyond.iter().filter(|c| !c.ok).collect();
        assert_eq!(missed.len(), 1, "{:?}", verdicts(&beyond));
        assert!(
            missed[0].what.starts_with("p95 ≤ 2 × plain's (10.00 ms)"),
            "{}",
            missed[0].what
        );
    }
}
