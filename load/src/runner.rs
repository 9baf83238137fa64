//! Runs a plan: each scenario against its target (and its peer, alternating which goes first
//! from round to round), then its budgets checked, into the [`Summary`] the report is made from.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::budget::{self, Check};
use crate::compare::Regression;
use crate::cpu::CpuProbe;
use crate::driver::{self, PrepareError, Prepared, Run, Target};
use crate::plan::{Plan, PlanError, Profile, Scenario};
use crate::stats::{Outcome, Recorder};
use crate::vars::{TemplateError, Vars};

/// Version of the summary's JSON shape, so that a comparison knows what it reads.
pub const SUMMARY_VERSION: u32 = 1;

/// What a run is asked to do besides the plan.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub profile: String,
    /// Target name → base URL.
    pub targets: BTreeMap<String, String>,
    /// `--var name=value`.
    pub vars: Vec<(String, String)>,
    /// Only these scenarios, when not empty.
    pub only: Vec<String>,
    /// Skip scenarios whose target (or peer) has no URL, instead of failing.
    pub skip_missing: bool,
    /// Target name → its server's process ids, for CPU time per answer.
    pub cpu: BTreeMap<String, Vec<u32>>,
}

/// The whole run: what the report shows and the next run compares with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub version: u32,
    pub profile: String,
    /// Seconds since the Unix epoch when the run started.
    pub started: u64,
    pub scenarios: Vec<ScenarioResult>,
    /// Scenarios not run, and why.
    pub skipped: Vec<String>,
    /// Figures worse than the previous run's (filled in by [`crate::compare`]).
    #[serde(default)]
    pub regressions: Vec<Regression>,
}

/// One scenario's figures and verdicts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub name: String,
    pub about: String,
    /// `300 req/s offered` or `16 connections`.
    pub load: String,
    pub closed: bool,
    pub outcome: Outcome,
    pub peer: Option<Outcome>,
    pub checks: Vec<Check>,
}

impl Summary {
    /// Whether every check of every scenario was met.
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(|s| s.checks.iter().all(|c| c.ok))
    }
}

/// Why a plan could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Vars(#[from] TemplateError),
    #[error("scenario {0}: {1}")]
    Request(String, PrepareError),
    #[error("scenario {scenario} needs target {target:?}: give it with --target {target}=http://host:port (or --skip-missing)")]
    MissingTarget { scenario: String, target: String },
    #[error("target {0:?} must be an http:// URL with a host (got {1:?})")]
    BadTarget(String, String),
    #[error("--only names {0:?}, which is not a scenario of the plan")]
    UnknownScenario(String),
}

/// Runs the plan's scenarios under `options`.
pub async fn run(plan: &Plan, options: &Options) -> Result<Summary, RunError> {
    let profile = plan.profile(&options.profile)?;
    let vars = Arc::new(Vars::new(&plan.vars, &options.vars)?);
    for name in &options.only {
        if !plan.scenarios.iter().any(|s| &s.name == name) {
            return Err(RunError::UnknownScenario(name.clone()));
        }
    }
    let client = driver::client();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let mut summary = Summary {
        version: SUMMARY_VERSION,
        profile: options.profile.clone(),
        started,
        scenarios: Vec::new(),
        skipped: Vec::new(),
        regressions: Vec::new(),
    };
    // Every target URL and every request of every scenario is checked before anything is sent.
    for name in options.targets.keys() {
        target(name, options)?;
    }
    let mut prepared = Vec::new();
    for scenario in &plan.scenarios {
        let requests = scenario
            .requests
            .iter()
            .map(|spec| Prepared::new(spec, &vars))
            .collect::<Result<Arc<[_]>, _>>()
            .map_err(|e| RunError::Request(scenario.name.clone(), e))?;
        prepared.push(requests);
    }
    for (scenario, requests) in plan.scenarios.iter().zip(prepared) {
        if !options.only.is_empty() && !options.only.contains(&scenario.name) {
            continue;
        }
        let mut wanted = std::iter::once(&scenario.target).chain(scenario.peer.as_ref());
        if let Some(missing) = wanted.find(|t| !options.targets.contains_key(*t)) {
            if !options.skip_missing {
                return Err(RunError::MissingTarget {
                    scenario: scenario.name.clone(),
                    target: missing.clone(),
                });
            }
            summary
                .skipped
                .push(format!("{}: no URL for target {missing}", scenario.name));
            continue;
        }
        let base = Run {
            client: client.clone(),
            target: target(&scenario.target, options)?,
            requests,
            vars: vars.clone(),
            timeout: plan.timeout(),
            warmup: scenario.warmup(profile),
            duration: profile.duration(),
            label: String::new(),
            cpu: probe(&scenario.target, options),
        };
        summary
            .scenarios
            .push(run_scenario(scenario, profile, base, options).await?);
    }
    Ok(summary)
}

fn target(name: &str, options: &Options) -> Result<Target, RunError> {
    let url = options.targets.get(name).cloned().unwrap_or_default();
    let bad = || RunError::BadTarget(name.to_owned(), url.clone());
    let uri: hyper::Uri = url.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(bad());
    }
    Ok(Target {
        name: name.to_owned(),
        base: url.trim_end_matches('/').to_owned(),
    })
}

fn probe(target: &str, options: &Options) -> Option<CpuProbe> {
    options
        .cpu
        .get(target)
        .map(|pids| CpuProbe::new(pids.clone()))
}

async fn run_scenario(
    scenario: &Scenario,
    profile: &Profile,
    base: Run,
    options: &Options,
) -> Result<ScenarioResult, RunError> {
    let offered = scenario.rate.map(|rate| rate * profile.rate_scale);
    let mut runs = vec![(base.clone(), Arc::new(Mutex::new(Recorder::default())))];
    if let Some(peer) = &scenario.peer {
        let peer_run = Run {
            target: target(peer, options)?,
            cpu: probe(peer, options),
            ..base.clone()
        };
        runs.push((peer_run, Arc::new(Mutex::new(Recorder::default()))));
    }
    eprintln!(
        "{} ({}): {}",
        scenario.name,
        load_of(scenario, offered),
        scenario.about
    );
    for round in 0..profile.rounds {
        let reverse = round % 2 == 1;
        for index in 0..runs.len() {
            let (run, recorder) = &runs[if reverse {
                runs.len() - 1 - index
            } else {
                index
            }];
            let run = Run {
                label: format!(
                    "{} → {} (round {})",
                    scenario.name,
                    run.target.name,
                    round + 1
                ),
                ..run.clone()
            };
            match (offered, scenario.connections) {
                (Some(rate), _) => run.open(rate, scenario.max_in_flight, recorder).await,
                (None, Some(connections)) => run.closed(connections, recorder).await,
                (None, None) => unreachable!("a checked plan gives rate or connections"),
            }
        }
    }
    let outcomes: Vec<Outcome> = runs
        .iter()
        .map(|(run, recorder)| {
            recorder
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .outcome(&run.target.name)
        })
        .collect();
    let mut outcomes = outcomes.into_iter();
    let outcome = outcomes.next().expect("the target's run is always there");
    let peer = outcomes.next();
    let checks = budget::evaluate(&scenario.budget, offered, &outcome, peer.as_ref());
    Ok(ScenarioResult {
        name: scenario.name.clone(),
        about: scenario.about.clone(),
        load: load_of(scenario, offered),
        closed: scenario.is_closed(),
        outcome,
        peer,
        checks,
    })
}

fn load_of(scenario: &Scenario, offered: Option<f64>) -> String {
    match (offered, scenario.connections) {
        (Some(rate), _) => format!("{rate:.0} req/s offered"),
        (None, Some(connections)) => format!("{connections} connections, saturating"),
        (None, None) => String::new(),
    }
}
