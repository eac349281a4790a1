#!/usr/bin/env bash
# Proves the running lvdiff test guest works (start it first: `make guest`). Fails loudly.
#  1. src: thin volume, writes, two thin snapshots, reserve_metadata_snap on the tpool,
#     `thin_delta -m` on the _tmeta device (output checked), release; data checked
#     then mkfs.ext4, mount, blkdiscard, losetup --show on src
#  2. both hosts: python3 imports lxml and paramiko; each host sees only its own VGs;
#     the pool chunk sizes are 64 KiB (vgsrc, vgdst) and 256 KiB (vgodd)
#  3. SFTP to both hosts (a file round trip, checksums compared)
#  4. `ansible all -m ping` with the project venv against tests/output/guest/inventory.ini
#  5. inside the guest: ssh src -> dst and dst -> src as root with the guest key, and paramiko
#     from src to dst
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
source tests/guest/lib.sh

fail() { echo "smoke: FAILED: $*" >&2; exit 1; }
[[ -f $OUT/env.sh && -f $OUT/inventory.ini ]] || fail "no running guest ($OUT/env.sh missing): run 'make guest'"
source "$OUT/env.sh"
guest_pid >/dev/null || fail "the guest QEMU (pid file $RUN/qemu.pid) is not running: run 'make guest'"
ANSIBLE=$REPO/.venv/bin/ansible
[[ -x $ANSIBLE ]] || fail "$ANSIBLE missing: run 'make deps'"

T0=$(now)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# step NAME CMD...: runs CMD, shows its output only on failure
step() {
  local name=$1 t
  shift
  t=$(now)
  if "$@" >"$WORK/out" 2>&1; then
    echo "smoke: ok   $name ($(elapsed "$t") s)"
  else
    echo "smoke: FAIL $name ($(elapsed "$t") s); output:" >&2
    sed 's/^/    /' "$WORK/out" >&2
    fail "$name"
  fi
}

thin_scenario() {
  guest_ssh src bash -s <<'EOF'
set -euo pipefail
n=smoke$$ vg=vgsrc
tpool=$vg-pool-tpool tmeta=/dev/mapper/$vg-pool_tmeta
reserved=0
cleanup() {
  ((reserved)) && dmsetup message "$tpool" 0 release_metadata_snap
  lvremove -q -y "$vg/${n}_s2" "$vg/${n}_s1" "$vg/$n" >/dev/null 2>&1 || true
  rm -f "/tmp/$n.xml"
}
trap cleanup EXIT
chunk=$(lvs --noheadings --units b --nosuffix -o chunk_size $vg/pool | tr -d ' ')
[[ $chunk == 65536 ]] || { echo "chunk size of $vg/pool is $chunk, not 65536"; exit 1; }

lvcreate -q -V 64M -T $vg/pool -n $n
dd if=/dev/urandom of=/dev/$vg/$n bs=64K count=16 oflag=direct status=none          # chunks 0-15
lvcreate -q -s -kn -n ${n}_s1 $vg/$n
dd if=/dev/urandom of=/dev/$vg/$n bs=64K seek=100 count=8 oflag=direct status=none  # chunks 100-107
lvcreate -q -s -kn -n ${n}_s2 $vg/$n
id1=$(lvs --noheadings -o thin_id $vg/${n}_s1 | tr -d ' ')
id2=$(lvs --noheadings -o thin_id $vg/${n}_s2 | tr -d ' ')
sum() { dd if="$1" bs=64K count=108 status=none | sha256sum | cut -d' ' -f1; }
[[ $(sum /dev/$vg/$n) == $(sum /dev/$vg/${n}_s2) ]] || { echo "s2 differs from its origin"; exit 1; }
[[ $(sum /dev/$vg/$n) != $(sum /dev/$vg/${n}_s1) ]] || { echo "s1 equals the rewritten origin"; exit 1; }

dmsetup message "$tpool" 0 reserve_metadata_snap
reserved=1
held=$(dmsetup status "$tpool" | awk '{ print $7 }')
[[ $held != - ]] || { echo "no metadata snapshot held after reserve: $(dmsetup status "$tpool")"; exit 1; }
thin_delta -m --snap1 "$id1" --snap2 "$id2" "$tmeta" >"/tmp/$n.xml"
dmsetup message "$tpool" 0 release_metadata_snap
reserved=0
held=$(dmsetup status "$tpool" | awk '{ print $7 }')
[[ $held == - ]] || { echo "metadata snapshot still held after release: $held"; exit 1; }

cat "/tmp/$n.xml"
python3 - "/tmp/$n.xml" <<'PY'
import sys
from lxml import etree
root = etree.parse(sys.argv[1]).getroot()
assert root.tag == "superblock" and root.get("data_block_size") == "128", root.attrib
ranges = [(e.tag, e.get("begin"), e.get("length")) for e in root.iter("same", "different", "left_only", "right_only")]
want = [("same", "0", "16"), ("right_only", "100", "8")]
assert ranges == want, f"thin_delta ranges {ranges}, expected {want}"
print("thin_delta ranges as expected:", ranges)
PY
EOF
}

filesystem() { # a demo's needs: mkfs.ext4, mount, blkdiscard, losetup --show
  guest_ssh src bash -s <<'EOF'
set -euo pipefail
n=smokefs$$
trap 'umount /mnt/$n 2>/dev/null || true; lvremove -q -y vgsrc/$n >/dev/null 2>&1 || true; rmdir /mnt/$n 2>/dev/null || true' EXIT
lvcreate -q -V 128M -T vgsrc/pool -n $n
mkfs.ext4 -q /dev/vgsrc/$n
mkdir -p /mnt/$n
mount /dev/vgsrc/$n /mnt/$n
echo lvdiff >/mnt/$n/hello
umount /mnt/$n
blkdiscard -f /dev/vgsrc/$n
used=$(lvs --noheadings -o data_percent vgsrc/$n | tr -d ' ')
echo "after blkdiscard: $used% used"
[[ $used == 0.00 ]]
truncate -s 8M /tmp/$n.img
dev=$(losetup -f --show /tmp/$n.img)
losetup -d "$dev"
rm -f /tmp/$n.img
echo "losetup -f --show gave $dev"
EOF
}

python_imports() { # HOST
  guest_ssh "$1" 'python3 -c "import lxml.etree, paramiko; print(lxml.etree.__version__, paramiko.__version__)"'
}

own_vgs() { # HOST WANTED...
  local host=$1 got
  shift
  got=$(guest_ssh "$host" 'vgs --noheadings -o vg_name --sort vg_name' | tr -d ' ' | paste -sd' ')
  echo "$host sees VGs: $got"
  [[ $got == "$*" ]] || { echo "expected: $*"; return 1; }
  guest_ssh "$host" 'lvs --noheadings --units b --nosuffix -o vg_name,lv_name,chunk_size -S lv_name=pool'
}

chunks() {
  local got
  got=$(guest_ssh dst 'lvs --noheadings --units b --nosuffix -o chunk_size vgdst/pool vgodd/pool' | tr -d ' ' | paste -sd' ')
  echo "vgdst/pool vgodd/pool chunk sizes: $got"
  [[ $got == "65536 262144" ]]
}

sftp_roundtrip() { # HOST PORT
  local host=$1 port=$2
  head -c 1048576 /dev/urandom >"$WORK/up.bin"
  sftp -q "${SSH_OPTS[@]}" -P "$port" -b - root@127.0.0.1 <<EOF
put $WORK/up.bin /tmp/smoke-sftp.bin
get /tmp/smoke-sftp.bin $WORK/down.bin
rm /tmp/smoke-sftp.bin
EOF
  cmp "$WORK/up.bin" "$WORK/down.bin"
  echo "sftp $host: 1 MiB round trip identical"
}

ansible_ping() {
  ANSIBLE_NOCOLOR=1 "$ANSIBLE" -i "$OUT/inventory.ini" all -m ping
}

guest_to_guest() {
  local a b
  a=$(guest_ssh src 'ssh dst hostname; ssh -p 2222 root@127.0.0.1 hostname')
  b=$(guest_ssh dst 'ssh src hostname; ssh -p 22 root@127.0.0.1 hostname')
  echo "src -> dst: $a" | paste -sd' '
  echo "dst -> src: $b" | paste -sd' '
  [[ $(paste -sd' ' <<<"$a") == "dst dst" && $(paste -sd' ' <<<"$b") == "src src" ]]
}

paramiko_src_to_dst() {
  guest_ssh src python3 - <<'EOF'
import paramiko
c = paramiko.SSHClient()
c.load_system_host_keys()              # ~/.ssh/known_hosts
c.set_missing_host_key_policy(paramiko.RejectPolicy())
c.connect("127.0.0.1", port=2222, username="root", key_filename="/root/.ssh/id_ed25519",
          look_for_keys=False, allow_agent=False, timeout=20)
_, out, _ = c.exec_command("hostname")
name = out.read().decode().strip()
with c.open_sftp() as s:
    s.putfo(__import__("io").BytesIO(b"x" * 65536), "/tmp/smoke-paramiko.bin")
    size = s.stat("/tmp/smoke-paramiko.bin").st_size
    s.remove("/tmp/smoke-paramiko.bin")
c.close()
print("paramiko src -> dst:", name, "sftp size", size)
assert name == "dst" and size == 65536
EOF
}

step "src: thin volume, snapshots, reserve_metadata_snap, thin_delta -m, release" thin_scenario
step "src: mkfs.ext4, mount, blkdiscard, losetup --show" filesystem
step "src: python3 imports lxml, paramiko" python_imports src
step "dst: python3 imports lxml, paramiko" python_imports dst
step "src: sees only vgsrc" own_vgs src vgsrc
step "dst: sees only vgdst, vgodd" own_vgs dst vgdst vgodd
step "dst: chunk sizes 64 KiB (vgdst) and 256 KiB (vgodd)" chunks
step "src: sftp round trip" sftp_roundtrip src "$GUEST_SRC_PORT"
step "dst: sftp round trip" sftp_roundtrip dst "$GUEST_DST_PORT"
step "ansible all -m ping" ansible_ping
step "guest: ssh src -> dst, dst -> src" guest_to_guest
step "guest: paramiko src -> dst (exec, sftp)" paramiko_src_to_dst
echo "smoke: all passed in $(elapsed "$T0") s"
