#!/usr/bin/env bash
# Builds the Worker into edge/build/ (worker/shim.mjs + index_bg.wasm). wrangler runs this as its
# [build] command; it works offline (Debian's wasm32 std) and online (rustup's target) alike, and
# returns at once when the build is newer than every source it depends on.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

output="$ROOT/edge/build/index_bg.wasm"
if [ -f "$output" ] && [ -z "$(find "$ROOT/edge/src" "$ROOT/edge/Cargo.toml" "$ROOT/shared/src" \
     "$ROOT/shared/policy.toml" "$ROOT/shared/Cargo.toml" "$ROOT/imaging/src" "$ROOT/imaging/Cargo.toml" \
     "$ROOT/imaging/build.rs" "$ROOT/imaging/wasm32" \
     "$ROOT/Cargo.lock" "$ROOT/Cargo.toml" -newer "$output" -print -quit)" ]; then
  exit 0
fi
ensure_edge_tools
wasm_env
log "building the edge Worker (wasm32, $WASM_ROUTE route)"
# The build is dated from its start, so that a source saved while it runs is newer than it and
# the next run builds again.
started=$(mktemp)
trap 'rm -f "$started"' EXIT
cd "$ROOT/edge"
worker-build --release
touch -r "$started" "$output"
