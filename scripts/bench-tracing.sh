#!/usr/bin/env bash
# Measures what tracing costs the origin's hottest path: a cached GET /api/tasks/{id}, served
# by the origin binary with every request traced (OTEL_EXPORTER_OTLP_ENDPOINT set, the SDK's
# default sampler: every span without a parent is sampled, a parent's decision is followed) and
# by the same binary without it, under the same wrk load, in the same run. The traced origin
# exports to a local sink (origin/examples/webhook_sink.rs, answering 200 at once), so the
# exporter's batching and HTTP calls are part of the cost. The requests carry a sampled
# `traceparent`, as requests from the edge do.
#
# Two set-ups, each printed: unpinned (the origin, the sink and wrk free to use every core)
# and pinned (the origin on core 0, wrk and the sink on core 1). Each peer runs once per round,
# in reverse order in even rounds; each figure is the median of the per-round ratios (traced /
# untraced, requests per second; the goal is at least 0.90).
# Then, as a figure the machine's load does not move, it counts the CPU instructions per cached
# hit of each origin under valgrind's callgrind (counters zeroed after a warm-up, then
# BENCH_COUNTED_HITS hits on one connection, the export thread and the sink's answers included).
# Installs what is missing (wrk, valgrind). Safe to re-run.
#
#   BENCH_SECONDS      wrk duration per peer and round  (default 5)
#   BENCH_ROUNDS       rounds per set-up                 (default 6)
#   BENCH_CONNECTIONS  wrk connections                   (default 32)
#   BENCH_COUNTED_HITS hits counted under callgrind      (default 2000; 0 skips the count)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

SECONDS_PER_RUN=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-6}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
COUNTED_HITS=${BENCH_COUNTED_HITS:-2000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$CARGO_TARGET_DIR/release"
TRACEPARENT="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

command -v wrk >/dev/null || apt_install wrk
[ "$COUNTED_HITS" -eq 0 ] || command -v valgrind >/dev/null || apt_install valgrind
command -v curl >/dev/null || apt_install curl
log "building the origin and the sink (release)"
cargo build --quiet --release -p origin --bin origin --example webhook_sink

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# start <name> <cpu list> [VAR=value...]: the origin on a port of its own, SQLite, no Redis.
declare -A PORT PID
start() {
  local name=$1 cpus=$2
  shift 2
  local port
  port=$(free_port)
  env ORIGIN_ADDR="127.0.0.1:$port" DATABASE_URL="sqlite:$WORK/$name.db" DEMO_DATA=small \
    CACHE_WARM_PATHS="" RATE_LIMIT_ENABLED=false RUST_LOG=warn OTEL_BSP_SCHEDULE_DELAY=200 "$@" \
    taskset -c "$cpus" "$BIN/origin" >"$WORK/$name.log" 2>&1 &
  PID[$name]=$!
  PIDS+=($!)
  PORT[$name]=$port
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/health/live" >/dev/null && break; sleep 0.05; done
  curl -sf "http://127.0.0.1:$port/health/live" >/dev/null || die "$name did not start: $(cat "$WORK/$name.log")"
  for _ in 1 2 3; do curl -sf -o /dev/null "http://127.0.0.1:$port/api/tasks/1"; done
}

stop() {
  kill "${PID[$1]}" 2>/dev/null || true
  wait "${PID[$1]}" 2>/dev/null || true
}

# rate <name> <cpu list>: wrk's requests per second against <name>.
rate() {
  taskset -c "$2" wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" -H "traceparent: $TRACEPARENT" \
    "http://127.0.0.1:${PORT[$1]}/api/tasks/1" | awk '/Requests\/sec/ {print $2}'
}

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# setup <label> <origin cpus> <wrk and sink cpus>
setup() {
  local label=$1 server=$2 load=$3 sink_port
  sink_port=$(free_port)
  taskset -c "$load" "$BIN/examples/webhook_sink" "127.0.0.1:$sink_port" >"$WORK/sink.log" 2>&1 &
  local sink=$!
  PIDS+=($sink)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$sink_port/count" >/dev/null && break; sleep 0.05; done
  start plain "$server"
  start traced "$server" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port"
  : >"$WORK/ratios"
  local round plain traced
  for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
      plain=$(rate plain "$load"); traced=$(rate traced "$load")
    else
      traced=$(rate traced "$load"); plain=$(rate plain "$load")
    fi
    echo "  $label round $round: untraced $plain req/s, traced $traced req/s" >&2
    awk -v t="$traced" -v p="$plain" 'BEGIN {printf "%.4f\n", t / p}' >>"$WORK/ratios"
  done
  local exported
  exported=$(curl -sf "http://127.0.0.1:$sink_port/count")
  [ "$exported" -gt 0 ] || die "the traced origin exported nothing"
  printf '%s: traced / untraced cached hits %s (median of %s rounds; %s export calls received)\n' \
    "$label" "$(median <"$WORK/ratios")" "$ROUNDS" "$exported"
  stop plain
  stop traced
  kill "$sink" 2>/dev/null || true
}

log "wrk -t1 -c$CONNECTIONS, ${SECONDS_PER_RUN}s per peer, $ROUNDS rounds per set-up"
last=$(($(nproc) - 1))
setup unpinned "0-$last" "0-$last"
if [ "$(nproc)" -ge 2 ]; then
  setup pinned 0 1
fi

# hits <port> <count>: cached hits with the traceparent, all on one connection (curl reuses it).
hits() {
  local args=()
  for _ in $(seq "$2"); do args+=("http://127.0.0.1:$1/api/tasks/1" -o /dev/null); done
  curl -sf -H "traceparent: $TRACEPARENT" "${args[@]}"
}

# count <name> [VAR=value...]: instructions per cached hit of the origin under callgrind.
count() {
  local name=$1 port pid total
  shift
  port=$(free_port)
  rm -f "$WORK"/callgrind.out.*
  env ORIGIN_ADDR="127.0.0.1:$port" DATABASE_URL="sqlite:$WORK/count-$name.db" DEMO_DATA=small \
    CACHE_WARM_PATHS="" RATE_LIMIT_ENABLED=false RUST_LOG=warn OTEL_BSP_SCHEDULE_DELAY=200 "$@" \
    valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out.%p" "$BIN/origin" \
    >"$WORK/count-$name.log" 2>&1 &
  pid=$!
  PIDS+=($pid)
  for _ in $(seq 1200); do curl -sf "http://127.0.0.1:$port/health/live" >/dev/null && break; sleep 0.1; done
  hits "$port" 200 || die "$name did not start under callgrind: $(tail -5 "$WORK/count-$name.log")"
  callgrind_control -z "$pid" >/dev/null 2>&1
  hits "$port" "$COUNTED_HITS"
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  total=$(grep -h '^summary:' "$WORK"/callgrind.out.*.* 2>/dev/null | awk '{s += $2} END {print s + 0}')
  [ "$total" -gt 0 ] || die "callgrind wrote no counts for $name"
  echo $((total / COUNTED_HITS))
}

if [ "$COUNTED_HITS" -gt 0 ]; then
  log "counting instructions per cached hit under callgrind ($COUNTED_HITS hits each)"
  sink_port=$(free_port)
  "$BIN/examples/webhook_sink" "127.0.0.1:$sink_port" >"$WORK/sink.log" 2>&1 &
  PIDS+=($!)
  untraced=$(count plain)
  traced=$(count traced OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port")
  printf 'instructions per cached hit: untraced %s, traced %s (+%s, %s×)\n' "$untraced" "$traced" \
    $((traced - untraced)) "$(awk -v t="$traced" -v u="$untraced" 'BEGIN {printf "%.3f", t / u}')"
fi
