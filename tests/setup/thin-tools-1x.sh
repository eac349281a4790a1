#!/usr/bin/env bash
# The second generation of thin-provisioning-tools for the unit tests: Debian 13 (trixie)'s
# Rust tools 1.1.x, fetched as the pinned .deb, checked against its pinned sha256, unpacked
# with dpkg -x (nothing installed on the system) into tests/output/thin-tools/1.x/, with
# bin/ holding the thin_* commands. make deps runs this; the metadata tests then run against
# both this and the system's 0.9.0 (tests/support/thintools.py), and fail if it is missing.
#
# The .deb comes through apt with a private source list, lists and cache under
# tests/output/thin-tools/apt/ (the system's apt configuration is not touched), pointed at
# the Debian archive that this machine's own apt sources name, suite trixie. Cached: with
# the .deb already there and matching, nothing is fetched.
#
# glibc: trixie's pdata_tools 1.1.0 needs GLIBC_2.34 at most, and bookworm has 2.36, so it
# runs on this machine's C library (checked below: the tool must print its version).
set -euo pipefail
cd "$(dirname "$0")/../.."

PKG=thin-provisioning-tools
VERSION=1.1.0-4+b1
ARCH=amd64
SHA256=b63ea01ec3ab5e8c98752787e0805deb33eb4ce803a717d61069ea31295c7c7f
TOOLS=(thin_check thin_delta thin_dump thin_ls thin_restore thin_metadata_size)

OUT=$PWD/tests/output/thin-tools
DEST=$OUT/1.x
DEB=$OUT/cache/${PKG}_${VERSION//:/%3a}_${ARCH}.deb
die() { echo "thin-tools 1.x: ERROR: $*" >&2; exit 1; }
source tests/setup/apt-archive.sh  # debian_archive_uri

[[ $(dpkg --print-architecture) == "$ARCH" ]] || die "pinned for $ARCH only (this is $(dpkg --print-architecture))"

ok() { [[ -f $DEB && $(sha256sum "$DEB" | cut -d' ' -f1) == "$SHA256" ]]; }
if [[ -f $DEST/.sha256 && $(cat "$DEST/.sha256") == "$SHA256" ]] && ok; then
  exit 0
fi

if ! ok; then
  # The archive this machine's apt uses (deb822 or one-line sources), suite trixie instead.
  uri=$(debian_archive_uri)
  [[ -n $uri ]] || die "cannot find the Debian archive in this machine's apt sources"
  apt_dir=$OUT/apt
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$OUT/cache"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main" >"$apt_dir/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o Dir::State::status=/dev/null
            -o APT::Sandbox::User=root)
  echo "thin-tools 1.x: fetching $PKG $VERSION (Debian trixie)"
  apt-get "${apt_opts[@]}" update -qq || die "apt-get update of the trixie lists failed"
  rm -f "$OUT/cache/${PKG}_"*.deb
  (cd "$OUT/cache" && apt-get "${apt_opts[@]}" download -qq "$PKG=$VERSION") ||
    die "cannot download $PKG=$VERSION: if trixie has moved on, pin the new version and its sha256 in $0"
  ok || die "$DEB: sha256 $(sha256sum "$DEB" | cut -d' ' -f1), pinned $SHA256"
fi

rm -rf "$DEST.tmp" && mkdir -p "$DEST.tmp/bin"
dpkg -x "$DEB" "$DEST.tmp/root"
# pdata_tools is a multi-call binary: the name it is called by picks the tool.
for t in "${TOOLS[@]}"; do ln -s ../root/usr/sbin/pdata_tools "$DEST.tmp/bin/$t"; done
got=$("$DEST.tmp/bin/thin_delta" --version 2>&1) ||
  die "the unpacked thin_delta does not run here: $got"
[[ $got == 1.1.* ]] || die "the unpacked thin_delta says version '$got', expected 1.1.x"
echo "$SHA256" >"$DEST.tmp/.sha256"
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
echo "thin-tools 1.x: $DEST/bin (thin_delta $got)"
