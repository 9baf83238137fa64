#!/usr/bin/env bash
# Measures the edge's image encoders against sharp (libvips: libaom AVIF, libwebp WebP) on the
# photographs in ../shared/data/images, in one run:
#   - bytes at equal visual quality: sharp encodes at its default quality; the Worker's quality
#     is then searched for the smallest output whose DSSIM is no worse than sharp's; the ratio
#     of bytes (ours / sharp) is reported per image and format;
#   - time per megapixel: the Worker's whole conversion (fetch, decode, resize, encode) timed
#     through workerd, against sharp doing the same natively on one thread;
#   - the Worker's costs in workerd: bundle size, first request after start against a warm one,
#     and the workerd processes' CPU time per cache hit (an image; text per client coding),
#     cache miss and conversion.
# Installs what is missing (sharp under target/bench-images, the dssim tool). Safe to re-run.
#
#   BENCH_IMAGES  folder of photographs  (default ../shared/data/images)
#   BENCH_WIDTH   output width           (default 640)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

IMAGES=${BENCH_IMAGES:-$ROOT/../shared/data/images}
[ -d "$IMAGES" ] || die "no photographs at $IMAGES: set BENCH_IMAGES to a folder of JPEG and PNG files"
ensure_edge_tools
ensure_image_bench_tools
bash scripts/build-edge.sh

WORK=$(mktemp -d)
ORIGIN_PID=
EDGE_PID=
cleanup() {
  [ -n "$EDGE_PID" ] && kill -- -"$EDGE_PID" 2>/dev/null || true
  [ -n "$ORIGIN_PID" ] && kill "$ORIGIN_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The origin: the photographs as static files under /images/, and a JSON file under /assets/ for
# the cost of a text hit.
mkdir -p "$WORK/www/assets"
ln -s "$(cd "$IMAGES" && pwd)" "$WORK/www/images"
python3 -c 'import json; print(json.dumps([{"id": i, "title": f"task {i}", "status": ["open", "done"][i % 2], "assignee": f"user{i % 7}"} for i in range(1000)]))' >"$WORK/www/assets/tasks.json"
ORIGIN_PORT=$(free_port)
EDGE_PORT=$(free_port)
python3 -m http.server "$ORIGIN_PORT" --bind 127.0.0.1 --directory "$WORK/www" >"$WORK/origin.log" 2>&1 &
ORIGIN_PID=$!
log "starting the edge in workerd"
set -m
"$ROOT/node_modules/.bin/wrangler" dev --ip 127.0.0.1 --port "$EDGE_PORT" --inspector-port "$(free_port)" \
  --var "ORIGIN_URL:http://127.0.0.1:$ORIGIN_PORT" --persist-to "$WORK/state" \
  --show-interactive-dev-session=false --log-level warn >"$WORK/edge.log" 2>&1 &
EDGE_PID=$!
set +m
# Ready when workerd listens; the first request is left to the measurement (cold start).
for _ in $(seq 240); do (exec 3<>"/dev/tcp/127.0.0.1/$EDGE_PORT") 2>/dev/null && break; sleep 0.25; done
WASM_BYTES=$(stat -c %s edge/build/index_bg.wasm)
WASM_GZIP=$(gzip -9 -c edge/build/index_bg.wasm | wc -c)

EDGE_PGID="$EDGE_PID" WASM_BYTES="$WASM_BYTES" WASM_GZIP="$WASM_GZIP" SHARP_MODULES="$BENCH_NODE/node_modules" node "$ROOT/scripts/bench-images.cjs" \
  "http://127.0.0.1:$EDGE_PORT" "$IMAGES" "${BENCH_WIDTH:-640}" "$WORK"
