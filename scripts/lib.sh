# Shared set-up steps for scripts/*.sh. Each `ensure_*` installs what is missing and does nothing
# when it is already there, so every script is safe to re-run.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKER_BUILD_VERSION=0.8.7
CARGO_FUZZ_VERSION=0.13.2
CARGO_DENY_VERSION=0.20.2
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

APT_UPDATED=
# Another apt (a second setup run, unattended upgrades) may hold dpkg's lock: wait for it.
APT_WAIT=(-o DPkg::Lock::Timeout=600)
apt_install() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand"
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    as_root apt-get "${APT_WAIT[@]}" update -qq
    APT_UPDATED=1
  fi
  log "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get "${APT_WAIT[@]}" install -y -qq "${missing[@]}" >/dev/null
}

ensure_node() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || die "Node.js >= 20 is required for wrangler 4 (found $(node --version))"
}

ensure_npm_packages() {
  ensure_node
  if [ ! -x "$ROOT/node_modules/.bin/wrangler" ] || [ ! -x "$ROOT/node_modules/.bin/wasm-opt" ] \
     || [ ! -d "$ROOT/node_modules/playwright-core" ] \
     || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
    log "installing npm packages (wrangler, binaryen, playwright-core)"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Debian's Chromium, which the status page's browser test drives through playwright-core
# (an npm package without a browser of its own).
ensure_chromium() {
  apt_install chromium
}

cargo_tool() { # cargo_tool <crate> <version> <binary>
  local crate=$1 version=$2 binary=$3
  if ! "$binary" --version 2>/dev/null | grep -q -- "$version"; then
    log "cargo install $crate@$version (a few minutes, once)"
    # The tool's own lock file first; if one of its locked versions has left the registry
    # (yanked), the newest compatible versions instead.
    cargo install --locked --quiet "$crate@$version" \
      || cargo install --quiet "$crate@$version"
  fi
}

# The wasm-bindgen CLI must equal the wasm-bindgen crate in Cargo.lock exactly.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

ensure_edge_tools() {
  ensure_npm_packages
  [ -f "$ROOT/Cargo.lock" ] || (cd "$ROOT" && cargo generate-lockfile)
  cargo_tool worker-build "$WORKER_BUILD_VERSION" worker-build
  cargo_tool wasm-bindgen-cli "$(wasm_bindgen_version)" wasm-bindgen
  ensure_wasm_target
  # libaom and libwebp are C: clang compiles them for wasm32 against wasi-libc's headers;
  # libaom builds with CMake, and natively (the imaging tests) with nasm for its x86 assembly.
  apt_install clang llvm wasi-libc libc++-14-dev-wasm32 cmake nasm
}

# Prefer an installed rustup wasm32 target; otherwise build std for wasm32 with Debian's rustc.
# (`rustup target add` hangs without internet, so it is never attempted here.)
# RAMPART_WASM_ROUTE=debian forces the offline route.
ensure_wasm_target() {
  if [ "${RAMPART_WASM_ROUTE:-}" != debian ] \
     && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    WASM_ROUTE=rustup
  else
    apt_install rustc-web rust-web-src lld-22
    WASM_ROUTE=debian
  fi
}

# Environment for building wasm32: worker-build's tool overrides and, on the Debian route, the
# std build flags. Builds go to target/wasm (target/wasm-debian on the Debian route, whose rustc
# differs) so they never mix with native builds or with each other.
wasm_env() {
  export CARGO_TARGET_DIR="$ROOT/target/wasm"
  export WASM_BINDGEN_BIN WASM_OPT_BIN ESBUILD_BIN
  WASM_BINDGEN_BIN=$(command -v wasm-bindgen)
  WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
  ESBUILD_BIN="$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"
  # C for wasm32 (libaom, libwebp): clang, with wasi-libc's headers and imaging/wasm32's
  # setjmp.h, never the host's. wasi-libc declares the C library for WASI only, so the C is
  # compiled for wasm32-wasi, whose objects link into the wasm32-unknown-unknown Worker; the
  # imaging crate supplies the few C library functions they call. libc++'s headers are there
  # for the one C++ file libaom's build compiles (a library the Worker does not link).
  local wasm32="$ROOT/imaging/wasm32" wasi="${WASI_INCLUDE:-/usr/include/wasm32-wasi}"
  local headers="-nostdlibinc -isystem $wasm32/include -isystem $wasi"
  export CC_wasm32_unknown_unknown=clang CXX_wasm32_unknown_unknown=clang++ AR_wasm32_unknown_unknown=llvm-ar
  export CFLAGS_wasm32_unknown_unknown="--target=wasm32-wasi $headers"
  export CXXFLAGS_wasm32_unknown_unknown="--target=wasm32-wasi -fno-exceptions -nostdlibinc -isystem ${LIBCXX_INCLUDE:-/usr/lib/llvm-14/include/wasm32-wasi/c++/v1} $headers"
  export CMAKE_TOOLCHAIN_FILE_wasm32_unknown_unknown="$wasm32/toolchain.cmake"
  if [ "${WASM_ROUTE:-}" = debian ]; then
    export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort
    CARGO_TARGET_DIR="$ROOT/target/wasm-debian"
  fi
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then return 0; fi
  apt_install redis-server
  log "starting Redis on 127.0.0.1:6379"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/rampart.log
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
  die "Redis did not start (see /var/log/redis/rampart.log)"
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then ensure_postgres_db; return 0; fi
  apt_install postgresql
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $version on 127.0.0.1:5432"
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q "rampart: trust loopback" "$hba"; then
    as_root sed -i '1i # rampart: trust loopback (test machines only)\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL did not start"
  ensure_postgres_db
}

ensure_postgres_db() {
  if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='test'" 2>/dev/null | grep -q 1; then
    as_root su postgres -c "createdb test" 2>/dev/null || psql -h 127.0.0.1 -U postgres -c "create database test" >/dev/null
  fi
}

# Prometheus (Debian package `prometheus`): promtool checks and unit-tests the alert rules, and
# the dashboard test runs a real server that scrapes an origin and evaluates every panel's
# query. Where
# systemd runs, installing the package also starts a Prometheus server (:9090) and a node
# exporter (:9100): the tests start their own, so those are stopped and disabled again.
ensure_prometheus() {
  command -v promtool >/dev/null && [ -x /usr/bin/prometheus ] && return 0
  apt_install prometheus
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    as_root systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
  fi
  command -v promtool >/dev/null || die "promtool missing after installing the prometheus package"
}

# The image benchmarks' measuring tools: the `dssim` tool (DSSIM against a reference; AGPL,
# run as a program, never linked) and sharp under target/bench-images (libvips: the peer of
# bench-images.sh, and the decoder of WebP and AVIF for both benchmarks). Sets BENCH_NODE.
IMAGE_BENCH_SHARP_VERSION=0.35.5
IMAGE_BENCH_DSSIM_VERSION=3.5.1
ensure_image_bench_tools() {
  BENCH_NODE="$ROOT/target/bench-images"
  ensure_node
  if ! cargo install --list | grep -q "^dssim v$IMAGE_BENCH_DSSIM_VERSION:"; then
    log "cargo install dssim@$IMAGE_BENCH_DSSIM_VERSION (the DSSIM measure; a few minutes, once)"
    cargo install --locked --quiet "dssim@$IMAGE_BENCH_DSSIM_VERSION"
  fi
  local version="\"version\": \"$IMAGE_BENCH_SHARP_VERSION\""
  if [ ! -f "$BENCH_NODE/node_modules/sharp/package.json" ] \
     || ! grep -q "$version" "$BENCH_NODE/node_modules/sharp/package.json"; then
    log "installing sharp@$IMAGE_BENCH_SHARP_VERSION under target/bench-images"
    mkdir -p "$BENCH_NODE"
    # A package.json of its own, so that npm installs here and not into the project's packages.
    [ -f "$BENCH_NODE/package.json" ] || echo '{"private": true}' >"$BENCH_NODE/package.json"
    (cd "$BENCH_NODE" && npm install --no-audit --no-fund --loglevel=error --no-save \
      "sharp@$IMAGE_BENCH_SHARP_VERSION" >/dev/null)
  fi
}

# nginx_headers_of <url>: nginx `add_header` lines sending a URL's response headers, so that
# nginx puts the same bytes on the wire (it writes its own Date, Content-Length, Content-Type
# and ETag).
nginx_headers_of() {
  curl -sfI "$1" | tr -d '\r' | awk -F': ' 'NR > 1 && NF >= 2 && tolower($1) !~ /^(date|content-length|content-type|etag|connection)$/ {
    name = $1; $1 = ""; value = substr($0, 2); gsub(/"/, "\\\"", value)
    printf "      add_header %s \"%s\" always;\n", name, value }'
}

# scratch_space: a temporary directory in $WORK and an empty list $PIDS; when the script exits,
# every process in PIDS (with its process group, when it leads one) is stopped and WORK removed.
scratch_space() {
  WORK=$(mktemp -d)
  PIDS=()
  trap stop_and_clean EXIT
}
stop_and_clean() {
  for pid in "${PIDS[@]}"; do kill -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
