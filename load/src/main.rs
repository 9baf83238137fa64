//! `rampart-load`: runs a load plan and fails when a budget is missed.
//!
//! Exit status: 0 when every budget is met, 1 when one is missed (or, with
//! `--fail-on-regression`, when a figure is worse than the previous run's), 2 when the plan or
//! the command line is wrong.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rampart_load::compare::{self, Incomparable};
use rampart_load::cpu::parse_pids;
use rampart_load::plan::Plan;
use rampart_load::report;
use rampart_load::runner::{self, Options, Summary};

/// Runs a load plan against named targets and checks its budgets.
#[derive(Debug, Parser)]
#[command(name = "rampart-load", version)]
struct Cli {
    /// The plan: scenarios, budgets, variables and profiles.
    #[arg(long, default_value = "load/plan.toml")]
    plan: PathBuf,
    /// The profile that sizes the run (`smoke`, `full`).
    #[arg(long, default_value = "smoke")]
    profile: String,
    /// A target's base URL: `--target origin=http://127.0.0.1:8080`; repeat for each.
    #[arg(long = "target", value_parser = pair)]
    targets: Vec<(String, String)>,
    /// A template variable: `--var image=/images/ab12.png`; repeat for each.
    #[arg(long = "var", value_parser = pair)]
    vars: Vec<(String, String)>,
    /// A target's server processes, whose CPU time per answer the run records:
    /// `--cpu origin=1234` or `--cpu nginx=1240,1241`; repeat for each target.
    #[arg(long = "cpu", value_parser = pair)]
    cpu: Vec<(String, String)>,
    /// Runs only these scenarios; repeat for each.
    #[arg(long)]
    only: Vec<String>,
    /// Skips scenarios whose target has no URL instead of failing.
    #[arg(long)]
    skip_missing: bool,
    /// Where `summary.json` and `report.html` go; an earlier `summary.json` there becomes
    /// `previous.json` and is compared with.
    #[arg(long, default_value = "target/load")]
    out: PathBuf,
    /// Compares with this summary instead of the previous one in `--out`.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Fails when a figure is worse than the previous run's.
    #[arg(long)]
    fail_on_regression: bool,
    /// Load generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn pair(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or("expected name=value")?;
    if name.is_empty() {
        return Err("the name before = is empty".into());
    }
    Ok((name.to_owned(), value.to_owned()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("rampart-load: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode, String> {
    let plan = Plan::load(&cli.plan).map_err(|e| e.to_string())?;
    let mut cpu = BTreeMap::new();
    for (target, pids) in &cli.cpu {
        let pids = parse_pids(pids).map_err(|e| format!("--cpu {target}: {e}"))?;
        cpu.insert(target.clone(), pids);
    }
    let options = Options {
        profile: cli.profile.clone(),
        targets: cli.targets.iter().cloned().collect::<BTreeMap<_, _>>(),
        vars: cli.vars.clone(),
        only: cli.only.clone(),
        skip_missing: cli.skip_missing,
        cpu,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let mut summary = runtime
        .block_on(runner::run(&plan, &options))
        .map_err(|e| e.to_string())?;
    if let Some(previous) = previous(cli)? {
        match compare::compare(&previous, &summary) {
            Ok(found) => summary.regressions = found,
            Err(Incomparable::Profile(other)) => {
                eprintln!("not compared with the previous run: it was the {other} profile")
            }
            Err(Incomparable::Version(version)) => {
                eprintln!("not compared with the previous run: summary version {version}")
            }
        }
    }
    report::write(&cli.out, &summary)
        .map_err(|e| format!("cannot write the report into {}: {e}", cli.out.display()))?;
    print!("{}", report::table(&summary));
    println!("report: {}", cli.out.join("report.html").display());
    let regressed = cli.fail_on_regression && !summary.regressions.is_empty();
    if summary.passed() && !regressed {
        println!("every budget met");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "FAILED: {}",
            if summary.passed() {
                "figures regressed"
            } else {
                "budgets missed"
            }
        );
        Ok(ExitCode::from(1))
    }
}

/// The summary to compare with: `--baseline`, else the last run's in `--out` (kept as
/// `previous.json`).
fn previous(cli: &Cli) -> Result<Option<Summary>, String> {
    let path = match &cli.baseline {
        Some(path) => path.clone(),
        None => {
            let last = cli.out.join("summary.json");
            if !last.exists() {
                return Ok(None);
            }
            let kept = cli.out.join("previous.json");
            std::fs::rename(&last, &kept)
                .map_err(|e| format!("cannot keep {}: {e}", last.display()))?;
            kept
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match serde_json::from_str(&text) {
        Ok(summary) => Ok(Some(summary)),
        Err(e) => {
            eprintln!("not compared with {}: {e}", path.display());
            Ok(None)
        }
    }
}
