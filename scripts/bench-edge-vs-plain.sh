#!/usr/bin/env bash
# Measures a cached hit at the edge: Rampart's Worker against the plain caching Worker of
# scripts/peers/plain-worker (`caches.default.match` and return), in the same run, with the
# load tool and its budgets (load/edge-hits.toml). Both run in workerd under `wrangler dev` in
# front of the same origin (a small Python server: a 1 KB JSON answer and a 70 KB HTML page,
# cacheable for an hour), and both are reached on the Worker's own socket, so the figure is the
# Worker's and not wrangler's local proxy's. Prints requests/s, latency and workerd's CPU time
# per hit for each, their ratios, and the time from starting `wrangler dev` to the first answer
# (cold start, wrangler's own start included for both).
#
#   scripts/bench-edge-vs-plain.sh [smoke|full] [rampart-load options…]
#
# full (the default here) runs six rounds of 10 s per Worker and kind of hit, alternating which
# goes first. The report goes to target/load/edge-hits-<profile>/. Safe to re-run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

PROFILE=${1:-full}
shift || true
COLD_STARTS=${BENCH_COLD_STARTS:-3}

ensure_edge_tools
log "building the load tool (release) and the Worker"
cargo build --quiet --release -p rampart-load
bash scripts/build-edge.sh

scratch_space

ORIGIN_PORT=$(free_port)
setsid python3 "$ROOT/scripts/peers/cacheable-origin.py" "$ORIGIN_PORT" &
PIDS+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$ORIGIN_PORT/api/small" >/dev/null && break; sleep 0.1; done

# start_worker <name> <dir> <port>: wrangler dev in its own process group; prints the seconds
# from the start to the first answer through wrangler's port.
start_worker() {
  local started
  started=$(date +%s.%N)
  (cd "$2" && exec setsid env WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false \
    "$ROOT/node_modules/.bin/wrangler" dev --ip 127.0.0.1 --port "$3" --inspector-port "$(free_port)" \
    --var "ORIGIN_URL:http://127.0.0.1:$ORIGIN_PORT" --persist-to "$WORK/state-$1" \
    --show-interactive-dev-session=false --log-level warn >"$WORK/$1.log" 2>&1) &
  PIDS+=($!)
  echo $! >"$WORK/$1.pgid"
  for _ in $(seq 1200); do
    if curl -sf -o /dev/null "http://127.0.0.1:$3/api/small"; then
      awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}'
      return
    fi
    sleep 0.05
  done
  die "the $1 Worker did not start: $(tail -20 "$WORK/$1.log")"
}

stop_worker() { # name
  local pgid
  pgid=$(cat "$WORK/$1.pgid")
  kill -- -"$pgid" 2>/dev/null || true
  while kill -0 -- -"$pgid" 2>/dev/null; do sleep 0.1; done
}

# The Worker's own socket: wrangler runs two workerd processes, its local proxy (listening on
# the port it was given) and the Worker's runtime (`entry=127.0.0.1:0`); of the runtime's
# sockets, the one that answers a GET like the proxy does.
direct_url() { # name
  local pgid pid port
  pgid=$(cat "$WORK/$1.pgid")
  for pid in $(pgrep -g "$pgid" -x workerd); do
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'entry=127.0.0.1:0 ' || continue
    for port in $(ss -ltnpH | grep "pid=$pid," | awk '{print $4}' | sed 's/.*://'); do
      if [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/small")" = 200 ]; then
        echo "$pid http://127.0.0.1:$port"
        return
      fi
    done
  done
  die "no socket of the $1 Worker's workerd answers"
}

RAMPART_PORT=$(free_port)
PLAIN_PORT=$(free_port)
log "cold starts: $COLD_STARTS of each Worker, from starting wrangler dev to the first answer"
: >"$WORK/cold"
for round in $(seq "$COLD_STARTS"); do
  echo "rampart $(start_worker rampart "$ROOT" "$RAMPART_PORT")" >>"$WORK/cold"
  stop_worker rampart
  echo "plain $(start_worker plain "$ROOT/scripts/peers/plain-worker" "$PLAIN_PORT")" >>"$WORK/cold"
  stop_worker plain
done
COLD=$(awk '{s[$1] = s[$1] " " $2} END {print "Rampart:" s["rampart"] " s; plain:" s["plain"] " s"}' "$WORK/cold")
COLD_RATIO=$(sort -k1,1 -k2n "$WORK/cold" | awk '{v[$1][++n[$1]] = $2}
  END {m = int((n["rampart"] + 1) / 2); printf "%.2f", v["rampart"][m] / v["plain"][m]}')

log "starting both Workers"
start_worker rampart "$ROOT" "$RAMPART_PORT" >/dev/null
start_worker plain "$ROOT/scripts/peers/plain-worker" "$PLAIN_PORT" >/dev/null
read -r RAMPART_PID RAMPART_URL < <(direct_url rampart)
read -r PLAIN_PID PLAIN_URL < <(direct_url plain)
for url in "$RAMPART_URL" "$PLAIN_URL"; do
  for path in /api/small /page.html; do curl -sf -o /dev/null "$url$path"; done
done
curl -s -D - -o /dev/null "$RAMPART_URL/api/small" | grep -qi '^cache-status: .*hit' \
  || die "Rampart's Worker does not answer /api/small from its cache"

log "measuring the $PROFILE profile of load/edge-hits.toml"
status=0
"$ROOT/target/release/rampart-load" --plan load/edge-hits.toml --profile "$PROFILE" \
  --out "$ROOT/target/load/edge-hits-$PROFILE" \
  --target "rampart=$RAMPART_URL" --target "plain=$PLAIN_URL" \
  --cpu "rampart=$RAMPART_PID" --cpu "plain=$PLAIN_PID" "$@" || status=$?
echo "cold start (wrangler dev started → first answer): $COLD; median ratio ${COLD_RATIO}x"
exit "$status"
