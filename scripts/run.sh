#!/usr/bin/env bash
# Runs Rampart locally: the origin (embedded defaults) and the edge Worker in workerd in front of
# it. Installs what is missing first; Ctrl-C stops both. Safe to re-run.
#
#   ORIGIN_ADDR  where the origin listens     (default 127.0.0.1:8080)
#   EDGE_PORT    where the edge listens       (default 8787)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ORIGIN_ADDR=${ORIGIN_ADDR:-127.0.0.1:8080}
EDGE_PORT=${EDGE_PORT:-8787}

ensure_edge_tools
log "building the origin (release)"
cargo build --quiet --release -p origin
bash scripts/build-edge.sh

pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -INT -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

log "starting the origin on http://$ORIGIN_ADDR"
setsid env ORIGIN_ADDR="$ORIGIN_ADDR" "$ROOT/target/release/origin" &
pids+=($!)
# The first start creates data/rampart.db and fills it with demo data (a few seconds).
for _ in $(seq 600); do curl -sf "http://$ORIGIN_ADDR/health" >/dev/null && break; sleep 0.1; done
curl -sf "http://$ORIGIN_ADDR/health" >/dev/null || die "the origin did not start"

log "starting the edge (workerd) on http://127.0.0.1:$EDGE_PORT"
setsid "$ROOT/node_modules/.bin/wrangler" dev --ip 127.0.0.1 --port "$EDGE_PORT" \
  --var "ORIGIN_URL:http://$ORIGIN_ADDR" --show-interactive-dev-session=false &
pids+=($!)
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$EDGE_PORT/health" >/dev/null && break; sleep 0.5; done
curl -sf "http://127.0.0.1:$EDGE_PORT/health" >/dev/null || die "the edge did not start"

cat <<MSG

  Rampart is running.
    Open the site through the edge:  http://127.0.0.1:$EDGE_PORT/
    The origin directly:             http://$ORIGIN_ADDR/
    Origin health and metrics:       http://$ORIGIN_ADDR/health   http://$ORIGIN_ADDR/metrics
  Press Ctrl-C to stop.

MSG
wait -n "${pids[@]}"
