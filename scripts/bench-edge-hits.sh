#!/usr/bin/env bash
# Measures what a cached hit costs the edge: workerd's CPU time per hit for this checkout's
# Worker against another commit's Worker (BENCH_BASE, default HEAD~1), both running side by
# side in workerd in front of the same origin, measured in alternating rounds.
#
#   BENCH_BASE      the commit to compare with       (default HEAD~1)
#   BENCH_ROUNDS    rounds per Worker                (default 5)
#   BENCH_REQUESTS  hits per round and kind of hit   (default 400)
#
# Prints, per kind of hit (a small JSON API answer, 70 KiB of JSON to a br client and to an
# identity client), the median CPU milliseconds per hit of each Worker and their ratio. The
# CPU is that of the workerd processes of each `wrangler dev` (its local proxy, the same for
# both, is left out); the ratio is the figure. Safe to re-run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

BASE=${BENCH_BASE:-HEAD~1}
ROUNDS=${BENCH_ROUNDS:-5}
REQUESTS=${BENCH_REQUESTS:-400}
BASE_TREE="$ROOT/target/bench-edge-base"

ensure_edge_tools
bash scripts/build-edge.sh

base_commit=$(git rev-parse "$BASE")
log "building the Worker at $BASE ($base_commit) in $BASE_TREE"
if [ ! -d "$BASE_TREE/.git" ] && [ ! -f "$BASE_TREE/.git" ]; then
  git worktree add --detach "$BASE_TREE" "$base_commit" >/dev/null
else
  git -C "$BASE_TREE" checkout --quiet --detach "$base_commit"
fi
(cd "$BASE_TREE" && bash scripts/build-edge.sh)

scratch_space

# The origin: scripts/peers/cacheable-origin.py (small and large JSON).
ORIGIN_PORT=$(free_port)
python3 "$ROOT/scripts/peers/cacheable-origin.py" "$ORIGIN_PORT" &
PIDS+=($!)

start_edge() { # name dir port
  set -m
  (cd "$2" && WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false \
    "$ROOT/node_modules/.bin/wrangler" dev --ip 127.0.0.1 --port "$3" --inspector-port "$(free_port)" \
    --var "ORIGIN_URL:http://127.0.0.1:$ORIGIN_PORT" --persist-to "$WORK/state-$1" \
    --show-interactive-dev-session=false --log-level warn >"$WORK/edge-$1.log" 2>&1) &
  PIDS+=($!)
  echo $! >"$WORK/pgid-$1"
  set +m
  for _ in $(seq 240); do (exec 3<>"/dev/tcp/127.0.0.1/$3") 2>/dev/null && return; sleep 0.25; done
  die "the $1 Worker did not start: $(tail -20 "$WORK/edge-$1.log")"
}
CURRENT_PORT=$(free_port)
BASE_PORT=$(free_port)
log "starting both Workers in workerd"
start_edge current "$ROOT" "$CURRENT_PORT"
start_edge base "$BASE_TREE" "$BASE_PORT"

cat >"$WORK/measure.cjs" <<'EOF'
const fs = require('fs');
const { execSync } = require('child_process');
const [current, base, rounds, requests, work] = process.argv.slice(2);
const workers = [
  { name: 'current', url: current, pgid: fs.readFileSync(`${work}/pgid-current`, 'utf8').trim() },
  { name: 'base', url: base, pgid: fs.readFileSync(`${work}/pgid-base`, 'utf8').trim() },
];
function cpu(pgid) {
  const pids = execSync(`pgrep -g ${pgid} || true`).toString().split('\n').filter(Boolean);
  return pids.reduce((sum, pid) => {
    try {
      // workerd alone: wrangler's local proxy (node) costs the same for both Workers.
      if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'workerd') return sum;
      const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return sum + (Number(fields[11]) + Number(fields[12])) / 100;
    } catch { return sum; }
  }, 0);
}
const kinds = [
  { name: 'small JSON hit', path: '/api/small', encoding: 'identity' },
  { name: '70 KiB JSON hit, br client', path: '/api/large', encoding: 'br' },
  { name: '70 KiB JSON hit, identity client', path: '/api/large', encoding: 'identity' },
];
async function hits(worker, kind, count) {
  const before = cpu(worker.pgid);
  for (let i = 0; i < count; i++) {
    const response = await fetch(worker.url + kind.path, { headers: { 'accept-encoding': kind.encoding } });
    await response.arrayBuffer();
    const status = response.headers.get('cache-status') || '';
    if (response.status !== 200 || !status.includes('hit')) throw new Error(`${worker.name} ${kind.path}: ${response.status} ${status}`);
  }
  return ((cpu(worker.pgid) - before) * 1000) / count;
}
const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)];
(async () => {
  for (const worker of workers) for (const kind of kinds) {
    await (await fetch(worker.url + kind.path)).arrayBuffer(); // store it
    await hits(worker, kind, 50); // warm
  }
  for (const kind of kinds) {
    const samples = { current: [], base: [] };
    for (let round = 0; round < Number(rounds); round++) {
      const order = round % 2 ? [...workers].reverse() : workers;
      for (const worker of order) samples[worker.name].push(await hits(worker, kind, Number(requests)));
    }
    const [c, b] = [median(samples.current), median(samples.base)];
    console.log(`${kind.name}: current ${c.toFixed(3)} ms, base ${b.toFixed(3)} ms of CPU per hit: ${(c / b).toFixed(2)}x`);
  }
})().catch((error) => { console.error(error); process.exit(1); });
EOF
log "measuring: $ROUNDS rounds of $REQUESTS hits per Worker and kind"
node "$WORK/measure.cjs" "http://127.0.0.1:$CURRENT_PORT" "http://127.0.0.1:$BASE_PORT" "$ROUNDS" "$REQUESTS" "$WORK"
