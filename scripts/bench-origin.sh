#!/usr/bin/env bash
# Measures the origin's figures, each against a peer in the same run, on loopback:
#   1. a cached GET /api/tasks/{id} against nginx serving the same bytes as a static file
#      (same load generator, wrk, same connections and duration): requests/s and p99, against
#      plain nginx and against nginx adding the same response headers (same bytes on the wire);
#      and the origin's whole middleware stack against a bare axum handler sending the same
#      head and body with no layers (origin/examples/bare_hit.rs); and a cached page of 100
#      tasks asked for with Accept-Encoding: br against nginx serving the same brotli bytes;
#   2. 500 concurrent requests for one cold key: database queries caused;
#   3. stale-while-revalidate: p99 of answers served stale against p99 of fresh hits;
#   4. export of 1,000,000 audit events: rows/s and peak RSS growth of the origin.
# Installs what is missing (nginx-light, wrk, sqlite3). Safe to re-run.
#
# On a machine with two or more cores each server runs on core 0 alone and wrk on core 1, so
# that the server is what limits throughput and the peers share the cores the same way; every
# peer is measured once per round, rounds alternate, and each figure is the median over rounds.
#
#   BENCH_SECONDS      wrk duration per peer and round  (default 5)
#   BENCH_ROUNDS       rounds                            (default 3)
#   BENCH_CONNECTIONS  wrk connections                   (default 64)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

SECONDS_PER_RUN=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-5}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
if [ "$(nproc)" -ge 2 ]; then
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
curl -sfI "$TASK_URL" | tr -d '\r' | awk -F': ' 'NR > 1 && NF >= 2 && tolower($1) !~ /^(date|content-length|content-type|etag|connection)$/ {
  name = $1; $1 = ""; value = substr($0, 2); gsub(/"/, "\\\"", value)
  printf "      add_header %s \"%s\" always;\n", name, value }' >"$WORK/headers.conf"
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

# run_wrk <url> <server pids...>: requests/s, p99 (ms) and the servers' CPU µs per request.
# wrk prints "N requests in", "Requests/sec: N" and, with --latency, "99% N{us,ms,s}". CPU per
# request is the steadier figure on a shared machine: the time the server spends on a request,
# whoever else wants the cores.
run_wrk() {
  local url=$1 before after requests rps p99 threads=2
  shift
  [ ${#LOAD_CPU[@]} -gt 0 ] && threads=1
  before=$(cpu_ticks "$@")
  "${LOAD_CPU[@]}" wrk -t"$threads" -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency \
    ${WRK_HEADER:+-H "$WRK_HEADER"} "$url" >"$WORK/wrk.txt"
  after=$(cpu_ticks "$@")
  requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$WORK/wrk.txt")
  echo "$rps $p99 $(awk -v t=$((after - before)) -v us="$TICK_US" -v n="$requests" 'BEGIN {printf "%.1f", t * us / n}')"
}
NGINX_PIDS="$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"
log "wrk: $CONNECTIONS connections, ${SECONDS_PER_RUN}s per peer, $ROUNDS rounds of: nginx, nginx with the same headers, bare handler, origin"
: >"$WORK/rounds.txt"
for round in $(seq "$ROUNDS"); do
  # shellcheck disable=SC2086 # NGINX_PIDS is a list
  read -r NGINX_RPS NGINX_P99 NGINX_CPU < <(run_wrk "http://127.0.0.1:$NGINX_PORT/task.json" $NGINX_PIDS)
  # shellcheck disable=SC2086
  read -r SAME_RPS SAME_P99 _ < <(run_wrk "http://127.0.0.1:$NGINX_PORT/same-headers/task.json" $NGINX_PIDS)
  read -r BARE_RPS BARE_P99 BARE_CPU < <(run_wrk "http://127.0.0.1:$BARE_PORT/api/tasks/7" "$BARE_PID")
  read -r ORIGIN_RPS ORIGIN_P99 ORIGIN_CPU < <(run_wrk "$TASK_URL" "$ORIGIN_PID")
  # shellcheck disable=SC2086
  read -r BR_NGINX_RPS BR_NGINX_P99 _ < <(run_wrk "http://127.0.0.1:$NGINX_PORT/list.json.br" $NGINX_PIDS)
  read -r BR_ORIGIN_RPS BR_ORIGIN_P99 _ < <(WRK_HEADER='accept-encoding: br' run_wrk "$LIST_URL" "$ORIGIN_PID")
  echo "$round $NGINX_RPS $NGINX_P99 $NGINX_CPU $SAME_RPS $SAME_P99 $BARE_RPS $BARE_P99 $BARE_CPU $ORIGIN_RPS $ORIGIN_P99 $ORIGIN_CPU $BR_NGINX_RPS $BR_NGINX_P99 $BR_ORIGIN_RPS $BR_ORIGIN_P99" | tee -a "$WORK/rounds.txt"
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

printf "\nFigures (loopback; %s; %d rounds of %d s per peer; medians over rounds)\n" \
  "$([ ${#SERVER_CPU[@]} -gt 0 ] && echo "each server alone on core 0, wrk on core 1" || echo "server and wrk share the cores")" "$ROUNDS" "$SECONDS_PER_RUN"
echo "  cached GET /api/tasks/7, same body; response head: origin $ORIGIN_HEAD B, nginx $NGINX_HEAD B, nginx with the same headers $SAME_HEAD B"
echo "  per round: round, nginx req/s p99 CPU-us, same-headers nginx req/s p99, bare req/s p99 CPU-us, origin req/s p99 CPU-us, brotli page: nginx req/s p99, origin req/s p99"
sed 's/^/    /' "$WORK/rounds.txt"
# Per-round ratios, then their medians (the middle value; the mean of the middle two when even).
sort_median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ratio() { awk "{printf \"%.4f\\n\", $1}" "$WORK/rounds.txt" | sort_median; }
awk -v nginx="$(ratio '$10 / $2')" -v nginx_p99="$(ratio '$11 / $3')" \
    -v same="$(ratio '$10 / $5')" -v same_p99="$(ratio '$11 / $6')" \
    -v bare="$(ratio '$10 / $7')" -v bare_p99="$(ratio '$11 / $8')" \
    -v br="$(ratio '$15 / $13')" -v br_p99="$(ratio '$16 / $14')" \
    -v bare_cpu="$(ratio '$9 / $12')" -v nginx_cpu="$(ratio '$4 / $12')" \
    -v origin_cpu="$(awk '{print $12}' "$WORK/rounds.txt" | sort_median)" \
    -v rows="$ROWS" -v secs="$EXPORT_SECONDS" -v csvsecs="$CSV_SECONDS" -v bytes="$EXPORT_BYTES" \
    -v before="$RSS_BEFORE" -v peak="$RSS_PEAK" 'BEGIN {
  printf "    origin / plain nginx:                 throughput %.2fx, p99 %.2fx (targets: >= 1.0x, <= 1.0x)\n", nginx, nginx_p99
  printf "    origin / nginx with the same headers: throughput %.2fx, p99 %.2fx\n", same, same_p99
  printf "    origin full stack / bare handler:     throughput %.2fx (target >= 0.85x: the stack costs <= 15%%), p99 %.2fx\n", bare, bare_p99
  printf "    brotli page of 100 tasks, origin / nginx serving the same bytes: throughput %.2fx, p99 %.2fx\n", br, br_p99
  printf "    server CPU per request: origin %.1f us; bare / origin %.2fx, nginx / origin %.2fx\n", origin_cpu, bare_cpu, nginx_cpu
  printf "  export %d events (NDJSON, %.0f MB): %.2f s = %.0f rows/s (target >= 200000); CSV %.0f rows/s\n", rows, bytes / 1e6, secs, rows / secs, rows / csvsecs
  printf "    origin RSS %.1f MB before, peak %.1f MB during: growth %.1f MB (target < 50)\n", before / 1024, peak / 1024, (peak - before) / 1024
}'
