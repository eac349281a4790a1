#!/usr/bin/env bash
# make demo: boot the guest, run demo.yml, print the verified report, always stop the guest.
set -euo pipefail
cd "$(dirname "$0")/../.."
trap 'tests/guest/stop.sh >/dev/null 2>&1 || true' EXIT
start=$(date +%s)
tests/guest/start.sh
# shellcheck disable=SC1091
source tests/output/guest/env.sh
export ANSIBLE_COLLECTIONS_PATH=$PWD/tests/output/collections ANSIBLE_NOCOLOR=1
report=$PWD/tests/output/demo-report.txt
rm -f "$report"
.venv/bin/ansible-playbook -i "$GUEST_INVENTORY" tests/demo/demo.yml -e "report_file=$report"
echo
cat "$report"
echo "demo finished in $(( $(date +%s) - start )) s"
