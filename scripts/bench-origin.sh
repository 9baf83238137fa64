#!/usr/bin/env bash
# Measures the origin's figures, each against a peer in the same run, on loopback:
#   1. a cached GET /api/tasks/{id} against nginx serving the same bytes as a static file
#      (same load generator, wrk, same connections and duration): requests/s and p99, against
#      plain nginx and against nginx adding the same response headers (same bytes on the wire);
#      and the origin's whole middleware stack against a bare axum handler sending the same
#      head and body with no layers (origin/examples/bare_hit.rs); and a cached page of 100
#      tasks asked for with Accept-Encoding: br against nginx serving the same brotli bytes;
#      then nginx and the origin again, paced by a think time after each response so that both
#      serve about the same request rate below saturation: p99 at equal load;
#   2. 500 concurrent requests for one cold key: database queries caused;
#   3. stale-while-revalidate: p99 of answers served stale against p99 of fresh hits;
#   4. export of 1,000,000 audit events: rows/s and peak RSS growth of the origin.
# Installs what is missing (nginx-light, wrk, sqlite3). Safe to re-run.
#
# On a machine with two or more cores each server runs on core 0 alone and wrk on core 1, so
# that the server is what limits throughput and the peers share the cores the same way
# (BENCH_PINNED=0: nothing is pinned, every process may use every core, nginx runs one worker
# per core and the origin its default runtime, as on a user's machine). Every
# peer is measured once per round, in reverse order in even rounds. Each ratio is the median of
# the per-round ratios; each peer's p99 is also taken over its requests pooled from all rounds
# (from wrk's latency histograms), which one noisy round moves less.
#
#   BENCH_SECONDS      wrk duration per peer and round     (default 5)
#   BENCH_ROUNDS       rounds                               (default 8)
#   BENCH_CONNECTIONS  wrk connections                      (default 64)
#   BENCH_PACE_MS      think time of the paced runs, in ms  (default 1)
#   BENCH_PINNED       1: servers on core 0, wrk on core 1; 0: nothing pinned (default 1)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

SECONDS_PER_RUN=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-8}
PACE_MS=${BENCH_PACE_MS:-1}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
if [ "$(nproc)" -ge 2 ] && [ "${BENCH_PINNED:-1}" != 0 ]; then
  SERVER_CPU=(taskset -c 0)
  LOAD_CPU=(taskset -c 1)
  NGINX_WORKERS=1
else
  SERVER_CPU=()
  LOAD_CPU=()
  NGINX_WORKERS=auto
fi
ORIGIN_PORT=18181
NGINX_PORT=18182
BARE_PORT=18183
EVENTS=1000000

apt_install nginx-light wrk sqlite3
log "building the origin (release)"
cargo build --quiet --release -p origin --bin origin --example bare_hit

WORK=$(mktemp -d)
ORIGIN_PID=
NGINX_PID=
BARE_PID=
cleanup() {
  [ -n "$ORIGIN_PID" ] && kill "$ORIGIN_PID" 2>/dev/null || true
  [ -n "$BARE_PID" ] && kill "$BARE_PID" 2>/dev/null || true
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for port in "$ORIGIN_PORT" "$NGINX_PORT" "$BARE_PORT"; do
  ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "port $port is taken: stop what listens there first"
done
log "starting the origin with the full demo data"
# One client sends everything: a budget no run can spend, so the rate limiter still runs.
RATE_LIMIT_MAX_REQUESTS=4000000000 RATE_LIMIT_WINDOW_MS=1000 \
DATABASE_URL="sqlite:$WORK/bench.db" CACHE_WARM_PATHS= RUST_LOG=warn ORIGIN_ADDR="127.0.0.1:$ORIGIN_PORT" \
  "${SERVER_CPU[@]}" "$ROOT/target/release/origin" >"$WORK/origin.log" 2>&1 &
ORIGIN_PID=$!
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$ORIGIN_PORT/health" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$ORIGIN_PORT/health" >/dev/null || die "origin did not start: $(cat "$WORK/origin.log")"

TASK_URL="http://127.0.0.1:$ORIGIN_PORT/api/tasks/7"
mkdir -p "$WORK/www"
# nginx workers run as an unprivileged user: they must be able to read the file.
chmod 755 "$WORK" "$WORK/www"
curl -sf "$TASK_URL" -o "$WORK/www/task.json"
curl -sfI "$TASK_URL" | grep -qi '^cache-status: rampart-origin; hit' || die "the task is not cached"
# A page of 100 tasks (32 KB of JSON), compressed: the cache keeps a brotli copy.
LIST_URL="http://127.0.0.1:$ORIGIN_PORT/api/tasks?limit=100"
curl -sf -H 'accept-encoding: br' "$LIST_URL" -o "$WORK/www/list.json.br"
curl -sf -D - -o /dev/null -H 'accept-encoding: br' "$LIST_URL" | grep -qi '^content-encoding: br' || die "the page is not brotli-compressed"
# The middleware peer: a bare axum handler sending the hit's head and body, with no layers.
curl -sfI "$TASK_URL" | tr -d '\r' >"$WORK/hit-head.txt"
"${SERVER_CPU[@]}" "$ROOT/target/release/examples/bare_hit" "127.0.0.1:$BARE_PORT" "$WORK/hit-head.txt" "$WORK/www/task.json" &
BARE_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$BARE_PORT/" >/dev/null && break; sleep 0.1; done
cmp -s "$WORK/www/task.json" <(curl -sf "http://127.0.0.1:$BARE_PORT/") || die "the bare peer serves other bytes"
# The origin's response headers, for the nginx peer that sends the same bytes on the wire
# (nginx writes its own Date, Content-Length, Content-Type and ETag).
nginx_headers_of "$TASK_URL" >"$WORK/headers.conf"
cat >"$WORK/nginx.conf" <<CONF
worker_processes $NGINX_WORKERS;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  types { application/json json; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WORK/www;
    location = /list.json.br {
      default_type application/json;
      add_header Content-Encoding br always;
      add_header Vary Accept-Encoding always;
    }
    location = /same-headers/task.json {
      alias $WORK/www/task.json;
      include $WORK/headers.conf;
    }
  }
}
CONF
"${SERVER_CPU[@]}" nginx -c "$WORK/nginx.conf" -p "$WORK" &
NGINX_PID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$NGINX_PORT/task.json" >/dev/null && break; sleep 0.1; done
cmp -s "$WORK/www/task.json" <(curl -sf "http://127.0.0.1:$NGINX_PORT/task.json") || die "nginx serves other bytes"
cmp -s "$WORK/www/task.json" <(curl -sf "http://127.0.0.1:$NGINX_PORT/same-headers/task.json") || die "nginx serves other bytes"
ORIGIN_HEAD=$(curl -sfI "$TASK_URL" | wc -c)
NGINX_HEAD=$(curl -sfI "http://127.0.0.1:$NGINX_PORT/task.json" | wc -c)
SAME_HEAD=$(curl -sfI "http://127.0.0.1:$NGINX_PORT/same-headers/task.json" | wc -c)

# CPU time (user + system, in clock ticks) the processes have used, all their threads included.
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  echo "$total"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# wrk's latency histogram (microseconds and count per line) goes to $WRK_HISTOGRAM, so that
# every peer's latencies can be pooled over all rounds; a think time of $WRK_PACE_MS after each
# response, when set, holds every peer to about the same request rate, below saturation.
cat >"$WORK/wrk.lua" <<'LUA'
local pace = tonumber(os.getenv("WRK_PACE_MS") or "")
if pace then
  delay = function() return pace end
end
done = function(summary, latency, requests)
  local out = assert(io.open(os.getenv("WRK_HISTOGRAM"), "w"))
  for i = 1, #latency do
    local value, count = latency(i)
    out:write(string.format("%d %d\n", value, count))
  end
  out:close()
end
LUA
mkdir -p "$WORK/runs"

# percentile <fraction> <histograms...>: the latency (ms) below which that fraction of all the
# requests in the histograms fell.
percentile() {
  local fraction=$1
  shift
  cat "$@" | sort -n | awk -v f="$fraction" '{v[NR] = $1; c[NR] = $2; total += $2}
    END {for (i = 1; i <= NR; i++) {seen += c[i]; if (seen >= total * f) {printf "%.3f", v[i] / 1000; exit}}}'
}

# measure <peer> <round> <url> <server pids...>: runs wrk and writes "$WORK/runs/<peer>.<round>"
# holding requests/s, p99 (ms), the servers' CPU µs per request and wrk's share of its core, and
# the histogram beside it (.hist). CPU per request is the steadier figure on a shared machine:
# the time the server spends on a request, whoever else wants the cores. wrk's own share shows
# how close the load generator is to its limit, which adds to every latency it measures.
measure() {
  local peer=$1 round=$2 url=$3 before after requests rps p99 threads=1 times
  shift 3
  before=$(cpu_ticks "$@")
  times=$( { TIMEFORMAT='%U %S'; time WRK_HISTOGRAM="$WORK/runs/$peer.$round.hist" "${LOAD_CPU[@]}" \
    wrk -t"$threads" -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" -s "$WORK/wrk.lua" \
    ${WRK_HEADER:+-H "$WRK_HEADER"} "$url" >"$WORK/wrk.txt"; } 2>&1)
  after=$(cpu_ticks "$@")
  requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
  p99=$(percentile 0.99 "$WORK/runs/$peer.$round.hist")
  echo "$rps $p99 $(awk -v t=$((after - before)) -v us="$TICK_US" -v n="$requests" 'BEGIN {printf "%.1f", t * us / n}') \
$(awk -v s="$SECONDS_PER_RUN" '{printf "%.0f", ($1 + $2) * 100 / s}' <<<"$times")" >"$WORK/runs/$peer.$round"
}

NGINX_PIDS="$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"
# Each peer: name, URL, server pids, request header. The paced pair runs with a think time.
PEERS=(
  "nginx|http://127.0.0.1:$NGINX_PORT/task.json|$NGINX_PIDS|"
  "same|http://127.0.0.1:$NGINX_PORT/same-headers/task.json|$NGINX_PIDS|"
  "bare|http://127.0.0.1:$BARE_PORT/api/tasks/7|$BARE_PID|"
  "origin|$TASK_URL|$ORIGIN_PID|"
  "br_nginx|http://127.0.0.1:$NGINX_PORT/list.json.br|$NGINX_PIDS|"
  "br_origin|$LIST_URL|$ORIGIN_PID|accept-encoding: br"
  "paced_nginx|http://127.0.0.1:$NGINX_PORT/task.json|$NGINX_PIDS|"
  "paced_origin|$TASK_URL|$ORIGIN_PID|"
)
log "wrk: $CONNECTIONS connections, ${SECONDS_PER_RUN}s per peer, $ROUNDS rounds of: nginx, nginx with the same headers, bare handler, origin, the brotli page from nginx and the origin, and nginx and the origin with a ${PACE_MS} ms think time (order reversed in even rounds)"
for round in $(seq "$ROUNDS"); do
  order=$(seq 0 $((${#PEERS[@]} - 1)))
  [ $((round % 2)) -eq 0 ] && order=$(seq $((${#PEERS[@]} - 1)) -1 0)
  for i in $order; do
    IFS='|' read -r peer url pids header <<<"${PEERS[$i]}"
    pace=
    [[ $peer == paced_* ]] && pace=$PACE_MS
    # shellcheck disable=SC2086 # pids is a list
    WRK_HEADER=$header WRK_PACE_MS=$pace measure "$peer" "$round" "$url" $pids
  done
  printf "%s" "$round" >>"$WORK/rounds.txt"
  for entry in "${PEERS[@]}"; do printf " %s" "$(<"$WORK/runs/${entry%%|*}.$round")" >>"$WORK/rounds.txt"; done
  echo >>"$WORK/rounds.txt"
  tail -n 1 "$WORK/rounds.txt"
done
kill "$BARE_PID" "$NGINX_PID" 2>/dev/null || true
BARE_PID=
NGINX_PID=

# The export is measured on every core: its database thread runs beside the server's.
[ ${#SERVER_CPU[@]} -gt 0 ] && taskset -a -p -c "0-$(($(nproc) - 1))" "$ORIGIN_PID" >/dev/null
log "export: filling the audit log to $EVENTS events"
sqlite3 "$WORK/bench.db" <<SQL
.timeout 10000
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $EVENTS - (SELECT COUNT(*) FROM events))
INSERT INTO events (occurred_at, actor, action, entity_type, entity_id, data)
SELECT 1700000000000 + i * 1000, 'user:' || (i % 200), 'update', 'task', CAST(i % 1000 AS TEXT),
       '{"field":"status","note":"imported, with a comma and a \"quote\""}' FROM n;
SQL
ROWS=$(sqlite3 "$WORK/bench.db" "SELECT COUNT(*) FROM events")
# Reset the peak-RSS mark, so VmHWM afterwards is the peak during the export.
echo 5 >"/proc/$ORIGIN_PID/clear_refs"
RSS_BEFORE=$(awk '/VmRSS/ {print $2}' "/proc/$ORIGIN_PID/status")
EXPORT=$(curl -sf -o /dev/null -w '%{time_total} %{size_download}' \
  "http://127.0.0.1:$ORIGIN_PORT/api/events/export?format=ndjson")
RSS_PEAK=$(awk '/VmHWM/ {print $2}' "/proc/$ORIGIN_PID/status")
read -r EXPORT_SECONDS EXPORT_BYTES <<<"$EXPORT"
CSV_SECONDS=$(curl -sf -o /dev/null -w '%{time_total}' "http://127.0.0.1:$ORIGIN_PORT/api/events/export?format=csv")
kill "$ORIGIN_PID" 2>/dev/null || true
ORIGIN_PID=

log "stampede and stale-while-revalidate (cargo bench -p origin --bench cache_figures)"
cargo bench --quiet -p origin --bench cache_figures 2>/dev/null | tee "$WORK/figures.txt"

printf "\nFigures (loopback; %s; %d rounds of %d s per peer)\n" \
  "$([ ${#SERVER_CPU[@]} -gt 0 ] && echo "each server alone on core 0, wrk on core 1" || echo "nothing pinned: servers and wrk (one thread) share every core")" "$ROUNDS" "$SECONDS_PER_RUN"
echo "  cached GET /api/tasks/7, same body; response head: origin $ORIGIN_HEAD B, nginx $NGINX_HEAD B, nginx with the same headers $SAME_HEAD B"
echo "  per round, for each of nginx, nginx with the same headers, bare handler, origin, brotli page from nginx, from the origin,"
echo "  nginx paced, origin paced: req/s, p99 ms, server CPU us per request, wrk's share of its core (%)"
sed 's/^/    /' "$WORK/rounds.txt"
# Per-round ratios, then their medians (the middle value; the mean of the middle two when even).
sort_median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ratio() { awk "{printf \"%.4f\\n\", $1}" "$WORK/rounds.txt" | sort_median; }
median() { awk "{print \$$1}" "$WORK/rounds.txt" | sort_median; }
# p99 of one peer's requests pooled over every round.
pooled() { percentile 0.99 "$WORK"/runs/"$1".*.hist; }
awk -v nginx="$(ratio '$14 / $2')" -v nginx_p99="$(ratio '$15 / $3')" \
    -v same="$(ratio '$14 / $6')" -v same_p99="$(ratio '$15 / $7')" \
    -v bare="$(ratio '$14 / $10')" -v bare_p99="$(ratio '$15 / $11')" \
    -v br="$(ratio '$22 / $18')" -v br_p99="$(ratio '$23 / $19')" \
    -v paced_p99="$(ratio '$31 / $27')" \
    -v bare_cpu="$(ratio '$12 / $16')" -v nginx_cpu="$(ratio '$4 / $16')" -v origin_cpu="$(median 16)" \
    -v wrk_nginx="$(median 5)" -v wrk_origin="$(median 17)" -v wrk_same="$(median 9)" \
    -v p_nginx="$(pooled nginx)" -v p_same="$(pooled same)" -v p_bare="$(pooled bare)" -v p_origin="$(pooled origin)" \
    -v p_br_nginx="$(pooled br_nginx)" -v p_br_origin="$(pooled br_origin)" \
    -v p_paced_nginx="$(pooled paced_nginx)" -v p_paced_origin="$(pooled paced_origin)" \
    -v rate_nginx="$(median 26)" -v rate_origin="$(median 30)" -v pace="$PACE_MS" \
    -v rows="$ROWS" -v secs="$EXPORT_SECONDS" -v csvsecs="$CSV_SECONDS" -v bytes="$EXPORT_BYTES" \
    -v before="$RSS_BEFORE" -v peak="$RSS_PEAK" 'BEGIN {
  print "  saturating load: throughput and p99 as the median of the per-round ratios; pooled p99 over all rounds"
  printf "    origin / plain nginx:                 throughput %.2fx, p99 %.2fx; pooled p99 %.2fx (%.2f / %.2f ms) (targets: >= 1.0x, <= 1.0x)\n", nginx, nginx_p99, p_origin / p_nginx, p_origin, p_nginx
  printf "    origin / nginx with the same headers: throughput %.2fx, p99 %.2fx; pooled p99 %.2fx (%.2f / %.2f ms)\n", same, same_p99, p_origin / p_same, p_origin, p_same
  printf "    origin full stack / bare handler:     throughput %.2fx (target >= 0.85x: the stack costs <= 15%%), p99 %.2fx; pooled p99 %.2fx\n", bare, bare_p99, p_origin / p_bare
  printf "    brotli page of 100 tasks, origin / nginx serving the same bytes: throughput %.2fx, p99 %.2fx; pooled p99 %.2fx\n", br, br_p99, p_br_origin / p_br_nginx
  printf "    server CPU per request: origin %.1f us; bare / origin %.2fx, nginx / origin %.2fx\n", origin_cpu, bare_cpu, nginx_cpu
  printf "    wrk busy (median share of its core): %d%% on nginx, %d%% on nginx with the same headers, %d%% on the origin\n", wrk_nginx, wrk_same, wrk_origin
  printf "  paced load (%d ms think time per connection: about %.0f req/s for nginx, %.0f for the origin)\n", pace, rate_nginx, rate_origin
  printf "    origin / plain nginx:                 p99 %.2fx; pooled p99 %.2fx (%.2f / %.2f ms) (target <= 1.0x)\n", paced_p99, p_paced_origin / p_paced_nginx, p_paced_origin, p_paced_nginx
  printf "  export %d events (NDJSON, %.0f MB): %.2f s = %.0f rows/s (target >= 200000); CSV %.0f rows/s\n", rows, bytes / 1e6, secs, rows / secs, rows / csvsecs
  printf "    origin RSS %.1f MB before, peak %.1f MB during: growth %.1f MB (target < 50)\n", before / 1024, peak / 1024, (peak - before) / 1024
}'
