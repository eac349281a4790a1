#!/usr/bin/env bash
# Installs everything `make test` needs on a fresh Debian 12 machine (as root):
# the Debian packages, then a virtualenv with the pinned Python packages.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
# make test runs make unit and make integration side by side (tests/test.sh): one install at a time.
mkdir -p tests/output
exec 9>tests/output/.deps.lock
flock -w 1800 9 || { echo "deps: another deps run holds tests/output/.deps.lock" >&2; exit 1; }

APT_PACKAGES=(
  thin-provisioning-tools lvm2             # the tools our modules drive
  qemu-system-x86 busybox-static cpio kmod # the real-LVM test guest
  openssh-server openssh-client python3-lxml
  python3-zstandard python3-cryptography   # diff format 2 on the controller's system Python (the venv pins its own)
  python3-paramiko lz4 e2fsprogs procps    # copied into (lz4: packs) the guest's initramfs
  util-linux xz-utils                     # xz: the trixie guest's kernel modules (.ko.xz)
  rsync shellcheck                         # make lint: the collection copy, ansible-test's shellcheck
  zstd                                     # make bench: the zstd floor of format 2 (e2fsprogs: its ext4 volumes)
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

VENV=${VENV:-.venv}
stamp="$VENV/.requirements.sha1"
# Pinned: the tests' own packages, the tools of make lint, the tools of make docs.
REQUIREMENTS=(tests/requirements.txt tests/requirements-lint.txt tests/requirements-docs.txt)
want=$(cat "${REQUIREMENTS[@]}" | sha1sum | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "deps: building $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${REQUIREMENTS[@]/#/-r}"
  echo "$want" > "$stamp"
fi

# The Rust thin-provisioning-tools 1.1.x beside the system's 0.9.0, for the unit tests (both, every run).
tests/setup/thin-tools-1x.sh
