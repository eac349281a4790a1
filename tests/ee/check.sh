#!/usr/bin/env bash
# make ee-check: the collection's execution-environment files (meta/execution-environment.yml,
# requirements.txt, bindep.txt) as ansible-builder reads them. Offline and a few seconds:
#  1. ansible-builder introspect on the checkout: the EE gets exactly paramiko from pip, and no system
#     package (every bindep entry is a managed host's, profile "managed", which builds skip);
#  2. bindep: its default profile selects nothing here, the "managed" profile the managed hosts' list;
#  3. ansible-builder create of tests/ee/execution-environment.yml with the built collection tarball:
#     the build context (Containerfile, the collection, its requirements) is written.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VENV=${VENV:-.venv}
[[ $VENV = /* ]] || VENV=$ROOT/$VENV
export PATH=$VENV/bin:$PATH
OUT=$ROOT/tests/output/ee
die() { echo "ee-check: FAILED: $*" >&2; exit 1; }

rm -rf "$OUT" && mkdir -p "$OUT/cols/ansible_collections/lvdiff"
ln -s "$ROOT" "$OUT/cols/ansible_collections/lvdiff/thin"

# 1. What ansible-builder gathers from the collection (it also validates the files' syntax).
ansible-builder introspect --sanitize --write-pip "$OUT/pip.txt" --write-bindep "$OUT/bindep.txt" "$OUT/cols" \
  >"$OUT/introspect.log" 2>&1 || { cat "$OUT/introspect.log"; die "ansible-builder introspect"; }
cat "$OUT/introspect.log"
pip_reqs=$(sed 's/ *#.*//' "$OUT/pip.txt" | grep -v '^$' || true)
[[ $pip_reqs == 'paramiko>=2.4' ]] || die "the EE's pip requirements are '$pip_reqs', expected paramiko>=2.4 alone"
unmanaged=$(sed 's/ *#.*//' "$OUT/bindep.txt" | grep -v '^$' | grep -v '\[managed[] ]' || true)
[[ -z $unmanaged ]] || die "bindep entries without the managed profile would go into the EE: $unmanaged"

# 2. bindep's own reading of bindep.txt.
[[ -z $(bindep -l newline -f bindep.txt) ]] || die "bindep's default profile selects packages: $(bindep -l newline -f bindep.txt)"
managed=$(bindep -l newline -f bindep.txt managed | paste -sd' ' -)
for p in lvm2 thin-provisioning-tools python3-lxml; do
  [[ " $managed " == *" $p "* ]] || die "bindep -l newline managed lacks $p: $managed"
done
echo "bindep managed (this platform): $managed"

# 3. An EE definition holding the built collection, turned into a build context.
ansible-galaxy collection build --output-path "$OUT/build" . >/dev/null
mkdir -p "$OUT/ee"
cp "$OUT"/build/lvdiff-thin-*.tar.gz "$OUT/ee/lvdiff-thin.tar.gz"
cp tests/ee/execution-environment.yml tests/ee/requirements.yml "$OUT/ee/"
(cd "$OUT/ee" && ansible-builder create -f execution-environment.yml -c context --output-filename Containerfile) \
  >"$OUT/create.log" 2>&1 || { cat "$OUT/create.log"; die "ansible-builder create"; }
tail -n 1 "$OUT/create.log"
[[ -s $OUT/ee/context/Containerfile ]] || die "no Containerfile in $OUT/ee/context"
cmp -s "$OUT/ee/lvdiff-thin.tar.gz" "$OUT/ee/context/_build/lvdiff-thin.tar.gz" ||
  die "the build context lacks the collection tarball"
grep -q 'lvdiff-thin.tar.gz' "$OUT/ee/context/_build/requirements.yml" || die "the context's requirements.yml lacks the collection"
echo "ee-check: passed"
