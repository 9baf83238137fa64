//! `rampart-chaos`: the chaos campaign (see `rampart_load::chaos`). Starts its own Redis,
//! PostgreSQL, three origins and the edge on loopback, injects every fault under steady
//! traffic, prints one row per fault and writes the table to `<out>/report.md`. Exits 1 when a
//! row breaks what Rampart promises for its fault, 2 when the system could not be run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rampart_load::chaos::redis::Shape as RedisShape;
use rampart_load::chaos::{self, faults::Fault, report, services::Programs, Profile};

#[derive(Debug, Parser)]
#[command(about = "Injects faults into a running Rampart under steady traffic")]
struct Args {
    /// `short` (every fault at a third of its length; CI runs it) or `full`.
    #[arg(long, default_value = "short")]
    profile: String,
    /// The origin binary.
    #[arg(long, default_value = "target/release/origin")]
    origin: PathBuf,
    /// The repository root (wrangler.toml, node_modules/.bin/wrangler).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Where the report and the logs go.
    #[arg(long, default_value = "target/chaos")]
    out: PathBuf,
    /// Only the faults whose names contain one of these words (all when none is given).
    #[arg(long)]
    only: Vec<String>,
    /// `node` (one Redis) or `cluster` (three primaries with a replica each; its fault kills
    /// a primary).
    #[arg(long, default_value = "node")]
    redis: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let profile = match args.profile.as_str() {
        "short" => Profile::SHORT,
        "full" => Profile::FULL,
        other => {
            eprintln!("rampart-chaos: --profile is short or full, not {other:?}");
            return ExitCode::from(2);
        }
    };
    let shape = match args.redis.as_str() {
        "node" => RedisShape::Node,
        "cluster" => RedisShape::Cluster,
        other => {
            eprintln!("rampart-chaos: --redis is node or cluster, not {other:?}");
            return ExitCode::from(2);
        }
    };
    let only: Vec<Fault> = Fault::ALL
        .into_iter()
        .filter(|fault| {
            args.only
                .iter()
                .any(|word| fault.name().contains(word.as_str()))
        })
        .collect();
    let out = args.out.join(&args.profile);
    let work = out.join("logs");
    let _ = std::fs::remove_dir_all(&work);
    if let Err(error) = std::fs::create_dir_all(&work) {
        eprintln!("rampart-chaos: {}: {error}", work.display());
        return ExitCode::from(2);
    }
    let repo = args.repo.canonicalize().unwrap_or(args.repo);
    let programs = Programs {
        origin: args.origin,
        wrangler: repo.join("node_modules/.bin/wrangler"),
        repo,
    };
    let rows = match chaos::run(&programs, &work, profile, &only, shape).await {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("rampart-chaos: {error} (logs in {})", work.display());
            return ExitCode::from(2);
        }
    };
    let table = report::markdown(&rows, &args.profile);
    println!("{table}");
    let path = out.join("report.md");
    if let Err(error) = std::fs::write(&path, &table) {
        eprintln!("rampart-chaos: {}: {error}", path.display());
        return ExitCode::from(2);
    }
    eprintln!("rampart-chaos: report in {}", path.display());
    if rows.iter().any(|row| !row.broken.is_empty()) {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
