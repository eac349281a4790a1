#!/usr/bin/env bash
# The quick ad hoc commands an operator types, against the running guest.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck disable=SC1091
source "${GUEST_OUT:-tests/output/guest}/env.sh"
export ANSIBLE_COLLECTIONS_PATH=$PWD/tests/output/collections ANSIBLE_NOCOLOR=1 ANSIBLE_CALLBACK_RESULT_FORMAT=json
A="${ANSIBLE_BIN:-.venv/bin}/ansible -i $GUEST_INVENTORY"

guest_ssh src 'set -e; lvremove -qq -y vgsrc/adhoc vgsrc/adhoc-s1 2>/dev/null || true
  lvcreate -qq -T vgsrc/pool -V 32m -n adhoc
  dd if=/dev/urandom of=/dev/vgsrc/adhoc bs=64k count=16 conv=fsync status=none
  lvcreate -qq -s -pr -n adhoc-s1 vgsrc/adhoc; mkdir -p /tmp/it'

out=$($A src -m lvdiff.thin.lvdiff -a "vg=vgsrc lv=adhoc-s1 dest=/tmp/it/adhoc.full")
echo "$out"
grep -q 'src | CHANGED' <<<"$out"
grep -q '"data_chunks": 16' <<<"$out"
if grep -Eq '"(mode|owner|state)":' <<<"$out"; then echo "stat fields of dest in the result" >&2; exit 1; fi
out=$($A src -m lvdiff.thin.lvdiff -a "vg=vgsrc lv=adhoc-s1 dest=/tmp/it/adhoc.full")
grep -q 'src | SUCCESS' <<<"$out"   # idempotent
out=$($A src -m lvdiff.thin.lvdiff_info -a "src=/tmp/it/adhoc.full verify=true")
grep -q '"verified": true' <<<"$out"
out=$($A src -m lvdiff.thin.lvdiff -a "vg=vgsrc lv=nope dest=/tmp/it/x" 2>&1 || true)
grep -q 'src | FAILED! => ' <<<"$out" && grep -q 'volume vgsrc/nope does not exist' <<<"$out"
if grep -q Traceback <<<"$out"; then echo "a traceback instead of a message" >&2; exit 1; fi
guest_ssh src 'lvremove -qq -y vgsrc/adhoc vgsrc/adhoc-s1; rm -f /tmp/it/adhoc.full'
echo "ad hoc checks passed"
