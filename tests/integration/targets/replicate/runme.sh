#!/usr/bin/env bash
# Integration target for the role lvdiff.thin.replicate, against the test guest (run by
# tests/integration/run.sh, which boots the guest and exports GUEST_INVENTORY and ANSIBLE_*).
# Each step is a real ansible-playbook run, as an operator would run the role; the steps build on
# each other. Idempotent runs are checked on the recap too: changed=0, for every host.
set -euo pipefail
cd "$(dirname "$0")"
: "${GUEST_INVENTORY:?run through tests/integration/run.sh, or export GUEST_INVENTORY}"
export ANSIBLE_CALLBACK_RESULT_FORMAT=${ANSIBLE_CALLBACK_RESULT_FORMAT:-yaml}
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
step=0

# REP_FROM=N (development only) skips steps before N, for a guest already in the state they leave.
run() { # run PLAYBOOK [ansible-playbook args...]
  step=$((step + 1))
  if [[ $step -lt ${REP_FROM:-0} ]]; then echo "=== replicate step $step: $* (skipped: REP_FROM)"; : >"$LOG"; return; fi
  echo "=== replicate step $step: $*"
  local t0=$SECONDS
  ansible-playbook -i "$GUEST_INVENTORY" "$@" | tee "$LOG"
  echo "=== replicate step $step: passed in $((SECONDS - t0)) s"
}

unchanged() { # the last run changed nothing on any of the hosts named
  local h
  [[ -s $LOG ]] || return 0
  for h in "$@"; do
    grep -Eq "^$h +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0 " "$LOG" ||
      { echo "replicate: the last run reported changes on $h (expected changed=0)"; exit 1; }
  done
}

run setup.yml
run first.yml --check
unchanged src
run first.yml
run rerun.yml
unchanged src
run rerun.yml --check
unchanged src
run write.yml -e rep_write=incr
run incremental.yml --check
unchanged src
run incremental.yml
run rerun.yml
unchanged src
run write.yml -e rep_write=big
run killed.yml
run resumed.yml
run write.yml -e rep_write=big -e rep_seek=160
run killed.yml -e rep_corrupt=true
run corrupted.yml
run resumed.yml -e rep_expect=zero
run write.yml -e rep_write=small
run relay.yml
run two_hosts.yml
run multi.yml
run rerun.yml -e rep_hosts=src:dst
unchanged src dst
run cleanup.yml
echo "replicate: all $step steps passed"
