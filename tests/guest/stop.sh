#!/usr/bin/env bash
# Powers the lvdiff test guest off (`make guest-stop`): `poweroff` over SSH, then SIGTERM and
# SIGKILL to its QEMU (only the one whose pid file is tests/output/guest/run/qemu.pid) after
# bounded waits. Removes the per-boot state, inventory.ini and env.sh (the console log is kept
# as console.last.log); keeps the built images and keys. Succeeds when no guest runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck disable=SC2034 # REPO is read by lib.sh
REPO=$PWD
source tests/guest/lib.sh

[[ -d $OUT ]] || { echo "guest: not running"; exit 0; }
exec 7>"$OUT/.start.lock"
flock -w 300 7 || { echo "guest: ERROR: another start/stop holds $OUT/.start.lock" >&2; exit 1; }
if pid=$(guest_pid); then
  t=$(now)
  stop_guest
  echo "guest: stopped (qemu pid $pid) in $(elapsed "$t") s"
else
  stop_guest
  echo "guest: not running"
fi
