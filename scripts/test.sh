#!/usr/bin/env bash
# Runs Rampart's whole test suite on a fresh Debian machine or a warm one: installs what is
# missing (Debian packages, services, cargo tools, npm packages), checks the Prometheus alert
# rules, builds the Worker for wasm32, then runs every test, including the end-to-end tests
# through workerd, the load tests' smoke run with its budgets and the chaos campaign's short
# run, and builds the fuzz targets.
# Safe to re-run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

log "checking the alert rules, their tests, the scrape config and the runbook"
bash scripts/check-ops.sh

ensure_redis
ensure_postgres
ensure_prometheus
ensure_edge_tools
ensure_chromium
# nginx: the load balancer in front of several origins, and the load tests' peer; python3:
# the non-Rust upstream the shield's tests proxy to.
apt_install nginx-light python3
cargo_tool cargo-fuzz "$CARGO_FUZZ_VERSION" cargo-fuzz

log "building the edge Worker (wasm32)"
bash scripts/build-edge.sh

log "building the shared crate for wasm32-unknown-unknown"
(wasm_env && cargo build --quiet -p shared --release --target wasm32-unknown-unknown)

log "running the tests: shared, origin, deploy, end-to-end through workerd"
cargo test --workspace --exclude edge --all-targets

log "running the edge's own unit tests (natively)"
cargo test -p edge --lib

log "load tests with budgets: the smoke profile (short, at a quarter of the rates)"
bash scripts/load.sh smoke

log "chaos campaign: the short profile (every fault a third as long)"
bash scripts/chaos.sh short

log "building the fuzz targets"
(cd shared && RUSTC_BOOTSTRAP=1 cargo fuzz build --dev >/dev/null)

log "all tests passed"
