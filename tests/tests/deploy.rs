//! The deploy configuration: `wrangler.toml`'s environments are complete and its date is one
//! the bundled workerd supports, and the production bundle fits the Workers Free size limit.

use std::io::Write;
use std::process::Command;

use flate2::write::GzEncoder;
use flate2::Compression;
use rampart_tests::{repo_root, TempDir};
use toml::Table;

/// Workers Free's limit on a Worker's gzipped size.
const MAX_GZIPPED_BYTES: u64 = 3 * 1024 * 1024;

fn wrangler_toml() -> Table {
    let text = std::fs::read_to_string(repo_root().join("wrangler.toml")).expect("wrangler.toml");
    text.parse().expect("wrangler.toml parses")
}

fn table<'t>(parent: &'t Table, key: &str) -> &'t Table {
    parent
        .get(key)
        .and_then(|value| value.as_table())
        .unwrap_or_else(|| panic!("wrangler.toml has no [{key}] table"))
}

#[test]
fn every_environment_repeats_vars_routes_limits_and_observability() {
    let config = wrangler_toml();
    assert_eq!(
        config.get("send_metrics").and_then(|v| v.as_bool()),
        Some(false)
    );
    let top_vars = table(&config, "vars");
    assert!(table(&config, "limits").contains_key("cpu_ms"));
    assert!(table(&config, "observability").contains_key("enabled"));
    assert!(table(&config, "build").contains_key("command"));
    let envs = table(&config, "env");
    let mut names = vec![config
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or_default()];
    for env_name in ["staging", "production"] {
        let env = table(envs, env_name);
        let vars = table(env, "vars");
        for var in top_vars.keys() {
            assert!(vars.contains_key(var), "[env.{env_name}.vars] lacks {var}");
        }
        assert!(
            table(env, "limits").contains_key("cpu_ms"),
            "[env.{env_name}.limits]"
        );
        assert!(
            table(env, "observability").contains_key("enabled"),
            "[env.{env_name}.observability]"
        );
        let routes = env.get("routes").and_then(|v| v.as_array());
        assert!(
            routes.is_some_and(|r| !r.is_empty()),
            "[env.{env_name}] has no routes"
        );
        names.push(env.get("name").and_then(|v| v.as_str()).unwrap_or_default());
    }
    names.sort_unstable();
    names.dedup();
    assert_eq!(
        names.len(),
        3,
        "each environment deploys its own Worker: {names:?}"
    );
}

#[test]
fn the_compatibility_date_is_one_the_bundled_workerd_supports() {
    let date = wrangler_toml()
        .get("compatibility_date")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .expect("compatibility_date");
    let package = repo_root().join("node_modules/workerd/package.json");
    let Ok(text) = std::fs::read_to_string(&package) else {
        eprintln!(
            "SKIPPED: {} is missing (run scripts/test.sh)",
            package.display()
        );
        return;
    };
    // workerd versions are 1.YYYYMMDD.N: the date is the newest it supports.
    let version = text
        .split("\"version\"")
        .nth(1)
        .and_then(|rest| rest.split('"').nth(1))
        .expect("a version");
    let supported = version.split('.').nth(1).expect("1.YYYYMMDD.N");
    let supported = format!(
        "{}-{}-{}",
        &supported[..4],
        &supported[4..6],
        &supported[6..8]
    );
    assert!(
        date <= supported,
        "compatibility_date {date} is later than workerd's {supported}"
    );
    let terraform =
        std::fs::read_to_string(repo_root().join("terraform/variables.tf")).expect("variables.tf");
    assert!(
        terraform.contains(&format!("\"{date}\"")),
        "terraform's compatibility_date differs"
    );
}

#[test]
fn the_production_bundle_fits_workers_free() {
    let root = repo_root();
    let wrangler = root.join("node_modules/.bin/wrangler");
    assert!(
        wrangler.exists(),
        "{} is missing: run scripts/test.sh",
        wrangler.display()
    );
    let out = TempDir::new("bundle");
    let output = Command::new(&wrangler)
        .current_dir(&root)
        .args(["deploy", "--dry-run", "--env", "production", "--outdir"])
        .arg(&out.path)
        .env("WRANGLER_SEND_METRICS", "false")
        .output()
        .expect("run wrangler deploy --dry-run");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "wrangler deploy --dry-run failed:\n{log}"
    );
    let mut gzipped = 0;
    let mut raw = 0;
    for entry in std::fs::read_dir(&out.path).expect("outdir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".map") || name == "README.md" {
            continue;
        }
        let bytes = std::fs::read(&path).expect("bundle file");
        raw += bytes.len() as u64;
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&bytes).expect("gzip");
        gzipped += encoder.finish().expect("gzip").len() as u64;
    }
    eprintln!("bundle: {raw} bytes, {gzipped} gzipped (limit {MAX_GZIPPED_BYTES})");
    assert!(
        raw > 100_000,
        "the bundle holds the wasm module: {raw} bytes\n{log}"
    );
    assert!(
        gzipped <= MAX_GZIPPED_BYTES,
        "{gzipped} gzipped bytes exceed 3 MiB"
    );
    assert!(
        log.contains("Total Upload:"),
        "wrangler reported no size:\n{log}"
    );
}
