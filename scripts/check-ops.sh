#!/usr/bin/env bash
# Checks the operations files: the Prometheus alert rules (ops/prometheus/alerts.yml), their unit
# tests, the example scrape configuration, and that every alert has a test and a runbook section
# (ops/runbook.md) its runbook_url points at. Installs promtool if it is missing. Safe to re-run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_prometheus
dir=ops/prometheus

log "checking the alert rules"
promtool check rules "$dir/alerts.yml" || die "promtool check rules failed"

log "unit-testing the alerts"
promtool test rules "$dir/alerts_test.yml" "$dir/alerts_slow_burn_test.yml" \
  || die "an alert unit test failed"

log "checking the scrape configuration"
promtool check config "$dir/prometheus.yml" || die "promtool check config failed"

log "checking that every alert has tests and a runbook section"
alerts=$(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$dir/alerts.yml" | sort -u)
[ -n "$alerts" ] || die "no alerts found in $dir/alerts.yml"
for alert in $alerts; do
  grep -q "alertname: $alert\$" "$dir/alerts_test.yml" "$dir/alerts_slow_burn_test.yml" \
    || die "alert $alert has no unit test"
  grep -qx "## $alert" ops/runbook.md || die "alert $alert has no section (## $alert) in ops/runbook.md"
done
# Every runbook_url names an existing section: its anchor is a heading, lower-cased.
anchors=$(sed -n 's/^## \(.*\)$/\1/p' ops/runbook.md | tr '[:upper:]' '[:lower:]')
urls=$(grep -o 'runbook_url: *"[^"]*"' "$dir/alerts.yml" | sed 's/.*"\(.*\)"/\1/' | sort -u)
for url in $urls; do
  case $url in
    ops/runbook.md#*) ;;
    *) die "runbook_url $url does not point into ops/runbook.md" ;;
  esac
  grep -qx "${url#*#}" <<<"$anchors" || die "runbook_url $url: no such section in ops/runbook.md"
done
[ "$(grep -c 'runbook_url:' "$dir/alerts.yml")" -eq "$(grep -c -- '- alert:' "$dir/alerts.yml")" ] \
  || die "an alert in $dir/alerts.yml has no runbook_url"

log "operations checks passed ($(wc -w <<<"$alerts") alerts)"
