#!/usr/bin/env bash
# Builds the lvdiff test guest into tests/output/guest/ (see tests/guest/README.md):
#   vmlinuz          Debian's own kernel (the linux-image that linux-image-amd64 depends on)
#   initramfs.img    the whole root file system: busybox init, LVM2, dmsetup, thin tools,
#                    Python 3.11 with lxml and paramiko, OpenSSH (sshd, sftp-server, ssh),
#                    coreutils, util-linux, e2fsprogs, kmod and the kernel modules needed
#   id_ed25519       the controller's test key (root on both guest hosts)
#   guest_root_ed25519, ssh_host_ed25519_key   root's key inside the guest, the host key
# Cached: rebuilds only when an input changes (this script, tests/guest/rootfs/, the kernel
# package, the versions of the Debian packages copied in, the keys). Keys are generated once
# and never committed (tests/output/ is ignored). FORCE=1 rebuilds anyway.
#
# GUEST=trixie builds the Debian 13 flavor into tests/output/guest-trixie/ instead: the same
# layout, but kernel and root come from trixie's .debs pinned in tests/guest/trixie.lock
# (fetched and checked by tests/guest/trixie-debs.sh, cached in cache/debs/, unpacked with
# dpkg-deb), not from this machine's files. The lock is part of the cache key.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
source tests/guest/lib.sh   # GUEST_FLAVOR, OUT
HERE=$REPO/tests/guest

die() { echo "guest build: ERROR: $*" >&2; exit 1; }
log() { echo "guest build: $*"; }

[[ $(id -u) == 0 ]] || die "must run as root (device nodes, root-owned files in the initramfs)"
for t in apt-get apt-cache dpkg dpkg-deb dpkg-query depmod modprobe cpio ssh-keygen ldd flock lz4 xz; do
  command -v "$t" >/dev/null || die "$t not found: run 'make deps' (tests/setup/deps.sh)"
done

mkdir -p "$OUT/cache"
exec 8>"$OUT/.build.lock"
flock -w 900 8 || die "another build holds $OUT/.build.lock"

MODULES=(crc32c_generic dm_thin_pool dm_snapshot loop virtio_pci virtio_net virtio_blk virtio_rng ext4)

if [[ $GUEST_FLAVOR == trixie ]]; then
  # --- Debian 13: the pinned .debs (the kernel among them) -------------------------------------
  LOCK=$HERE/trixie.lock
  "$HERE/trixie-debs.sh" "$OUT/cache"
  KPKG=$(sed -n 's/^# kernel: //p' "$LOCK")
  [[ $KPKG == linux-image-* ]] || die "$LOCK names no kernel package"
  read -r _ kv ka _ < <(awk -v p="$KPKG" '$1 == p' "$LOCK")
  KDEB=$OUT/cache/debs/${KPKG}_${kv//:/%3a}_${ka}.deb
  [[ -f $KDEB ]] || die "$KDEB missing"
  KVER=${KPKG#linux-image-}
  mapfile -t ROOT_DEBS < <(awk '!/^#/ && NF == 4 { gsub(/:/, "%3a", $2); print $1 "_" $2 "_" $3 ".deb" }' "$LOCK" |
                           grep -v "^${KPKG}_")
else
# --- Packages copied from this (Debian 12) machine into the guest -------------------------
BIN_PACKAGES=(busybox-static bash dash coreutils util-linux mount e2fsprogs lvm2 dmsetup
  thin-provisioning-tools kmod grep sed findutils gzip tar diffutils procps)
OTHER_PACKAGES=(openssh-server openssh-client openssh-sftp-server python3.11 python3.11-minimal
  libpython3.11-stdlib libpython3.11-minimal python3-lxml python3-paramiko python3-zstandard libc6 libssl3)
# with their python3-* dependencies; paramiko's include python3-cryptography (format 2's AES-256-GCM), and
# python3-zstandard compresses format 2 diffs (its libzstd comes with the ldd closure below)
PY_DIST_ROOTS=(python3-lxml python3-paramiko python3-zstandard)

# python3-* packages needed by PY_DIST_ROOTS (their Depends, recursively)
py_closure() {
  local -A seen=()
  local queue=("${PY_DIST_ROOTS[@]}") p d v
  local -A provider=()
  while read -r p v; do
    for v in $(tr ',' '\n' <<<"$v" | sed 's/(.*)//; s/ //g'); do provider[$v]=$p; done
  done < <(dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Provides}\n' 'python3-*' |
           awk '$1 == "ii" && NF > 2 { $1 = ""; print }')
  while ((${#queue[@]})); do
    p=${queue[0]}; queue=("${queue[@]:1}")
    [[ -n ${seen[$p]:-} ]] && continue
    seen[$p]=1
    echo "$p"
    for d in $(dpkg-query -W -f='${Depends}' "$p" | tr ',|' '\n\n' | sed 's/(.*)//; s/:any//; s/ //g'); do
      [[ $d == python3-* ]] || continue
      # virtual packages (python3-cffi-backend-api-max) count as the package providing them
      [[ -n ${provider[$d]:-} ]] && d=${provider[$d]}
      if dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q 'install ok installed'; then
        queue+=("$d")
      fi
    done
  done
}
mapfile -t PY_PACKAGES < <(py_closure | sort)
ALL_PACKAGES=("${BIN_PACKAGES[@]}" "${OTHER_PACKAGES[@]}" "${PY_PACKAGES[@]}")
missing=()
for p in "${ALL_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]} == 0)) || die "Debian packages missing on this machine: ${missing[*]} (run 'make deps')"

# --- The kernel package -----------------------------------------------------------------------
kernel_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
KPKG=${GUEST_KERNEL_PKG:-$(kernel_pkg)}
if [[ -z $KPKG ]]; then
  log "apt lists do not know linux-image-amd64; running apt-get update"
  apt-get update -qq
  KPKG=$(kernel_pkg)
fi
[[ -n $KPKG ]] || die "cannot tell which linux-image package linux-image-amd64 depends on"
KVER=${KPKG#linux-image-}
KDEB=$(ls "$OUT/cache/${KPKG}"_*.deb 2>/dev/null | tail -n 1 || true)
want_ver=$(apt-cache policy "$KPKG" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
if [[ -z $KDEB || ( -n $want_ver && $want_ver != "(none)" && $KDEB != *"_${want_ver//:/%3a}_"* ) ]]; then
  log "downloading $KPKG ${want_ver:-}"
  rm -f "$OUT/cache/${KPKG}"_*.deb
  (cd "$OUT/cache" && apt-get download -qq "$KPKG" 2>&1 | grep -v 'unsandboxed as root' || true)
  KDEB=$(ls "$OUT/cache/${KPKG}"_*.deb 2>/dev/null | tail -n 1 || true)
  [[ -n $KDEB ]] || die "apt-get download $KPKG failed"
fi
fi  # flavor

# --- Keys (generated once) ---------------------------------------------------------------
for k in id_ed25519 guest_root_ed25519 ssh_host_ed25519_key; do
  [[ -f $OUT/$k ]] || ssh-keygen -q -t ed25519 -N '' -C "lvdiff-test-guest $k" -f "$OUT/$k"
done

# --- Cache key ---------------------------------------------------------------------------
key=$(
  {
    echo "kernel $KPKG $(basename "$KDEB")"
    echo "modules ${MODULES[*]}"
    (cd "$HERE" && find build.sh rootfs -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    (cd "$HERE" && find rootfs -print0 | LC_ALL=C sort -z | xargs -0 stat -c '%n %a')
    if [[ $GUEST_FLAVOR == trixie ]]; then
      echo "flavor trixie"
      (cd "$HERE" && sha256sum trixie.lock trixie-debs.sh lib.sh)
    else
      dpkg-query -W -f='${Package} ${Version}\n' "${ALL_PACKAGES[@]}"
    fi
    cat "$OUT/id_ed25519.pub" "$OUT/guest_root_ed25519.pub" "$OUT/ssh_host_ed25519_key.pub"
  } | sha256sum | cut -c1-16
)
if [[ -z ${FORCE:-} && -f $OUT/build.key && $(cat "$OUT/build.key") == "$key" &&
      -f $OUT/vmlinuz && -f $OUT/initramfs.img ]]; then
  log "up to date ($OUT, key $key)"
  exit 0
fi

t0=$(date +%s.%N)
log "building $GUEST_FLAVOR (key $key, kernel $KVER)"
rm -f "$OUT/build.key"
TMP=$OUT/tmp
rm -rf "$TMP"
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT
ST=$TMP/root          # staging tree of the initramfs
KX=$TMP/kernel        # the extracted kernel package

# --- Kernel and modules ------------------------------------------------------------------------
dpkg -x "$KDEB" "$KX"
[[ -f $KX/boot/vmlinuz-$KVER ]] || die "no boot/vmlinuz-$KVER in $KDEB"
# trixie's kernel package has its modules in /usr/lib/modules (merged /usr)
[[ -d $KX/usr/lib/modules && ! -e $KX/lib ]] && ln -s usr/lib "$KX/lib"
depmod -b "$KX" "$KVER"

mkdir -p "$ST"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/bin,usr/local/sbin}
ln -s usr/bin "$ST/bin"; ln -s usr/sbin "$ST/sbin"; ln -s usr/lib "$ST/lib"; ln -s usr/lib64 "$ST/lib64"
mkdir -p "$ST"/{dev,proc,sys,run/sshd,tmp,var/log,var/tmp,srv,root/.ssh,etc/ssh,mnt}
chmod 1777 "$ST/tmp" "$ST/var/tmp"
chmod 700 "$ST/root" "$ST/root/.ssh"
mknod -m 600 "$ST/dev/console" c 5 1
mknod -m 666 "$ST/dev/null" c 1 3

MD=lib/modules/$KVER
mkdir -p "$ST/$MD"
for m in "${MODULES[@]}"; do
  if grep -q "/${m//_/[_-]}\.ko\$" "$KX/$MD/modules.builtin"; then continue; fi
  deps=$(modprobe -d "$KX" -S "$KVER" --show-depends "$m") || die "module $m not found in $KPKG"
  while read -r verb path _; do
    [[ $verb == insmod ]] || continue
    rel=${path#"$KX"/}
    mkdir -p "$ST/$(dirname "$rel")"
    # trixie compresses modules (.ko.xz): unpacked here, so the guest's modprobe needs no xz
    # and the boot does not decompress under emulation (the initramfs is compressed anyway)
    if [[ $rel == *.ko.xz ]]; then
      xz -dc "$path" >"$ST/${rel%.xz}"
    else
      cp "$path" "$ST/$rel"
    fi
  done <<<"$deps"
done
cp "$KX/$MD"/modules.{order,builtin,builtin.modinfo} "$ST/$MD/"
depmod -b "$ST" "$KVER"

# busybox for everything else (not for what the real tools in the tree provide), and as /init
busybox_links() {
  local a
  for a in $("$ST/usr/bin/busybox" --list); do
    case $a in busybox|init|linuxrc|sh|ash) continue ;; esac
    [[ -e $ST/usr/bin/$a || -L $ST/usr/bin/$a || -e $ST/usr/sbin/$a || -L $ST/usr/sbin/$a ]] ||
      ln -s /usr/bin/busybox "$ST/usr/bin/$a"
  done
  ln -s usr/bin/busybox "$ST/init"
}

if [[ $GUEST_FLAVOR == trixie ]]; then
# --- Files from the pinned trixie packages ------------------------------------------------------
# Unpacked over the merged-/usr skeleton above (--keep-directory-symlink: a package's ./bin/ goes
# to usr/bin); documentation, translations and Python's unused parts are left out.
for deb in "${ROOT_DEBS[@]}"; do
  dpkg-deb --fsys-tarfile "$OUT/cache/debs/$deb" |
    tar -x -C "$ST" --keep-directory-symlink --no-same-owner \
      --exclude=./usr/share/doc --exclude=./usr/share/man --exclude=./usr/share/info \
      --exclude=./usr/share/locale --exclude=./usr/share/lintian --exclude=./usr/share/bug \
      --exclude=./usr/lib/python3.13/test --exclude=./usr/lib/python3.13/idlelib \
      --exclude=./usr/lib/python3.13/tkinter --exclude=./usr/lib/python3.13/turtledemo \
      --exclude=./usr/lib/python3.13/pydoc_data --exclude=./usr/lib/python3.13/ensurepip \
      --exclude='./usr/lib/python3.13/config-3.13-*' ||
    die "cannot unpack $deb"
done
# what maintainer scripts would have done: the /bin/sh link, busybox for what nothing else provides
ln -sf dash "$ST/usr/bin/sh"
busybox_links
[[ -e $ST/usr/bin/python3 ]] || ln -s python3.13 "$ST/usr/bin/python3"
# every shared library any ELF file here needs, resolved by trixie's own loader in the tree
# (the host's ldd would use this machine's glibc)
elf_list=$TMP/elfs
find "$ST/usr" -type f \( -perm -u+x -o -name '*.so*' \) \
  -exec sh -c 'head -c 4 "$1" | grep -q "ELF"' _ {} \; -print | sed "s|^$ST||" >"$elf_list"
cp "$elf_list" "$ST/elfs.txt"
# (--verify first: --list crashes on static binaries such as busybox)
# shellcheck disable=SC2016 # the script runs in the chroot's shell, which expands it
unresolved=$(chroot "$ST" /usr/bin/sh -c 'ld=/usr/lib64/ld-linux-x86-64.so.2; while read -r f; do
  $ld --verify "$f" >/dev/null 2>&1 || continue
  $ld --list "$f" 2>&1 | grep "not found" | sed "s|^|$f: |"; done </elfs.txt')
rm -f "$ST/elfs.txt"
[[ -z $unresolved ]] || die "unresolved libraries in the trixie tree: $(sort -u <<<"$unresolved" | head)"
else
# --- Files from this machine ------------------------------------------------------------------
# put PATH: copy a host file to the same path in the staging tree; symlinks stay symlinks and
# their targets are copied too.
put() {
  local src=$1 dst=$ST$1 t
  [[ -e $dst || -L $dst ]] && return 0
  [[ -e $src || -L $src ]] || die "missing on this machine: $src"
  mkdir -p "$(dirname "$dst")"
  cp -a "$src" "$dst"
  if [[ -L $src ]]; then
    t=$(readlink "$src")
    [[ $t == /* ]] || t=$(dirname "$src")/$t
    put "$(realpath -s "$t")"
  fi
}
pkg_files() { dpkg -L "$@" | while read -r f; do [[ -f $f || -L $f ]] && echo "$f"; done; }

# executables of BIN_PACKAGES (their /bin, /sbin, /usr/bin, /usr/sbin entries)
for f in $(dpkg -L "${BIN_PACKAGES[@]}" | grep -E '^(/usr)?/s?bin/[^/]+$'); do
  [[ -f $f || -L $f ]] && put "$f"
done
put /etc/mke2fs.conf
busybox_links
ln -sf dash "$ST/usr/bin/sh"

# OpenSSH
for f in /usr/sbin/sshd /usr/lib/openssh/sftp-server /usr/bin/ssh /usr/bin/scp /usr/bin/sftp \
         /usr/bin/ssh-keygen /usr/bin/ssh-keyscan /usr/bin/ssh-add /usr/bin/ssh-agent; do
  put "$f"
done

# Python 3.11 (Debian's), its standard library, and lxml + paramiko + zstandard with their dependencies
put /usr/bin/python3.11
ln -s python3.11 "$ST/usr/bin/python3"
tar -C / -cf - --exclude='usr/lib/python3.11/test' --exclude='usr/lib/python3.11/idlelib' \
  --exclude='usr/lib/python3.11/tkinter' --exclude='usr/lib/python3.11/turtledemo' \
  --exclude='usr/lib/python3.11/lib2to3' --exclude='usr/lib/python3.11/pydoc_data' \
  --exclude='usr/lib/python3.11/ensurepip' --exclude='usr/lib/python3.11/config-3.11-*' \
  usr/lib/python3.11 etc/python3.11 | tar -C "$ST" -xf -
for f in $(pkg_files "${PY_PACKAGES[@]}" | grep '^/usr/lib/python3/dist-packages/'); do put "$f"; done
# the byte code Debian compiled at installation (not in the package file lists)
while IFS= read -r d; do
  [[ -d $ST/${d%/__pycache__} ]] && cp -a "/$d" "$ST/${d%/__pycache__}/"
done < <(cd / && find usr/lib/python3/dist-packages -type d -name __pycache__)

# OpenSSL's providers (cryptography loads the legacy one) and its configuration
for f in $(pkg_files libssl3 | grep -E '/(ossl-modules|engines-3)/'); do put "$f"; done
[[ -f /etc/ssl/openssl.cnf ]] && put /etc/ssl/openssl.cnf

# libraries: everything ldd lists for the ELF files in the tree (the closure), plus
# libgcc_s (dlopen()ed by glibc for thread cancellation)
put /usr/lib/x86_64-linux-gnu/libgcc_s.so.1
mapfile -t elfs < <(find "$ST/usr" -type f \( -perm -u+x -o -name '*.so*' \) \
  -exec sh -c 'head -c 4 "$1" | grep -q "ELF"' _ {} \; -print)
for lib in $(printf '%s\0' "${elfs[@]}" | xargs -0 -n 64 ldd 2>/dev/null |
             awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(/ { print $1 }' |
             sort -u); do
  put "$lib"
done
if printf '%s\0' "${elfs[@]}" | xargs -0 -n 64 ldd 2>/dev/null | grep -q 'not found'; then
  die "unresolved libraries: $(printf '%s\0' "${elfs[@]}" | xargs -0 ldd 2>&1 | grep 'not found' | sort -u | head)"
fi

fi  # flavor

# --- Configuration ---------------------------------------------------------------------------
# SSH: the generated keys, root's client setup inside the guest
install -m 600 "$OUT/ssh_host_ed25519_key" "$ST/etc/ssh/ssh_host_ed25519_key"
install -m 644 "$OUT/ssh_host_ed25519_key.pub" "$ST/etc/ssh/ssh_host_ed25519_key.pub"
cat "$OUT/id_ed25519.pub" "$OUT/guest_root_ed25519.pub" >"$ST/root/.ssh/authorized_keys"
install -m 600 "$OUT/guest_root_ed25519" "$ST/root/.ssh/id_ed25519"
install -m 644 "$OUT/guest_root_ed25519.pub" "$ST/root/.ssh/id_ed25519.pub"
hostkey=$(cut -d' ' -f1,2 "$OUT/ssh_host_ed25519_key.pub")
echo "127.0.0.1,localhost,src,[127.0.0.1]:2222,[localhost]:2222,[src]:2222,dst,[dst]:2222 $hostkey" \
  >"$ST/root/.ssh/known_hosts"
cat >"$ST/root/.ssh/config" <<'EOF'
# Inside the lvdiff test guest: `ssh src ...` / `ssh dst ...` reach the two inventory hosts.
Host src
    HostName 127.0.0.1
    Port 22
Host dst
    HostName 127.0.0.1
    Port 2222
Host *
    User root
    IdentityFile /root/.ssh/id_ed25519
    BatchMode yes
    ConnectTimeout 10
EOF
chmod 600 "$ST/root/.ssh/authorized_keys" "$ST/root/.ssh/config" "$ST/root/.ssh/known_hosts"
cp -a "$HERE/rootfs/." "$ST/"
if [[ $GUEST_FLAVOR == trixie ]]; then
  # OpenSSH 9.8+ throttles a source address after failed or aborted connections; every
  # connection here comes from QEMU's one user-mode address, so a few aborted probes would
  # lock Ansible out. (Bookworm's 9.2 does not know the option.)
  for h in src dst; do echo 'PerSourcePenalties no' >>"$ST/etc/ssh/sshd_config.$h"; done
  # Debian compiles Python's byte code at installation (postinst); without it every import in
  # the guest compiles from source under emulation. unchecked-hash: this tree never changes.
  chroot "$ST" /usr/bin/python3 -m compileall -q --invalidation-mode unchecked-hash \
    /usr/lib/python3.13 /usr/lib/python3/dist-packages >/dev/null ||
    die "compiling the trixie tree's Python byte code failed"
fi
cat >"$ST/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/bash
sshd:x:100:65534:sshd privilege separation:/run/sshd:/usr/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/usr/bin/false
EOF
cat >"$ST/etc/group" <<'EOF'
root:x:0:
tty:x:5:
disk:x:6:
nogroup:x:65534:
EOF
echo 'root:*:19000:0:99999:7:::' >"$ST/etc/shadow"
echo 'sshd:*:19000:0:99999:7:::' >>"$ST/etc/shadow"
chmod 640 "$ST/etc/shadow"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n' >"$ST/etc/nsswitch.conf"
printf '127.0.0.1\tlocalhost src dst\n::1\tlocalhost\n' >"$ST/etc/hosts"
echo src >"$ST/etc/hostname"
touch "$ST/etc/fstab"
ln -sf /proc/self/mounts "$ST/etc/mtab"
cat >"$ST/etc/profile" <<'EOF'
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin
export DM_DISABLE_UDEV=1
EOF

# lvm.conf without udev; one LVM_SYSTEM_DIR per inventory host (set by its sshd), whose
# global_filter hides the other host's loop devices (see lvdiff-guest-prepare)
lvm_conf() { # FILTER
  cat <<EOF
# lvdiff test guest: no udev, no dmeventd, no lvmpolld, no devices file.
devices {
    obtain_device_list_from_udev = 0
    external_device_info_source = "none"
    use_devicesfile = 0
    scan_lvs = 0
    multipath_component_detection = 0
    md_component_detection = 0
    fw_raid_component_detection = 0
    global_filter = [ $1 ]
}
activation {
    udev_sync = 0
    udev_rules = 0
    verify_udev_operations = 0
    monitoring = 0
}
global {
    use_lvmpolld = 0
    use_lvmlockd = 0
    event_activation = 0
}
EOF
}
mkdir -p "$ST/etc/lvm" "$ST/etc/lvm-src" "$ST/etc/lvm-dst"
lvm_conf '"a|.*|"' >"$ST/etc/lvm/lvm.conf"
lvm_conf '"r|^/dev/loop[12]$|", "a|.*|"' >"$ST/etc/lvm-src/lvm.conf"
lvm_conf '"r|^/dev/loop0$|", "a|.*|"' >"$ST/etc/lvm-dst/lvm.conf"

# --- Sanity checks on the staging tree ----------------------------------------------------------
for f in init usr/sbin/sshd usr/sbin/lvm usr/sbin/dmsetup usr/sbin/thin_delta usr/sbin/pdata_tools \
         usr/bin/python3 usr/bin/kmod usr/sbin/modprobe usr/sbin/losetup usr/sbin/blkdiscard \
         usr/sbin/mkfs.ext4 usr/bin/mount usr/bin/sha256sum usr/bin/dd usr/bin/truncate \
         usr/bin/unshare usr/lib/openssh/sftp-server usr/bin/ssh \
         usr/lib/python3/dist-packages/lxml usr/lib/python3/dist-packages/paramiko \
         usr/lib/python3/dist-packages/zstandard usr/lib/python3/dist-packages/cryptography \
         etc/init.d/rcS usr/local/sbin/lvdiff-guest-prepare; do
  [[ -e $ST/$f ]] || die "missing in the guest tree: /$f"
done
chroot "$ST" /usr/bin/python3 -c 'import lxml.etree, paramiko, ssl, json, ctypes, zstandard
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
Cipher(algorithms.AES(bytes(32)), modes.GCM(bytes(12))).encryptor()
zstandard.ZstdCompressor(level=3).compress(b"x")' ||
  die "python3 in the guest tree cannot import lxml/paramiko/zstandard or use cryptography's AES-GCM"
chroot "$ST" /usr/sbin/sshd -t -f /etc/ssh/sshd_config.src || die "sshd_config.src invalid"
chroot "$ST" /usr/sbin/sshd -t -f /etc/ssh/sshd_config.dst || die "sshd_config.dst invalid"

# --- Images ----------------------------------------------------------------------------------
(cd "$ST" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) |
  lz4 -l -9 -q >"$TMP/initramfs.img"   # legacy lz4: the fastest for the kernel to unpack
cp "$KX/boot/vmlinuz-$KVER" "$TMP/vmlinuz"
mv -f "$TMP/vmlinuz" "$OUT/vmlinuz"
mv -f "$TMP/initramfs.img" "$OUT/initramfs.img"
echo "$KVER" >"$OUT/kernel.version"
echo "$key" >"$OUT/build.key"
t1=$(date +%s.%N)
log "done in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s: $OUT/vmlinuz, $OUT/initramfs.img" \
  "($(du -m "$OUT/initramfs.img" | cut -f1) MB compressed, $(du -sm "$ST" | cut -f1) MB unpacked)"
