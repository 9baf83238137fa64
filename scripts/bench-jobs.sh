#!/usr/bin/env bash
# Measures the job system's figures, each against a peer in the same run, on one Redis:
#   1. queue throughput: no-op jobs enqueued in batches and run by one instance's workers
#      (Jobs) against a bare Redis Streams loop doing the same with the same concurrency (XADD
#      pipelined in the same batches, XREADGROUP, XACK + XDEL): jobs/s, the median of the
#      per-round ratios (`cargo bench -p origin --bench jobs`; its header says how each peer runs);
#   2. the write path: p50 and p99 of PATCH /api/tasks/{id} on the origin binary storing a
#      webhook delivery and an edge purge in the write's transaction (its outbox), queued in
#      Redis once it commits (WEBHOOK_URL and EDGE_PURGE_URL
#      pointing at a local sink, origin/examples/webhook_sink.rs, which answers 200 at once),
#      against the same binary with neither set, which enqueues nothing; both on the same Redis,
#      each with a SQLite file of its own, sent the same writes (origin/examples/write_load.rs:
#      the next write when the last is answered, on BENCH_WRITE_CONNECTIONS connections).
#      The origin with webhooks also runs its workers, which deliver to the sink as it goes;
#      before the next peer runs, its queue is drained. A third origin enqueues the same jobs
#      with its workers of those queues off (JOBS_CONCURRENCY), as when other instances run
#      them: it tells what the enqueues cost from what running the deliveries beside costs.
# Installs what is missing (Redis, when nothing answers at REDIS_URL). Safe to re-run.
#
# Nothing is pinned: the origins, Redis, the sink and the load share the machine's cores. Every
# peer runs once per round, in reverse order in even rounds. Each ratio is the median of the
# per-round ratios; each origin's p99 is also taken over its writes pooled from all rounds.
#
#   BENCH_ROUNDS             rounds of each figure                       (default 5)
#   BENCH_JOBS               jobs per run, figure 1                      (default 20000)
#   BENCH_BATCH              jobs per enqueue, figure 1                  (default 100)
#   BENCH_WRITES             writes per origin and round, figure 2       (default 2000)
#   BENCH_WRITE_CONNECTIONS  connections sending them                    (default 1)
#   REDIS_URL                                                (default redis://127.0.0.1:6379)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ROUNDS=${BENCH_ROUNDS:-5}
JOBS=${BENCH_JOBS:-20000}
BATCH=${BENCH_BATCH:-100}
WRITES=${BENCH_WRITES:-2000}
CONNECTIONS=${BENCH_WRITE_CONNECTIONS:-1}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$CARGO_TARGET_DIR/release"
WARM_WRITES=200

if [ "$REDIS_URL" = redis://127.0.0.1:6379 ]; then ensure_redis; fi
command -v redis-cli >/dev/null || apt_install redis-tools
command -v curl >/dev/null || apt_install curl
redis-cli -u "$REDIS_URL" ping | grep -q PONG || die "Redis does not answer at $REDIS_URL"

log "building the origin, the webhook sink and the write load (release)"
cargo build --quiet --release -p origin --bin origin --example webhook_sink --example write_load

WORK=$(mktemp -d)
# Every Redis key of this run, the benchmark's and both origins', is under this prefix.
PREFIX="bench-jobs-$$-$RANDOM:"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  redis-cli -u "$REDIS_URL" --scan --pattern "$PREFIX*" \
    | xargs -r -d '\n' -n 500 redis-cli -u "$REDIS_URL" unlink >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

log "figure 1: queue throughput (cargo bench -p origin --bench jobs)"
BENCH_ROUNDS=$ROUNDS BENCH_JOBS=$JOBS BENCH_BATCH=$BATCH BENCH_KEY_PREFIX="${PREFIX}queue:" REDIS_URL=$REDIS_URL \
  cargo bench --quiet -p origin --bench jobs | tee "$WORK/queue.txt"

log "figure 2: the write path with and without enqueues"
SINK_PORT=$(free_port)
"$BIN/examples/webhook_sink" "127.0.0.1:$SINK_PORT" >"$WORK/sink.log" 2>&1 &
PIDS+=($!)
SINK="http://127.0.0.1:$SINK_PORT"
for _ in $(seq 100); do curl -sf "$SINK/count" >/dev/null && break; sleep 0.1; done
curl -sf "$SINK/count" >/dev/null || die "the webhook sink did not start: $(cat "$WORK/sink.log")"

declare -A PORT
# start_origin <name> [VAR=value...]: the origin binary on a port of its own, with its own
# SQLite file and Redis prefix; jobs, webhooks and purges off unless the variables say so.
start_origin() {
  local name=$1 port
  shift
  port=$(free_port)
  PORT[$name]=$port
  env -u WEBHOOK_URL -u WEBHOOK_SECRET -u EDGE_PURGE_URL -u EDGE_PURGE_TOKEN -u CLOUDFLARE_ZONE_ID \
    REDIS_URL="$REDIS_URL" REDIS_KEY_PREFIX="${PREFIX}$name:" DATABASE_URL="sqlite:$WORK/$name.db" \
    DEMO_DATA=small RATE_LIMIT_ENABLED=false CACHE_WARM_PATHS= RUST_LOG=warn ORIGIN_ADDR="127.0.0.1:$port" "$@" \
    "$BIN/origin" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
}
HOOKS=(WEBHOOK_URL="$SINK/webhook" WEBHOOK_SECRET=x EDGE_PURGE_URL="$SINK/__rampart/purge")
start_origin with "${HOOKS[@]}"
start_origin without
# The third peer tells the enqueue from the deliveries: the same enqueues, with this instance's
# workers of those queues off (as when other instances run them); its jobs wait in Redis.
start_origin queued "${HOOKS[@]}" JOBS_CONCURRENCY=notifications=0,edge-purge=0
PEERS=(with without queued)
for name in "${PEERS[@]}"; do
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:${PORT[$name]}/health" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:${PORT[$name]}/health" >/dev/null || die "the origin ($name) did not start: $(cat "$WORK/$name.log")"
done

# Deliveries the sink should have had by now: a webhook and a purge per write to `with`.
EXPECTED=0
# drain: waits (up to 30 s) until the sink has had every delivery of the writes so far, so
# that no peer runs beside `with`'s deliveries.
drain() {
  local received
  for _ in $(seq 300); do
    received=$(curl -sf "$SINK/count" || echo 0)
    [ "$received" -ge "$EXPECTED" ] && return 0
    sleep 0.1
  done
  die "the sink had $received deliveries, not $EXPECTED: $(tail -n 5 "$WORK/with.log")"
}
# load <name> <writes> <out> <tag>: the writes (latencies in <out>.lat, figures in <out>.txt),
# then a drain when they enqueued deliveries.
load() {
  local name=$1 writes=$2 out=$3 tag=$4
  "$BIN/examples/write_load" "http://127.0.0.1:${PORT[$name]}" "$writes" "$CONNECTIONS" "$out.lat" "$tag" >"$out.txt"
  read -r _ requests _ errors _ <"$out.txt"
  if [ "$requests" -ne "$writes" ] || [ "$errors" -ne 0 ]; then die "$name: $(cat "$out.txt")"; fi
  if [ "$name" = with ]; then
    EXPECTED=$((EXPECTED + 2 * writes))
    drain
  fi
}
mkdir -p "$WORK/runs"
for name in "${PEERS[@]}"; do load "$name" "$WARM_WRITES" "$WORK/warm-$name" warm; done

log "$ROUNDS rounds of $WRITES writes to each origin on $CONNECTIONS connection(s) (order reversed in even rounds)"
for round in $(seq "$ROUNDS"); do
  order="with without queued"
  [ $((round % 2)) -eq 0 ] && order="queued without with"
  for name in $order; do load "$name" "$WRITES" "$WORK/runs/$name.$round" "round$round"; done
  # One line per round: p50 p99 seconds of with, of without, of queued.
  for name in "${PEERS[@]}"; do
    read -r _ _ _ _ _ seconds _ p50 _ p99 <"$WORK/runs/$name.$round.txt"
    printf '%s %s %s ' "$p50" "$p99" "$seconds"
  done >>"$WORK/rounds.txt"
  echo >>"$WORK/rounds.txt"
  tail -n 1 "$WORK/rounds.txt" | awk -v r="$round" -v n="$WRITES" '{
    printf "  round %d: with enqueues p50 %.3f ms p99 %.3f ms (%.0f writes/s); without p50 %.3f ms p99 %.3f ms (%.0f writes/s); p99 ratio %.3f\n", r, $1, $2, n / $3, $4, $5, n / $6, $2 / $5
    printf "           enqueues, workers off: p50 %.3f ms p99 %.3f ms (%.0f writes/s); p99 ratio to without %.3f\n", $7, $8, n / $9, $8 / $5 }' \
    | tee -a "$WORK/rounds-printed.txt"
done

# Jobs each origin enqueued per write, from its metrics (warm-up and rounds).
enqueued() {
  curl -sf "http://127.0.0.1:${PORT[$1]}/metrics" \
    | awk '/^queue_jobs_total\{/ && /outcome="enqueued"/ {sum += $NF} END {printf "%.2f", sum / '"$((WARM_WRITES + ROUNDS * WRITES))"'}'
}

sort_median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ratio() { awk "{printf \"%.4f\\n\", $1}" "$WORK/rounds.txt" | sort_median; }
# pooled <fraction> <name>: the latency (ms) of that rank among the origin's writes of every round.
pooled() {
  cat "$WORK"/runs/"$2".*.lat | sort -n \
    | awk -v f="$1" '{v[NR] = $1} END {i = int((NR - 1) * f + 0.5) + 1; printf "%.3f", v[i] / 1000}'
}
QUEUE_LINE=$(grep '^median:' "$WORK/queue.txt" || true)
QUEUE_RATIO=$(sed -n 's/.*Jobs \/ bare loop \([0-9.]*\).*/\1/p' <<<"$QUEUE_LINE")

printf "\nFigures (loopback, one Redis, unpinned: %d cores shared by Redis, origins, sink and load; %d rounds)\n" "$(nproc)" "$ROUNDS"
echo "  1. queue throughput, $JOBS no-op jobs per run in batches of $BATCH, concurrency 4:"
grep '^  round' "$WORK/queue.txt" | sed 's/^/  /'
echo "     $QUEUE_LINE"
echo "  2. PATCH /api/tasks/{id}, $WRITES writes per origin and round on $CONNECTIONS connection(s); jobs enqueued per"
echo "     write: $(enqueued with) with webhooks and edge purges, $(enqueued without) without, $(enqueued queued) with the workers off"
sed 's/^/  /' "$WORK/rounds-printed.txt"
awk -v p99="$(ratio '$2 / $5')" -v p50="$(ratio '$1 / $4')" -v q99="$(ratio '$8 / $5')" -v q50="$(ratio '$7 / $4')" \
    -v w99="$(pooled 0.99 with)" -v o99="$(pooled 0.99 without)" -v x99="$(pooled 0.99 queued)" \
    -v w50="$(pooled 0.5 with)" -v o50="$(pooled 0.5 without)" -v x50="$(pooled 0.5 queued)" 'BEGIN {
  printf "     median of per-round ratios, with / without enqueues: p99 %.3fx (target <= 1.1x), p50 %.3fx\n", p99, p50
  printf "       enqueues with the workers off / without:            p99 %.3fx, p50 %.3fx\n", q99, q50
  printf "     pooled over all rounds: with p50 %.3f ms p99 %.3f ms; without p50 %.3f ms p99 %.3f ms (p99 ratio %.3fx);\n", w50, w99, o50, o99, w99 / o99
  printf "       workers off p50 %.3f ms p99 %.3f ms (p99 ratio to without %.3fx)\n", x50, x99, x99 / o99
}'
printf "  summary: Jobs / bare Streams loop %s (target >= 0.5); write p99 with / without enqueues %.3f (target <= 1.1)\n" \
  "${QUEUE_RATIO:-?}" "$(ratio '$2 / $5')"
echo "  reproduce: BENCH_ROUNDS=$ROUNDS BENCH_JOBS=$JOBS BENCH_BATCH=$BATCH BENCH_WRITES=$WRITES BENCH_WRITE_CONNECTIONS=$CONNECTIONS REDIS_URL=$REDIS_URL scripts/bench-jobs.sh"
