#!/usr/bin/env bash
# make test: the host checks (make unit, lint, docs-check, bench-smoke, one after the other) and the
# Debian 13 guest's targets run beside the integration targets in the Debian 12 guest; their output is
# kept in tests/output/host-checks.log and tests/output/integration-trixie.log and shown when they end.
# Every check runs even after another failed; the exit status is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
LOG=tests/output/host-checks.log
mkdir -p tests/output
t0=$(date +%s)
ok() { (($1 == 0)) && echo passed || echo FAILED; }

host_checks() {
  local t start rc failed=0
  for t in unit lint docs-check bench-smoke; do
    echo "=== make $t"
    start=$(date +%s)
    # nice: the guest's targets are the long pole; these fit in their shadow
    nice -n 5 make --no-print-directory "$t"
    rc=$?
    echo "=== make $t: $(ok $rc) in $(( $(date +%s) - start )) s"
    ((rc == 0)) || failed=1
  done
  return $failed
}

# Two QEMU guests side by side (each one's emulated CPU mostly keeps one host core busy). Both run
# the modules' targets; the role targets are split so that neither guest is the long pole by much:
# replicate on Debian 13 (the fleet smoke runs the role on Debian 12 too), backup and format2 on
# Debian 12 (its older zstandard and cryptography take format 2's fallback paths). Every target
# runs in every make test; `tests/integration/run.sh` alone runs all of them on one guest.
DEB12_TARGETS=(lvdiff lvdiff_info lvpatch send receive restore backup format2 fleet-smoke)
TRIXIE_TARGETS=(lvdiff lvdiff_info lvpatch send receive restore replicate)
TRIXIE_LOG=tests/output/integration-trixie.log

host_checks >"$LOG" 2>&1 &
host_pid=$!
{
  GUEST=trixie tests/integration/run.sh "${TRIXIE_TARGETS[@]}"
  rc=$?
  echo "=== Debian 13 guest: ended $(( $(date +%s) - t0 )) s after make test began"
  exit $rc
} >"$TRIXIE_LOG" 2>&1 &
trixie_pid=$!
trap 'kill "$host_pid" "$trixie_pid" 2>/dev/null' INT TERM
echo "=== host checks (unit, lint, docs-check, bench-smoke) started beside the integration targets: $LOG"
echo "=== Debian 13 guest: ${TRIXIE_TARGETS[*]} started beside them: $TRIXIE_LOG"

echo "=== Debian 12 guest: ${DEB12_TARGETS[*]}"
tests/integration/run.sh "${DEB12_TARGETS[@]}"
integration_rc=$?
echo "=== Debian 12 guest: integration $(ok $integration_rc) in $(( $(date +%s) - t0 )) s"

wait "$trixie_pid"
trixie_rc=$?
echo "=== Debian 13 guest: output"
cat "$TRIXIE_LOG"
echo "=== Debian 13 guest: integration $(ok $trixie_rc)"
wait "$host_pid"
host_rc=$?
echo "=== host checks: output"
cat "$LOG"
echo "=== make test: integration Debian 12 $(ok $integration_rc), Debian 13 $(ok $trixie_rc)," \
  "host checks $(ok $host_rc), in $(( $(date +%s) - t0 )) s"
((integration_rc == 0 && trixie_rc == 0 && host_rc == 0))
