#!/usr/bin/env bash
# Measures the origin's figures, each against a peer in the same run, on loopback:
#   1. a cached GET /api/tasks/{id} against nginx serving the same bytes as a static file
#      (same load generator, wrk, same connections and duration): requests/s and p99, against
#      plain nginx and against nginx adding the same response headers (same bytes on the wire);
#      and the origin's whole middleware stack against a bare axum handler sending the same
#      head and body with no layers (origin/examples/bare_hit.rs);
#   2. 500 concurrent requests for one cold key: database queries caused;
#   3. stale-while-revalidate: p99 of answers served stale against p99 of fresh hits;
#   4. export of 1,000,000 audit events: rows/s and peak RSS growth of the origin.
# Installs what is missing (nginx-light, wrk, sqlite3). Safe to re-run.
#
#   BENCH_SECONDS      wrk duration per peer   (default 10)
#   BENCH_CONNECTIONS  wrk connections         (default 64)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

SECONDS_PER_RUN=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
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
  "$ROOT/target/release/origin" >"$WORK/origin.log" 2>&1 &
ORIGIN_PID=$!
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$ORIGIN_PORT/health" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$ORIGIN_PORT/health" >/dev/null || die "origin did not start: $(cat "$WORK/origin.log")"

TASK_URL="http://127.0.0.1:$ORIGIN_PORT/api/tasks/7"
mkdir -p "$WORK/www"
# nginx workers run as an unprivileged user: they must be able to read the file.
chmod 755 "$WORK" "$WORK/www"
curl -sf "$TASK_URL" -o "$WORK/www/task.json"
curl -sfI "$TASK_URL" | grep -qi '^cache-status: rampart-origin; hit' || die "the task is not cached"
# The middleware peer: a bare axum handler sending the hit's head and body, with no layers.
curl -sfI "$TASK_URL" | tr -d '\r' >"$WORK/hit-head.txt"
"$ROOT/target/release/examples/bare_hit" "127.0.0.1:$BARE_PORT" "$WORK/hit-head.txt" "$WORK/www/task.json" &
BARE_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$BARE_PORT/" >/dev/null && break; sleep 0.1; done
cmp -s "$WORK/www/task.json" <(curl -sf "http://127.0.0.1:$BARE_PORT/") || die "the bare peer serves other bytes"
# The origin's response headers, for the nginx peer that sends the same bytes on the wire
# (nginx writes its own Date, Content-Length, Content-Type and ETag).
curl -sfI "$TASK_URL" | tr -d '\r' | awk -F': ' 'NR > 1 && NF >= 2 && tolower($1) !~ /^(date|content-length|content-type|etag|connection)$/ {
  name = $1; $1 = ""; value = substr($0, 2); gsub(/"/, "\\\"", value)
  printf "      add_header %s \"%s\" always;\n", name, value }' >"$WORK/headers.conf"
cat >"$WORK/nginx.conf" <<CONF
worker_processes auto;
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
    location = /same-headers/task.json {
      alias $WORK/www/task.json;
      include $WORK/headers.conf;
    }
  }
}
CONF
nginx -c "$WORK/nginx.conf" -p "$WORK" &
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
  local url=$1 before after requests rps p99
  shift
  before=$(cpu_ticks "$@")
  wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency "$url" >"$WORK/wrk.txt"
  after=$(cpu_ticks "$@")
  requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$WORK/wrk.txt")
  echo "$rps $p99 $(awk -v t=$((after - before)) -v us="$TICK_US" -v n="$requests" 'BEGIN {printf "%.1f", t * us / n}')"
}
NGINX_PIDS="$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"
log "wrk: $CONNECTIONS connections, ${SECONDS_PER_RUN}s each: nginx, nginx with the same headers, bare handler, origin, bare handler, then both nginx again"
# shellcheck disable=SC2086 # NGINX_PIDS is a list
read -r NGINX_RPS NGINX_P99 NGINX_CPU < <(run_wrk "http://127.0.0.1:$NGINX_PORT/task.json" $NGINX_PIDS)
# shellcheck disable=SC2086
read -r SAME_RPS SAME_P99 _ < <(run_wrk "http://127.0.0.1:$NGINX_PORT/same-headers/task.json" $NGINX_PIDS)
read -r BARE_RPS BARE_P99 BARE_CPU < <(run_wrk "http://127.0.0.1:$BARE_PORT/api/tasks/7" "$BARE_PID")
read -r ORIGIN_RPS ORIGIN_P99 ORIGIN_CPU < <(run_wrk "$TASK_URL" "$ORIGIN_PID")
read -r BARE2_RPS BARE2_P99 BARE2_CPU < <(run_wrk "http://127.0.0.1:$BARE_PORT/api/tasks/7" "$BARE_PID")
kill "$BARE_PID" 2>/dev/null || true
BARE_PID=
# shellcheck disable=SC2086
read -r NGINX2_RPS NGINX2_P99 NGINX2_CPU < <(run_wrk "http://127.0.0.1:$NGINX_PORT/task.json" $NGINX_PIDS)
# shellcheck disable=SC2086
read -r SAME2_RPS SAME2_P99 _ < <(run_wrk "http://127.0.0.1:$NGINX_PORT/same-headers/task.json" $NGINX_PIDS)
kill "$NGINX_PID" 2>/dev/null || true
NGINX_PID=

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

awk -v orps="$ORIGIN_RPS" -v op99="$ORIGIN_P99" -v nrps="$NGINX_RPS" -v np99="$NGINX_P99" \
    -v n2rps="$NGINX2_RPS" -v n2p99="$NGINX2_P99" -v srps="$SAME_RPS" -v sp99="$SAME_P99" \
    -v s2rps="$SAME2_RPS" -v s2p99="$SAME2_P99" -v ohead="$ORIGIN_HEAD" -v nhead="$NGINX_HEAD" \
    -v shead="$SAME_HEAD" -v brps="$BARE_RPS" -v b2rps="$BARE2_RPS" -v bp99="$BARE_P99" -v b2p99="$BARE2_P99" -v rows="$ROWS" -v secs="$EXPORT_SECONDS" \
    -v csvsecs="$CSV_SECONDS" -v bytes="$EXPORT_BYTES" -v before="$RSS_BEFORE" -v peak="$RSS_PEAK" \
    -v ocpu="$ORIGIN_CPU" -v bcpu="$BARE_CPU" -v b2cpu="$BARE2_CPU" -v ncpu="$NGINX_CPU" -v n2cpu="$NGINX2_CPU" 'BEGIN {
  nrps_mean = (nrps + n2rps) / 2; np99_mean = (np99 + n2p99) / 2
  srps_mean = (srps + s2rps) / 2; sp99_mean = (sp99 + s2p99) / 2
  printf "\nFigures (one run, loopback, 2 cores shared by server and load generator)\n"
  printf "  cached GET /api/tasks/7, same body; response head: origin %d B, nginx %d B, nginx with the same headers %d B\n", ohead, nhead, shead
  printf "    origin                       %6.0f req/s  p99 %.2f ms\n", orps, op99
  printf "    nginx, same headers          %6.0f / %.0f req/s  p99 %.2f / %.2f ms\n", srps, s2rps, sp99, s2p99
  printf "    nginx, plain static file     %6.0f / %.0f req/s  p99 %.2f / %.2f ms\n", nrps, n2rps, np99, n2p99
  printf "    origin / nginx with the same headers: throughput %.2fx, p99 %.2fx\n", orps / srps_mean, op99 / sp99_mean
  printf "    origin / plain nginx:                 throughput %.2fx, p99 %.2fx (targets: >= 1.0x, <= 1.0x)\n", orps / nrps_mean, op99 / np99_mean
  printf "    bare axum handler, same head and body, no layers  %6.0f / %.0f req/s  p99 %.2f / %.2f ms\n", brps, b2rps, bp99, b2p99
  printf "    origin full stack / bare handler:  throughput %.2fx (target >= 0.85x: the stack costs <= 15%%), p99 %.2fx\n", orps / ((brps + b2rps) / 2), op99 / ((bp99 + b2p99) / 2)
  printf "    server CPU per request: origin %.1f us, bare handler %.1f / %.1f us, nginx %.1f / %.1f us\n", ocpu, bcpu, b2cpu, ncpu, n2cpu
  printf "      bare / origin CPU per request: %.2fx (the throughput the stack leaves on a CPU-bound server; target >= 0.85x)\n", ((bcpu + b2cpu) / 2) / ocpu
  printf "      nginx / origin CPU per request: %.2fx\n", ((ncpu + n2cpu) / 2) / ocpu
  printf "  export %d events (NDJSON, %.0f MB): %.2f s = %.0f rows/s (target >= 200000); CSV %.0f rows/s\n", rows, bytes / 1e6, secs, rows / secs, rows / csvsecs
  printf "    origin RSS %.1f MB before, peak %.1f MB during: growth %.1f MB (target < 50)\n", before / 1024, peak / 1024, (peak - before) / 1024
}'
