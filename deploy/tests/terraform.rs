//! The committed Terraform: no drift from the policy, valid HCL whose every resource and
//! argument the provider v5 documents, rule expressions within Cloudflare's length limit, and
//! `terraform fmt` clean where terraform is installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use deploy::provider::{check, ProviderSchema};
use hcl::Body;
use shared::policy::Policy;

/// Cloudflare's limit on one rule expression.
const MAX_EXPRESSION_CHARS: usize = 4096;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn terraform_files() -> Vec<(String, String)> {
    let dir = root().join("terraform");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("terraform/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "tf"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable file");
            (
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                text,
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn committed_files_match_what_the_policy_generates() {
    let files = deploy::generated_files(&Policy::default()).expect("the policy translates");
    let drifted = deploy::drifted(&root(), &files);
    assert!(
        drifted.is_empty(),
        "{drifted:?} differ from shared/policy.toml: run `cargo run -p deploy -- terraform` and commit"
    );
}

#[test]
fn every_file_parses_and_uses_only_documented_provider_arguments() {
    let schema = ProviderSchema::committed().expect("the schema parses");
    let parsed: Vec<(String, Body)> = terraform_files()
        .into_iter()
        .map(|(name, text)| {
            let body = hcl::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, body)
        })
        .collect();
    assert!(
        parsed.len() >= 7,
        "the module's files: {:?}",
        parsed.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let problems = check(&schema, &parsed);
    assert!(problems.is_empty(), "{problems:#?}");
    let types: Vec<String> = parsed
        .iter()
        .flat_map(|(_, body)| body.blocks().filter(|b| b.identifier() == "resource"))
        .filter_map(|b| b.labels().first().map(|l| l.as_str().to_owned()))
        .collect();
    for expected in [
        "cloudflare_ruleset",
        "cloudflare_zone_setting",
        "cloudflare_tiered_cache",
        "cloudflare_worker",
        "cloudflare_worker_version",
        "cloudflare_workers_deployment",
        "cloudflare_workers_route",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "no {expected} resource"
        );
    }
}

#[test]
fn rule_expressions_fit_cloudflares_limit() {
    for (name, text) in terraform_files() {
        for line in text
            .lines()
            .filter(|l| l.trim_start().starts_with("expression"))
        {
            assert!(
                line.len() < MAX_EXPRESSION_CHARS,
                "{name}: an expression of {} chars",
                line.len()
            );
        }
    }
}

#[test]
fn terraform_fmt_accepts_every_file() {
    let output = match Command::new("terraform")
        .args(["fmt", "-check", "-recursive", "-diff"])
        .arg(root().join("terraform"))
        .output()
    {
        Ok(output) => output,
        Err(_) => {
            eprintln!("SKIPPED: terraform is not installed; `terraform fmt -check` not run");
            return;
        }
    };
    assert!(
        output.status.success(),
        "terraform fmt -check:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
