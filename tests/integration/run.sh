#!/usr/bin/env bash
# Boots the test guest, runs every integration target and the ad hoc checks against it,
# and always powers the guest off. Fails (never skips) when the guest cannot start.
# Usage: tests/integration/run.sh [target ...]   (default: all, and fleet-smoke: bench-fleet's N=2 run)
# A target with an executable runme.sh (script target, as in ansible-test) runs that script, with
# GUEST_INVENTORY and the ANSIBLE_* settings below in its environment; the others run as roles
# through main.yml. GUEST_OUT relocates the guest (tests/guest/README.md), e.g. for a second guest;
# GUEST=trixie runs them on the Debian 13 flavor (tests/output/guest-trixie unless GUEST_OUT says).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
# shellcheck disable=SC2034 # REPO is read by lib.sh
REPO=$ROOT
source tests/guest/lib.sh   # OUT: the flavor's guest directory
trap 'tests/guest/stop.sh || true' EXIT
export GUEST_OUT=$OUT
tests/guest/start.sh
# shellcheck disable=SC1091
source "$GUEST_OUT/env.sh"
export GUEST_INVENTORY
export ANSIBLE_COLLECTIONS_PATH=$ROOT/tests/output/collections
export ANSIBLE_ROLES_PATH=$ROOT/tests/integration/targets
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0
export ANSIBLE_CALLBACK_RESULT_FORMAT=yaml
ANSIBLE=${ANSIBLE_BIN:-$ROOT/.venv/bin}  # ANSIBLE_BIN: another ansible-core (tests/matrix/run.sh)

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] ||
  targets=(lvdiff lvdiff_info lvpatch send receive restore replicate backup format2 fleet-smoke)
passed=0 failed=0
for t in "${targets[@]}"; do
  echo "=== integration target $t"
  start=$(date +%s)
  if [[ $t == fleet-smoke ]]; then  # the replicate role on 2 volumes (tests/bench/fleet.py --smoke)
    cmd=(env FLEET_GUEST_RUNNING=1 "$ANSIBLE/python" tests/bench/fleet.py --smoke)
  elif [[ -x tests/integration/targets/$t/runme.sh ]]; then
    cmd=(env "PATH=$ANSIBLE:$PATH" "tests/integration/targets/$t/runme.sh")
  else
    cmd=("$ANSIBLE/ansible-playbook" -i "$GUEST_INVENTORY" tests/integration/main.yml -e "{\"targets\": [\"$t\"]}")
  fi
  if "${cmd[@]}"; then
    passed=$((passed + 1)); echo "=== $t: passed in $(( $(date +%s) - start )) s"
  else
    failed=$((failed + 1)); echo "=== $t: FAILED"
  fi
done

echo "=== ad hoc: ansible src -m lvdiff.thin.lvdiff_info"
if tests/integration/adhoc.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "=== adhoc: FAILED"; fi

tests/guest/stop.sh
trap - EXIT
echo "integration: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
