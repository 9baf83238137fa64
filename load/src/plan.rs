//! The load plan: the scenarios (what users do, against which target, at what load), their
//! budgets, the variables their paths draw from, and the profiles (`smoke`, `full`) that scale
//! them. Read from a TOML file (`load/plan.toml`) and checked before anything is sent.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::vars::VarSpec;

/// A whole plan, as read from the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// How long to wait for one response before counting it failed, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Named profiles: how long each scenario runs and how its load is scaled.
    pub profiles: BTreeMap<String, Profile>,
    /// Values the request templates draw from (`{task}` in a path).
    #[serde(default)]
    pub vars: BTreeMap<String, VarSpec>,
    /// The scenarios, run in this order.
    #[serde(rename = "scenario")]
    pub scenarios: Vec<Scenario>,
}

fn default_timeout_ms() -> u64 {
    5_000
}

/// How a run is sized: a short smoke run in CI, a longer full run on demand.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Measured seconds per scenario, target and round.
    pub duration_s: f64,
    /// Seconds of load before measuring starts (connections opened, caches filled).
    #[serde(default)]
    pub warmup_s: f64,
    /// Multiplies every scenario's arrival rate (a smoke run sends less).
    #[serde(default = "one")]
    pub rate_scale: f64,
    /// Rounds; a scenario with a peer alternates which of the two goes first.
    #[serde(default = "one_round")]
    pub rounds: u32,
}

fn one() -> f64 {
    1.0
}

fn one_round() -> u32 {
    1
}

/// One thing users do, sent to one target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A name that says what the users do (`browse-board`).
    pub name: String,
    /// One sentence for the report.
    #[serde(default)]
    pub about: String,
    /// The target's name, given a URL on the command line (`--target origin=http://…`).
    pub target: String,
    /// Another target that gets the same requests in the same run, to compare with.
    pub peer: Option<String>,
    /// Open model: requests started per second, whatever the answers' pace (k6's
    /// constant-arrival-rate). Latency counts from when a request was due.
    pub rate: Option<f64>,
    /// Closed model: this many connections each sending its next request as soon as the last
    /// one is answered (saturating: measures throughput).
    pub connections: Option<usize>,
    /// Seconds of warm-up for this scenario, when it needs more than the profile's (a scenario
    /// whose first requests fill a slow cache, such as image conversions).
    pub warmup_s: Option<f64>,
    /// Requests in flight at most (open model); a request due past it is dropped and counted.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// The requests, sent in turn: each arrival sends the next one.
    pub requests: Vec<RequestSpec>,
    /// What the run must reach.
    #[serde(default)]
    pub budget: Budget,
}

fn default_max_in_flight() -> usize {
    512
}

/// One request of a scenario; the path, header values and body may hold `{var}` templates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// `GET` unless said.
    #[serde(default = "default_method")]
    pub method: String,
    /// Path and query, starting with `/`.
    pub path: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A request body (a JSON body also needs its `content-type` header).
    pub body: Option<String>,
    /// The status that counts as success; any 2xx when absent.
    pub expect: Option<u16>,
}

fn default_method() -> String {
    "GET".to_owned()
}

/// A scenario's budgets: every field set is a threshold the run fails on when missed.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// 95th percentile latency at most, in milliseconds.
    pub p95_ms: Option<f64>,
    /// 99th percentile latency at most, in milliseconds.
    pub p99_ms: Option<f64>,
    /// Share of failed requests (wrong status, transport error, timeout) at most, 0–1.
    pub error_rate: Option<f64>,
    /// Answers per second at least. An open-model scenario without it must answer 90% of its
    /// offered rate.
    pub min_rps: Option<f64>,
    /// p95 at most this many times the peer's p95 (plus `peer_slack_ms`).
    pub p95_vs_peer: Option<f64>,
    /// p99 at most this many times the peer's p99 (plus `peer_slack_ms`).
    pub p99_vs_peer: Option<f64>,
    /// Answers per second at least this many times the peer's.
    pub rps_vs_peer: Option<f64>,
    /// Added to the peer-relative p99 limit: below a millisecond, scheduling noise dominates.
    pub peer_slack_ms: Option<f64>,
}

/// Why a plan cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read the plan {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the plan {path} is not valid: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("scenario {scenario}: {problem}")]
    Scenario { scenario: String, problem: String },
    #[error("profile {0:?} is not in the plan (it has: {1})")]
    UnknownProfile(String, String),
    #[error("profile {profile}: {problem}")]
    Profile { profile: String, problem: String },
}

impl Plan {
    /// Reads and checks a plan file.
    pub fn load(path: &Path) -> Result<Self, PlanError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: shown.clone(),
            source,
        })?;
        let plan: Self = toml::from_str(&text).map_err(|source| PlanError::Parse {
            path: shown,
            source: Box::new(source),
        })?;
        plan.check()?;
        Ok(plan)
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The named profile.
    pub fn profile(&self, name: &str) -> Result<&Profile, PlanError> {
        self.profiles.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
            PlanError::UnknownProfile(name.to_owned(), known.join(", "))
        })
    }

    fn check(&self) -> Result<(), PlanError> {
        for (name, profile) in &self.profiles {
            profile.check().map_err(|problem| PlanError::Profile {
                profile: name.clone(),
                problem,
            })?;
        }
        let mut names = std::collections::HashSet::new();
        for scenario in &self.scenarios {
            let fail = |problem: String| PlanError::Scenario {
                scenario: scenario.name.clone(),
                problem,
            };
            if !names.insert(scenario.name.as_str()) {
                return Err(fail("two scenarios have this name".into()));
            }
            scenario.check().map_err(fail)?;
        }
        Ok(())
    }
}

impl Profile {
    fn check(&self) -> Result<(), String> {
        if !(self.duration_s > 0.0 && self.duration_s <= 3600.0) {
            return Err("duration_s must be above 0 and at most 3600".into());
        }
        if !(0.0..=600.0).contains(&self.warmup_s) {
            return Err("warmup_s must be 0–600".into());
        }
        if !(self.rate_scale > 0.0 && self.rate_scale <= 100.0) {
            return Err("rate_scale must be above 0 and at most 100".into());
        }
        if self.rounds == 0 || self.rounds > 100 {
            return Err("rounds must be 1–100".into());
        }
        Ok(())
    }

    /// The measured time per run.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_s)
    }
}

impl Scenario {
    fn check(&self) -> Result<(), String> {
        match (self.rate, self.connections) {
            (Some(rate), None) if rate > 0.0 && rate <= 1_000_000.0 => {}
            (None, Some(connections)) if (1..=10_000).contains(&connections) => {}
            (Some(_), Some(_)) | (None, None) => {
                return Err("give either `rate` (open model) or `connections` (closed)".into())
            }
            _ => return Err("`rate` must be 0–1,000,000 and `connections` 1–10,000".into()),
        }
        if self
            .warmup_s
            .is_some_and(|seconds| !(0.0..=600.0).contains(&seconds))
        {
            return Err("warmup_s must be 0–600".into());
        }
        if self.max_in_flight == 0 {
            return Err("max_in_flight must be at least 1".into());
        }
        if self.requests.is_empty() {
            return Err("it has no requests".into());
        }
        for request in &self.requests {
            if !request.path.starts_with('/') {
                return Err(format!("path {:?} must start with /", request.path));
            }
            hyper::Method::from_bytes(request.method.as_bytes())
                .map_err(|_| format!("{:?} is not an HTTP method", request.method))?;
        }
        let budget = &self.budget;
        let relative = [budget.p95_vs_peer, budget.p99_vs_peer, budget.rps_vs_peer];
        if relative.iter().any(Option::is_some) && self.peer.is_none() {
            return Err("its budget compares with a peer, but it names no `peer`".into());
        }
        if budget
            .error_rate
            .is_some_and(|rate| !(0.0..=1.0).contains(&rate))
        {
            return Err("budget.error_rate must be 0–1".into());
        }
        Ok(())
    }

    /// The warm-up before measuring: the scenario's own when longer than the profile's.
    pub fn warmup(&self, profile: &Profile) -> std::time::Duration {
        let own = self.warmup_s.unwrap_or(0.0);
        std::time::Duration::from_secs_f64(own.max(profile.warmup_s))
    }

    /// Whether the scenario saturates its target (closed model).
    pub fn is_closed(&self) -> bool {
        self.connections.is_some()
    }
}
