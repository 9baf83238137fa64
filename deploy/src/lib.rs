//! Deployment as code for Rampart: the Terraform files that come from the shared policy
//! (`terraform/*.generated.tf`), and offline checks of every Terraform file against the
//! Cloudflare provider v5 schema, since `terraform validate` needs the provider downloaded.
//!
//! `cargo run -p deploy -- terraform` rewrites the generated files; `… -- terraform --check`
//! fails when they differ from what the policy gives now (CI runs the same check as a test).

pub mod expression;
pub mod hcl_text;
pub mod provider;
pub mod rulesets;

use std::path::{Path, PathBuf};

use shared::policy::Policy;

use expression::UnsupportedPattern;

/// The header every generated file starts with.
const GENERATED_HEADER: &str =
    "Generated from shared/policy.toml by `cargo run -p deploy -- terraform`.
Do not edit: change the policy and run the command again (a test fails while they differ).";

/// One generated file: where it goes, relative to the repository root, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// For example `terraform/cache_rules.generated.tf`.
    pub path: PathBuf,
    /// The file's full text.
    pub text: String,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A policy pattern has no exact Rules-language form.
    #[error(transparent)]
    Pattern(#[from] UnsupportedPattern),
    /// HCL could not be printed.
    #[error("printing HCL: {0}")]
    Hcl(#[from] hcl::Error),
}

/// Every generated Terraform file for `policy`.
pub fn generated_files(policy: &Policy) -> Result<Vec<GeneratedFile>, GenerateError> {
    let bodies = [
        ("cache_rules", rulesets::cache_rules(policy)?),
        (
            "compression_rules",
            rulesets::body(rulesets::compression_rules(policy)?),
        ),
        ("rate_limits", rulesets::rate_limits(policy)?),
    ];
    bodies
        .into_iter()
        .map(|(name, body)| {
            Ok(GeneratedFile {
                path: Path::new("terraform").join(format!("{name}.generated.tf")),
                text: hcl_text::to_terraform(GENERATED_HEADER, &body)?,
            })
        })
        .collect()
}

/// The generated files whose committed copy under `root` is missing or different.
pub fn drifted(root: &Path, files: &[GeneratedFile]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|file| {
            std::fs::read_to_string(root.join(&file.path))
                .ok()
                .as_deref()
                != Some(&file.text)
        })
        .map(|file| file.path.clone())
        .collect()
}
