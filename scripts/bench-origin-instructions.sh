#!/usr/bin/env bash
# Counts the CPU instructions the origin spends per cached hit (GET /api/tasks/7), under
# valgrind's callgrind, against the bare axum handler (origin/examples/bare_hit.rs) sending the
# same head and body with no layers; then the shield's per miss (`origin shield` in front of
# nginx serving a 2 KiB `no-store` page), against its own hits of a cacheable page. Instruction counts do not depend on how busy the machine
# is, so one run says what a change costs a hit. Each server is run under callgrind, warmed,
# its counters zeroed, then sent REQUESTS hits on one keep-alive connection (curl); the count
# per hit is the total after the hits divided by REQUESTS.
#
#   REQUESTS     hits per server                                  (default 2000)
#   BASE_BINARY  an origin binary built from another revision, counted the same way
#                (e.g. build one with `git worktree` and `cargo build --release`)
# Installs what is missing (valgrind). Safe to re-run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

REQUESTS=${REQUESTS:-2000}
PORT=18191
UPSTREAM_PORT=18192
apt_install valgrind curl nginx-light
log "building the origin and the bare handler (release)"
cargo build --quiet --release -p origin --bin origin --example bare_hit

WORK=$(mktemp -d)
chmod 755 "$WORK"
PID=
NGINX=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
  [ -n "$NGINX" ] && kill "$NGINX" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for port in "$PORT" "$UPSTREAM_PORT"; do
  ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "port $port is taken: stop what listens there first"
done

# `curl URL URL …` reuses one connection for every URL. A browser's User-Agent, so that
# revisions that gave curl a crawler's rate limit are measured on hits too.
AGENT="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
hits() {
  local url=$1 count=$2 args=()
  for _ in $(seq "$count"); do args+=("$url" -o /dev/null); done
  curl -sf -A "$AGENT" -H "Accept-Encoding: gzip, deflate, br" "${args[@]}"
}

wait_up() {
  for _ in $(seq 1200); do curl -sf "http://127.0.0.1:$PORT$1" >/dev/null && return; sleep 0.1; done
  die "the server did not start: $(tail -5 "$WORK/server.log")"
}

# Instructions per hit of the server started by "$@", for PATH on PORT.
count() {
  local path=$1
  shift
  rm -f "$WORK"/callgrind.out.*
  valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out.%p" "$@" >"$WORK/server.log" 2>&1 &
  PID=$!
  wait_up "$path"
  hits "http://127.0.0.1:$PORT$path" 200
  callgrind_control -z "$PID" >/dev/null
  hits "http://127.0.0.1:$PORT$path" "$REQUESTS"
  callgrind_control -d "$PID" >/dev/null
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=
  local total
  total=$(grep -h '^summary:' "$WORK"/callgrind.out.*.* 2>/dev/null | awk '{s += $2} END {print s + 0}')
  [ "$total" -gt 0 ] || die "callgrind wrote no counts"
  echo $((total / REQUESTS))
}

# The origin as scripts/bench-origin.sh runs it: the rate limiter decides every request, with a
# budget no run can spend. The bare handler ignores these.
export RATE_LIMIT_MAX_REQUESTS=4000000000 RATE_LIMIT_WINDOW_MS=1000 DEMO_DATA=small \
  DATABASE_URL="sqlite:$WORK/bench.db" CACHE_WARM_PATHS= RUST_LOG=warn ORIGIN_ADDR="127.0.0.1:$PORT"

log "counting the origin's cached hits"
ORIGIN=$(count /api/tasks/7 "$ROOT/target/release/origin")
if [ -n "${BASE_BINARY:-}" ]; then
  log "counting the base binary's cached hits"
  rm -f "$WORK/bench.db"
  BASE=$(count /api/tasks/7 "$BASE_BINARY")
fi

log "capturing a hit's head and body for the bare handler"
rm -f "$WORK/bench.db"
"$ROOT/target/release/origin" >"$WORK/server.log" 2>&1 &
PID=$!
wait_up /api/tasks/7
curl -sf -D "$WORK/head.txt" -o "$WORK/body" "http://127.0.0.1:$PORT/api/tasks/7"
kill "$PID"
wait "$PID" 2>/dev/null || true
PID=
log "counting the bare handler"
BARE=$(count /api/tasks/7 "$ROOT/target/release/examples/bare_hit" "127.0.0.1:$PORT" "$WORK/head.txt" "$WORK/body")

log "counting the shield's misses and hits (nginx upstream)"
mkdir -p "$WORK/www"
head -c 2048 /dev/urandom | base64 -w 76 | head -c 2048 >"$WORK/www/fresh.html"
cp "$WORK/www/fresh.html" "$WORK/www/page.html"
chmod -R a+rX "$WORK/www"
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  default_type text/html;
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    root $WORK/www;
    location = /fresh.html { add_header Cache-Control "no-store"; }
    location = /page.html { add_header Cache-Control "public, max-age=3600"; }
  }
}
CONF
nginx -c "$WORK/nginx.conf" -p "$WORK" &
NGINX=$!
SHIELD=("$ROOT/target/release/origin" shield --upstream "http://127.0.0.1:$UPSTREAM_PORT")
export RATE_LIMIT_ENABLED=false
SHIELD_MISS=$(count /fresh.html "${SHIELD[@]}")
SHIELD_HIT=$(count /page.html "${SHIELD[@]}")
if [ -n "${BASE:-}" ]; then
  BASE_MISS=$(count /fresh.html "$BASE_BINARY" shield --upstream "http://127.0.0.1:$UPSTREAM_PORT")
fi

printf '\n| shield | instructions per request |\n| --- | --- |\n'
printf '| miss, this tree | %s |\n' "$SHIELD_MISS"
if [ -n "${BASE_MISS:-}" ]; then
  printf '| miss, %s | %s |\n' "$BASE_BINARY" "$BASE_MISS"
fi
printf '| hit, this tree | %s |\n' "$SHIELD_HIT"

printf '\n| server | instructions per hit | against the bare handler |\n| --- | --- | --- |\n'
printf '| origin (this tree) | %s | %s× |\n' "$ORIGIN" "$(awk "BEGIN {printf \"%.2f\", $ORIGIN / $BARE}")"
if [ -n "${BASE:-}" ]; then
  printf '| origin (%s) | %s | %s× |\n' "$BASE_BINARY" "$BASE" "$(awk "BEGIN {printf \"%.2f\", $BASE / $BARE}")"
fi
printf '| bare axum handler | %s | 1.00× |\n' "$BARE"
