#!/usr/bin/env bash
# Runs the load tests with budgets (load/plan.toml) against a real system on loopback, and fails
# when a budget is missed:
#   origin           the origin on SQLite with the demo data, caches on
#   origin-uncached  the same data with CACHE_ENABLED=false (what the caches buy, as a ratio)
#   nginx            nginx serving a cached task's bytes and headers as a static file, same path
#   edge             the edge Worker in workerd (wrangler dev) in front of origin
#   edge-plain       the plain caching Worker of scripts/peers/plain-worker, in front of origin
#                    in workerd the same way: the edge's peer
# Nothing is pinned: every process may use every core, as on a user's machine.
#
#   scripts/load.sh [smoke|full] [rampart-load options…]
#
# smoke (the default) is short and at a quarter of the rates: scripts/test.sh runs it. full
# runs longer, in three rounds. Each leaves target/load/<profile>/report.html (charts) and
# summary.json, which the next run of that profile compares with. Installs what is missing
# (nginx-light, the edge tools). Safe to re-run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

PROFILE=${1:-smoke}
shift || true
OUT="$ROOT/target/load/$PROFILE"

apt_install nginx-light
ensure_edge_tools
log "building the origin and the load tool (release)"
cargo build --quiet --release -p origin -p rampart-load
bash scripts/build-edge.sh

scratch_space

wait_for() { # url what log
  for _ in $(seq 600); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done
  die "$2 did not start: $(tail -20 "$3")"
}

start_origin() { # name port extra-env…
  local name=$1 port=$2
  shift 2
  # One client sends everything: a budget no run can spend, so the rate limiter still runs.
  setsid env RATE_LIMIT_MAX_REQUESTS=4000000000 RATE_LIMIT_WINDOW_MS=1000 \
    DATABASE_URL="sqlite:$WORK/$name.db" CACHE_WARM_PATHS= RUST_LOG=warn \
    ORIGIN_ADDR="127.0.0.1:$port" "$@" "$ROOT/target/release/origin" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
}

ORIGIN_PORT=$(free_port)
UNCACHED_PORT=$(free_port)
log "starting the origin and the origin without caches (each seeds its demo data)"
start_origin origin "$ORIGIN_PORT"
ORIGIN_PID=${PIDS[-1]}
start_origin uncached "$UNCACHED_PORT" CACHE_ENABLED=false
UNCACHED_PID=${PIDS[-1]}
ORIGIN="http://127.0.0.1:$ORIGIN_PORT"
UNCACHED="http://127.0.0.1:$UNCACHED_PORT"
wait_for "$ORIGIN/health" "the origin" "$WORK/origin.log"
wait_for "$UNCACHED/health" "the origin without caches" "$WORK/uncached.log"

log "starting nginx with a cached task's bytes and headers"
TASK_PATH=/api/tasks/7
mkdir -p "$WORK/www"
chmod 755 "$WORK" "$WORK/www"
curl -sf "$ORIGIN$TASK_PATH" -o "$WORK/www/task.json"
curl -sfI "$ORIGIN$TASK_PATH" | grep -qi '^cache-status: rampart-origin; hit' || die "the task is not cached"
nginx_headers_of "$ORIGIN$TASK_PATH" >"$WORK/headers.conf"
NGINX_PORT=$(free_port)
cat >"$WORK/nginx.conf" <<CONF
worker_processes auto;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location = $TASK_PATH {
      alias $WORK/www/task.json;
      default_type application/json;
      include $WORK/headers.conf;
    }
  }
}
CONF
setsid nginx -c "$WORK/nginx.conf" -p "$WORK" &
PIDS+=($!)
NGINX_PID=$!
NGINX="http://127.0.0.1:$NGINX_PORT"
wait_for "$NGINX$TASK_PATH" "nginx" "$WORK/nginx-error.log"
cmp -s "$WORK/www/task.json" <(curl -sf "$NGINX$TASK_PATH") || die "nginx serves other bytes than the origin"

log "starting the edge (workerd) in front of the origin"
EDGE_PORT=$(free_port)
setsid env WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false \
  "$ROOT/node_modules/.bin/wrangler" dev --ip 127.0.0.1 --port "$EDGE_PORT" --inspector-port "$(free_port)" \
  --var "ORIGIN_URL:$ORIGIN" --persist-to "$WORK/edge-state" \
  --show-interactive-dev-session=false --log-level warn >"$WORK/edge.log" 2>&1 &
PIDS+=($!)
EDGE_GROUP=$!
EDGE="http://127.0.0.1:$EDGE_PORT"
for _ in $(seq 600); do curl -sf "$EDGE/health" >/dev/null && break; sleep 0.25; done
curl -sf "$EDGE/health" >/dev/null || die "the edge did not start: $(tail -20 "$WORK/edge.log")"

log "starting the plain caching Worker (scripts/peers/plain-worker), the edge's peer"
PLAIN_PORT=$(free_port)
(cd scripts/peers/plain-worker && exec setsid env WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false \
  "$ROOT/node_modules/.bin/wrangler" dev --ip 127.0.0.1 --port "$PLAIN_PORT" --inspector-port "$(free_port)" \
  --var "ORIGIN_URL:$ORIGIN" --persist-to "$WORK/plain-state" \
  --show-interactive-dev-session=false --log-level warn >"$WORK/plain.log" 2>&1) &
PIDS+=($!)
PLAIN_GROUP=$!
PLAIN="http://127.0.0.1:$PLAIN_PORT"
for _ in $(seq 600); do curl -sf "$PLAIN/health" >/dev/null && break; sleep 0.25; done
curl -sf "$PLAIN/health" >/dev/null || die "the plain Worker did not start: $(tail -20 "$WORK/plain.log")"

# A stored image, for the transform scenario.
IMAGE=$(curl -sf "$ORIGIN/api/tasks/1" | grep -o '"/images/[^"]*"' | head -n 1 | tr -d '"')
[ -n "$IMAGE" ] || die "the demo data has no image on task 1"

# Each target's processes, for its CPU time per answer: nginx's master and workers, the edge's
# workerd processes (wrangler's local proxy and the Worker's).
NGINX_PIDS=$(echo "$NGINX_PID" $(pgrep -P "$NGINX_PID") | tr ' ' ',')
EDGE_PIDS=$(pgrep -g "$EDGE_GROUP" -x workerd | paste -sd, - || true)
PLAIN_PIDS=$(pgrep -g "$PLAIN_GROUP" -x workerd | paste -sd, - || true)

log "running the $PROFILE profile of load/plan.toml"
"$ROOT/target/release/rampart-load" --plan load/plan.toml --profile "$PROFILE" --out "$OUT" \
  --target "origin=$ORIGIN" --target "origin-uncached=$UNCACHED" --target "nginx=$NGINX" \
  --target "edge=$EDGE" --target "edge-plain=$PLAIN" --var "image=$IMAGE" \
  --cpu "origin=$ORIGIN_PID" --cpu "origin-uncached=$UNCACHED_PID" --cpu "nginx=$NGINX_PIDS" \
  ${EDGE_PIDS:+--cpu "edge=$EDGE_PIDS"} ${PLAIN_PIDS:+--cpu "edge-plain=$PLAIN_PIDS"} "$@"
