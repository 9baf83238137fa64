//! `rampart-deploy terraform [--check]`: writes (or checks) the Terraform files generated from
//! the shared policy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use shared::policy::Policy;

const USAGE: &str = "usage: rampart-deploy terraform [--check]
  terraform          rewrite terraform/*.generated.tf from shared/policy.toml
  terraform --check  exit 1 when the committed files differ from the policy";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["terraform"] => false,
        ["terraform", "--check"] => true,
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&repo_root(), check) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("rampart-deploy: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(root: &Path, check: bool) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let files = deploy::generated_files(&Policy::default())?;
    if check {
        let drifted = deploy::drifted(root, &files);
        for path in &drifted {
            eprintln!(
                "{} differs from the policy; run `cargo run -p deploy -- terraform`",
                path.display()
            );
        }
        return Ok(if drifted.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    for file in files {
        std::fs::write(root.join(&file.path), &file.text)?;
        println!("wrote {}", file.path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}
