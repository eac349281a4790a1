#!/usr/bin/env bash
# Integration target for the role lvdiff.thin.backup, against the test guest (run by tests/integration/run.sh,
# which boots the guest and exports GUEST_INVENTORY and ANSIBLE_*). A simulated month of backups of one volume
# of src into a repository directory on dst (a plain directory, no LVM there), the clock injected through
# backup_now (no sleeping): fulls and incrementals by policy, writes and discards between runs, pruning. Then
# three points restored on dst and compared by sha256 with the source at that time, from the repository and
# from a copy of it. Idempotent runs are checked on the recap: changed=0. Then a transfer killed midway and
# resumed by the next run, and a second host (dst) with the same VG/LV names backing up into the same repository.
set -euo pipefail
cd "$(dirname "$0")"
: "${GUEST_INVENTORY:?run through tests/integration/run.sh, or export GUEST_INVENTORY}"
export ANSIBLE_CALLBACK_RESULT_FORMAT=${ANSIBLE_CALLBACK_RESULT_FORMAT:-yaml}
BK_WORK=$(mktemp -d)
export BK_WORK
LOG=$BK_WORK/log
trap 'rm -rf "$BK_WORK"' EXIT
step=0

run() { # run PLAYBOOK [ansible-playbook args...]
  step=$((step + 1))
  echo "=== backup step $step: $*"
  local t0=$SECONDS
  ansible-playbook -i "$GUEST_INVENTORY" "$@" | tee "$LOG"
  echo "=== backup step $step: passed in $((SECONDS - t0)) s"
}

unchanged() { # the last run changed nothing on src
  grep -Eq "^src +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0 " "$LOG" ||
    { echo "backup: the last run reported changes on src (expected changed=0)"; exit 1; }
}

run setup.yml
run check.yml --check
unchanged
run month.yml
run rerun.yml
unchanged
run rerun.yml --check
unchanged
run restore.yml
run killed.yml
run two_hosts.yml
run cleanup.yml
echo "backup: all $step steps passed"
