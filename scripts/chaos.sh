#!/usr/bin/env bash
# The chaos campaign: starts its own Redis, PostgreSQL, three origins (each behind a delaying
# proxy) and the edge in workerd on loopback, sends steady reads and writes through the edge
# and directly at an origin, and injects each fault in turn: Redis frozen and killed,
# PostgreSQL restarted, its connections killed and a table locked, one origin killed and one
# drained, the network between the tiers slowed, every origin down. One row per fault; the
# table goes to target/chaos/<profile>/report.md (logs beside it). Fails when a row breaks
# what Rampart promises for its fault.
#
#   scripts/chaos.sh [short|full] [rampart-chaos options…]
#       --only redis, --only postgres, …   the faults whose names contain the word
#       --redis cluster                    the origins on a Redis Cluster (a primary is killed)
#
# short (the default; scripts/test.sh runs it) holds each fault a third as long as full.
# Installs what is missing. Safe to re-run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

PROFILE=${1:-short}
shift || true

ensure_redis
ensure_postgres
ensure_edge_tools
log "building the origin and the campaign (release)"
cargo build --quiet --release -p origin -p rampart-load
bash scripts/build-edge.sh

log "chaos campaign ($PROFILE)"
target/release/rampart-chaos --profile "$PROFILE" --origin target/release/origin \
  --repo "$ROOT" --out target/chaos "$@"
