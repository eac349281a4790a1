#!/usr/bin/env bash
# The Debian 13 (trixie) packages of the trixie test guest (GUEST=trixie tests/guest/build.sh),
# pinned in tests/guest/trixie.lock: one line per package, "name version arch sha256", the
# dependency closure of ROOTS below as apt resolves it (no recommends), plus the kernel.
#
#   tests/guest/trixie-debs.sh CACHE_DIR        make CACHE_DIR/debs/ hold exactly the locked .debs
#   tests/guest/trixie-debs.sh --update-lock CACHE_DIR
#                                               resolve the closure afresh and rewrite the lock
#
# The .debs come through apt with a private configuration under CACHE_DIR/apt/ (lists, cache,
# an empty dpkg status; this machine's apt state is not touched), pointed at the archive that
# this machine's own apt sources name, suite trixie. apt checks every .deb against the signed
# InRelease (keyring /usr/share/keyrings/debian-archive-keyring.gpg, which holds trixie's keys
# since debian-archive-keyring 2023.3+deb12u1), then this script checks it against the lock.
# Cached: when every locked .deb is in CACHE_DIR/debs/ with its sha256, nothing is fetched.
# When the archive has moved on (a locked version is gone), the build fails and says to run
# --update-lock: no silent fallback to other versions.
set -euo pipefail
update=0
if [[ ${1:-} == --update-lock ]]; then update=1; shift; fi
[[ $# == 1 ]] || { echo "usage: $0 [--update-lock] CACHE_DIR" >&2; exit 2; }
CACHE=$(realpath -m -- "$1")
cd "$(dirname "$0")/../.."
LOCK=$PWD/tests/guest/trixie.lock
SUITE=trixie
ARCH=amd64
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# What the guest needs (the bookworm guest's set, trixie's names). systemd-standalone-sysusers
# satisfies openssh-server's "systemd | systemd-sysusers" without the whole of systemd.
ROOTS=(busybox-static bash dash coreutils util-linux mount e2fsprogs lvm2 dmsetup thin-provisioning-tools
  kmod grep sed findutils gzip tar diffutils procps xz-utils
  openssh-server openssh-client openssh-sftp-server systemd-standalone-sysusers
  python3.13 python3 python3-lxml python3-paramiko python3-zstandard
  libc6 libgcc-s1 libssl3t64 openssl-provider-legacy)

die() { echo "trixie debs: ERROR: $*" >&2; exit 1; }
source tests/setup/apt-archive.sh  # debian_archive_uri
log() { echo "trixie debs: $*"; }

DEBS=$CACHE/debs
APT=$CACHE/apt
mkdir -p "$DEBS"

[[ $(dpkg --print-architecture) == "$ARCH" ]] || die "pinned for $ARCH only"
for t in apt-get apt-cache gpg sha256sum; do
  command -v "$t" >/dev/null || die "$t not found"
done

deb_file() { echo "$DEBS/${1}_${2//:/%3a}_${3}.deb"; } # NAME VERSION ARCH

apt_opts=()
apt_ready=0
apt_setup() { # private apt configuration and fresh trixie lists (once per run)
  ((apt_ready)) && return 0
  local uri
  # the archive this machine's apt uses (deb822 or one-line sources), suite trixie instead
  uri=$(debian_archive_uri)
  [[ -n $uri ]] || die "cannot find the Debian archive in this machine's apt sources"
  gpg --no-default-keyring --keyring "$KEYRING" --list-keys 2>/dev/null | grep -q '(13/trixie)' ||
    die "$KEYRING holds no Debian 13 (trixie) archive key: upgrade debian-archive-keyring"
  mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/empty"
  echo "deb [signed-by=$KEYRING] $uri $SUITE main" >"$APT/sources.list"
  : >"$APT/status"
  # no preferences, no other sources, an empty dpkg status: the closure is the full one
  apt_opts=(-o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=$APT/empty"
    -o "Dir::Etc::Preferences=$APT/empty/none" -o "Dir::Etc::PreferencesParts=$APT/empty"
    -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" -o "Dir::State::status=$APT/status"
    -o "APT::Architecture=$ARCH" -o "APT::Architectures::=$ARCH" -o APT::Sandbox::User=root
    -o APT::Install-Recommends=false -o APT::Install-Suggests=false)
  log "apt-get update ($SUITE main)"
  apt-get "${apt_opts[@]}" update -qq || die "apt-get update of the $SUITE lists failed"
  apt_ready=1
}

# apt_download NAME=VERSION...: into $DEBS (apt verifies each against the signed index)
apt_download() {
  local out
  if ! out=$(cd "$DEBS" && apt-get "${apt_opts[@]}" download -q "$@" 2>&1); then
    echo "$out" | grep -v 'unsandboxed as root' >&2
    return 1
  fi
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

if ((update)); then
  apt_setup
  kpkg=$(apt-cache "${apt_opts[@]}" depends linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
  [[ -n $kpkg ]] || die "cannot tell which linux-image package linux-image-amd64 depends on in $SUITE"
  # the closure of ROOTS; the kernel alone (its own dependencies, initramfs-tools and the
  # like, are for installed systems)
  sim=$(apt-get "${apt_opts[@]}" install -s --no-install-recommends "${ROOTS[@]}") ||
    die "apt cannot resolve ${ROOTS[*]} in $SUITE"
  kver=$(apt-cache "${apt_opts[@]}" show --no-all-versions "$kpkg" | awk '$1 == "Version:" { print $2; exit }')
  mapfile -t pins < <({
    sed -n 's/^Inst \([^ ]*\) (\([^ ]*\) .*\[\([a-z0-9]*\)\]).*/\1 \2 \3/p' <<<"$sim"
    echo "$kpkg $kver $ARCH"
  } | LC_ALL=C sort -u)
  ((${#pins[@]} > 20)) || die "the resolved closure looks wrong (${#pins[@]} packages)"
  specs=()
  for p in "${pins[@]}"; do
    read -r n v a <<<"$p"
    [[ -f $(deb_file "$n" "$v" "$a") ]] || specs+=("$n=$v")
  done
  if ((${#specs[@]})); then
    log "downloading ${#specs[@]} packages"
    apt_download "${specs[@]}" || die "apt-get download failed"
  fi
  release=$(awk '$1 == "Date:" { $1 = ""; print substr($0, 2); exit }' "$APT"/lists/*_dists_${SUITE}_InRelease)
  tmp=$LOCK.tmp.$$
  {
    echo "# Debian $SUITE packages of the trixie test guest: name version arch sha256."
    echo "# Written by tests/guest/trixie-debs.sh --update-lock (make guest-lock); do not edit."
    echo "# archive: $SUITE main, InRelease of $release"
    echo "# roots: ${ROOTS[*]}"
    echo "# kernel: $kpkg"
    for p in "${pins[@]}"; do
      read -r n v a <<<"$p"
      f=$(deb_file "$n" "$v" "$a")
      [[ -f $f ]] || die "$f missing after the download"
      echo "$n $v $a $(sha "$f")"
    done
  } >"$tmp"
  mv -f "$tmp" "$LOCK"
  log "wrote $LOCK (${#pins[@]} packages, kernel $kpkg $kver)"
fi

# --- Make the cache match the lock ----------------------------------------------------------------
[[ -f $LOCK ]] || die "$LOCK missing: run 'make guest-lock'"
[[ $(sed -n 's/^# roots: //p' "$LOCK") == "${ROOTS[*]}" ]] ||
  die "$LOCK was made for other packages than $0 asks for: run 'make guest-lock'"
mapfile -t pins < <(grep -v '^#' "$LOCK" | grep .)
# Hashing 150 MB takes seconds: a stamp of the lock and the files' sizes and times, written
# after a full check, stands for it while nothing changed.
stamp() {
  sha256sum "$LOCK" | cut -d' ' -f1
  for p in "${pins[@]}"; do
    read -r n v a _ <<<"$p"
    stat -c '%n %s %Y' "$(deb_file "$n" "$v" "$a")" 2>/dev/null || echo "missing $n"
  done
}
if [[ -f $DEBS/.verified && $(stamp | sha256sum) == "$(cat "$DEBS/.verified")" ]]; then
  log "${#pins[@]} packages as pinned in $LOCK (checked before)"
  exit 0
fi
rm -f "$DEBS/.verified"
missing=()
for p in "${pins[@]}"; do
  read -r n v a s <<<"$p"
  [[ $n =~ ^[a-z0-9][a-z0-9.+-]*$ && $v =~ ^[A-Za-z0-9.+:~-]+$ && $a =~ ^[a-z0-9]+$ && $s =~ ^[0-9a-f]{64}$ ]] ||
    die "$LOCK: malformed line: $p"
  f=$(deb_file "$n" "$v" "$a")
  [[ -f $f && $(sha "$f") == "$s" ]] || missing+=("$n=$v")
done
if ((${#missing[@]})); then
  apt_setup
  log "downloading ${#missing[@]} locked packages"
  if ! apt_download "${missing[@]}"; then
    die "the $SUITE archive no longer has every version pinned in $LOCK (it has moved on):" \
      "run 'make guest-lock' to pin the current ones, then commit $LOCK"
  fi
fi
for p in "${pins[@]}"; do
  read -r n v a s <<<"$p"
  f=$(deb_file "$n" "$v" "$a")
  got=$(sha "$f")
  [[ $got == "$s" ]] || die "$f: sha256 $got, but $LOCK pins $s"
done
# what the cache holds beyond the lock (older pins) is removed
declare -A want=()
for p in "${pins[@]}"; do read -r n v a _ <<<"$p"; want[$(deb_file "$n" "$v" "$a")]=1; done
for f in "$DEBS"/*.deb; do
  [[ -e $f && -z ${want[$f]:-} ]] && rm -f "$f"
done
stamp | sha256sum >"$DEBS/.verified"
log "${#pins[@]} packages as pinned in $LOCK"
