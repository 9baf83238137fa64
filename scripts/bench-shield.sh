#!/usr/bin/env bash
# Measures shield mode against the reverse-proxy caches its users would otherwise run, in one
# run, on loopback, all in front of the same upstream (nginx serving a 2 KiB page with
# `Cache-Control: public, max-age=3600`, and another with `no-store`):
#   1. cached hits: the shield (`origin shield`) against nginx `proxy_cache` and Varnish
#      (default VCL), each warmed, then wrk with the same connections and duration: requests/s
#      and p99 per round, and their ratios;
#   2. misses: one connection at a time on the `no-store` page, through the shield, through
#      nginx (`proxy_pass`, the page is not cached) and straight to the upstream: the median
#      latency each proxy adds.
# Every peer sends the same response head: the shield's hit head is read first, and nginx
# (`add_header`) and Varnish (`vcl_deliver`) add each field the shield sends that they do not,
# with the same value, so that all three write the same bytes per answer.
# Installs what is missing (nginx-light, varnish, wrk). Safe to re-run.
#
# With two or more cores every server runs on core 0 and wrk on core 1 (BENCH_PINNED=0:
# nothing pinned, nginx one worker per core). Peers run in reverse order in even rounds; each
# ratio is the median of the per-round ratios.
#
#   BENCH_SECONDS      wrk duration per peer and round  (default 5)
#   BENCH_ROUNDS       rounds                            (default 5)
#   BENCH_CONNECTIONS  wrk connections                   (default 64)
#   BENCH_PINNED       1: servers on core 0, wrk on core 1; 0: nothing pinned (default 1)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

SECONDS_PER_RUN=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-5}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
if [ "$(nproc)" -ge 2 ] && [ "${BENCH_PINNED:-1}" != 0 ]; then
  SERVER_CPU=(taskset -c 0)
  LOAD_CPU=(taskset -c 1)
  NGINX_WORKERS=1
  SETUP="each server on core 0, wrk on core 1"
else
  SERVER_CPU=()
  LOAD_CPU=()
  NGINX_WORKERS=auto
  SETUP="nothing pinned"
fi
UPSTREAM_PORT=18281
SHIELD_PORT=18282
NGINX_PORT=18283
VARNISH_PORT=18284

apt_install nginx-light varnish wrk
log "building the origin (release)"
cargo build --quiet --release -p origin --bin origin

WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for port in "$UPSTREAM_PORT" "$SHIELD_PORT" "$NGINX_PORT" "$VARNISH_PORT"; do
  ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "port $port is taken: stop what listens there first"
done
wait_for() {
  for _ in $(seq 100); do curl -sf "$1" >/dev/null && return; sleep 0.1; done
  die "nothing answers $1"
}

mkdir -p "$WORK/www" "$WORK/nginx-cache"
chmod 777 "$WORK/nginx-cache"
head -c 2048 /dev/urandom | base64 -w 76 | head -c 2048 >"$WORK/www/page.html"
cp "$WORK/www/page.html" "$WORK/www/fresh.html"
chmod -R a+rX "$WORK/www"
cat >"$WORK/nginx.conf" <<CONF
worker_processes $NGINX_WORKERS;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  default_type text/html;
  proxy_cache_path $WORK/nginx-cache keys_zone=pages:10m;
  upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    root $WORK/www;
    location = /page.html { add_header Cache-Control "public, max-age=3600"; }
    location = /fresh.html { add_header Cache-Control "no-store"; }
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache pages;
      include $WORK/same-head.nginx;
    }
  }
}
CONF
: >"$WORK/same-head.nginx"
"${SERVER_CPU[@]}" nginx -c "$WORK/nginx.conf" -p "$WORK" &
PIDS+=($!)
NGINX_MASTER=$!
wait_for "http://127.0.0.1:$UPSTREAM_PORT/page.html"

RATE_LIMIT_ENABLED=false RUST_LOG=warn ORIGIN_ADDR="127.0.0.1:$SHIELD_PORT" \
  "${SERVER_CPU[@]}" target/release/origin shield --upstream "http://127.0.0.1:$UPSTREAM_PORT" \
  >"$WORK/shield.log" 2>&1 &
PIDS+=($!)
SHIELD_PID=$!
wait_for "http://127.0.0.1:$SHIELD_PORT/health/live"

# The fields of the shield's hit that nginx and Varnish do not write themselves.
for _ in 1 2; do curl -sf "http://127.0.0.1:$SHIELD_PORT/page.html" >/dev/null; done
curl -sfI "http://127.0.0.1:$SHIELD_PORT/page.html" | tr -d '\r' | tail -n +2 \
  | grep -viE '^(date|content-length|content-type|connection|keep-alive|server|etag|last-modified|accept-ranges|cache-control|age|x-varnish|via):|^$' \
  >"$WORK/same-head.txt" || true
while IFS= read -r line; do
  name=${line%%:*} value=${line#*: }
  printf 'add_header "%s" "%s" always;\n' "$name" "${value//\"/\\\"}"
done <"$WORK/same-head.txt" >"$WORK/same-head.nginx"
nginx -c "$WORK/nginx.conf" -p "$WORK" -s reload
{
  echo 'vcl 4.1;'
  echo "backend default { .host = \"127.0.0.1\"; .port = \"$UPSTREAM_PORT\"; }"
  echo 'sub vcl_deliver {'
  while IFS= read -r line; do
    name=${line%%:*} value=${line#*: }
    printf '  set resp.http.%s = {"%s"};\n' "$name" "$value"
  done <"$WORK/same-head.txt"
  echo '}'
} >"$WORK/same-head.vcl"
sleep 0.5

"${SERVER_CPU[@]}" varnishd -F -n "$WORK/varnish" -a "127.0.0.1:$VARNISH_PORT" \
  -f "$WORK/same-head.vcl" -s malloc,64m >"$WORK/varnish.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$VARNISH_PORT/page.html"

# Warm every cache, and check that each serves the page from its cache, with the same body.
for _ in 1 2 3; do
  for port in "$SHIELD_PORT" "$NGINX_PORT" "$VARNISH_PORT"; do
    curl -sf "http://127.0.0.1:$port/page.html" -o "$WORK/got.html"
    cmp -s "$WORK/got.html" "$WORK/www/page.html" || die "port $port serves other bytes"
  done
done
curl -sfI "http://127.0.0.1:$SHIELD_PORT/page.html" | grep -qi '^cache-status: rampart-shield; hit' \
  || die "the shield does not serve the page from its cache"
curl -sfI "http://127.0.0.1:$VARNISH_PORT/page.html" | grep -qi '^age: [1-9]\|^x-varnish: [0-9]* [0-9]' \
  || die "varnish does not serve the page from its cache"
HEADS=$(for port in "$SHIELD_PORT" "$NGINX_PORT" "$VARNISH_PORT"; do
  curl -sfI "http://127.0.0.1:$port/page.html" | wc -c; done | paste -sd/)

# measure <peer> <round> <url> [<connections>]: "requests/s p50 p99" (ms) from wrk.
measure() {
  local peer=$1 round=$2 url=$3 connections=${4:-$CONNECTIONS}
  "${LOAD_CPU[@]}" wrk -t1 -c"$connections" -d"${SECONDS_PER_RUN}s" --latency "$url" >"$WORK/wrk.txt"
  awk '/Requests\/sec/ {rps = $2}
       function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; return v * 1000 }
       $1 == "50%" {p50 = ms($2)} $1 == "99%" {p99 = ms($2)}
       END {printf "%s %.3f %.3f\n", rps, p50, p99}' "$WORK/wrk.txt" >"$WORK/$peer.$round"
}

PEERS=(
  "shield|http://127.0.0.1:$SHIELD_PORT/page.html"
  "nginx|http://127.0.0.1:$NGINX_PORT/page.html"
  "varnish|http://127.0.0.1:$VARNISH_PORT/page.html"
)
log "cached hits: $CONNECTIONS connections, ${SECONDS_PER_RUN}s per peer, $ROUNDS rounds ($SETUP)"
for round in $(seq "$ROUNDS"); do
  order=(0 1 2)
  [ $((round % 2)) -eq 0 ] && order=(2 1 0)
  for i in "${order[@]}"; do
    IFS='|' read -r peer url <<<"${PEERS[$i]}"
    measure "$peer" "$round" "$url"
  done
  echo "$round $(cat "$WORK/shield.$round") $(cat "$WORK/nginx.$round") $(cat "$WORK/varnish.$round")" >>"$WORK/hits.txt"
  tail -n 1 "$WORK/hits.txt"
done

log "misses: one connection, the no-store page, through the shield, through nginx and straight to the upstream"
for round in $(seq "$ROUNDS"); do
  measure miss_shield "$round" "http://127.0.0.1:$SHIELD_PORT/fresh.html" 1
  measure miss_direct "$round" "http://127.0.0.1:$UPSTREAM_PORT/fresh.html" 1
  measure miss_nginx "$round" "http://127.0.0.1:$NGINX_PORT/fresh.html" 1
  echo "$round $(cat "$WORK/miss_shield.$round") $(cat "$WORK/miss_direct.$round") $(cat "$WORK/miss_nginx.$round")" >>"$WORK/misses.txt"
  tail -n 1 "$WORK/misses.txt"
done
RSS=$(awk '/VmRSS/ {print $2}' "/proc/$SHIELD_PID/status")

sort_median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ratio() { awk "{printf \"%.4f\\n\", $2}" "$1" | sort_median; }
printf "\nShield figures (loopback; %s; %d rounds of %d s per peer; response heads shield/nginx/varnish %s B; same 2048 B body)\n" \
  "$SETUP" "$ROUNDS" "$SECONDS_PER_RUN" "$HEADS"
echo "  cached hits, per round: shield, nginx proxy_cache, varnish: req/s p50 p99 (ms)"
sed 's/^/    /' "$WORK/hits.txt"
awk -v n="$(ratio "$WORK/hits.txt" '$2 / $5')" -v v="$(ratio "$WORK/hits.txt" '$2 / $8')" \
    -v np99="$(ratio "$WORK/hits.txt" '$4 / $7')" -v vp99="$(ratio "$WORK/hits.txt" '$4 / $10')" 'BEGIN {
  printf "    shield / nginx proxy_cache: throughput %.2fx (target >= 1.2x), p99 %.2fx (target <= 1.0x)\n", n, np99
  printf "    shield / varnish:           throughput %.2fx (target >= 2.0x), p99 %.2fx\n", v, vp99
}'
echo "  misses, per round: through the shield, straight to the upstream, through nginx: req/s p50 p99 (ms)"
sed 's/^/    /' "$WORK/misses.txt"
awk -v p50="$(ratio "$WORK/misses.txt" '$3 / $6')" -v added="$(ratio "$WORK/misses.txt" '($3 - $6) * 1000')" \
    -v nginx_added="$(ratio "$WORK/misses.txt" '($9 - $6) * 1000')" -v nginx_p50="$(ratio "$WORK/misses.txt" '$3 / $9')" -v rss="$RSS" 'BEGIN {
  printf "    a miss through the shield / straight to the upstream: p50 %.2fx, %.0f us added (target <= 1.1x)\n", p50, added
  printf "    nginx proxy_pass adds %.0f us; a miss through the shield / through nginx: p50 %.2fx\n", nginx_added, nginx_p50
  printf "    shield resident memory after the run: %.1f MB\n", rss / 1024
}'
