//! The origin binary refuses bad configuration before it listens: exit status 2 and one line
//! naming the variable, the value and what the variable accepts.

use std::process::Command;

/// Runs the binary with `env` (and nothing that could make it start serving) to its exit.
fn run_with(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_origin"))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run the origin binary");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_value_out_of_range_exits_with_status_2_and_its_range() {
    let (code, stderr) = run_with(&[("DATABASE_POOL_SIZE", "0")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "origin: invalid configuration: DATABASE_POOL_SIZE=0: must be between 1 and 1000"
    );
}

#[test]
fn a_value_that_used_to_be_clamped_is_refused() {
    let (code, stderr) = run_with(&[("RETRY_BUDGET_PERCENT", "250")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("RETRY_BUDGET_PERCENT=250: must be between 0 and 100"),
        "{stderr}"
    );
}

#[test]
fn the_former_outbound_timeout_name_is_checked_too() {
    let (code, stderr) = run_with(&[("CIRCUIT_BREAKER_TIMEOUT", "soon")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr
            .contains("CIRCUIT_BREAKER_TIMEOUT=soon: must be a whole number between 1 and 3600000"),
        "{stderr}"
    );
}
