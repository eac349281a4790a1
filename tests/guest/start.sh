#!/usr/bin/env bash
# Boots the lvdiff test guest (`make guest`; see tests/guest/README.md): builds it if needed,
# starts QEMU in the background (software emulation, user-mode networking with host forwards
# bound to 127.0.0.1 only, on free ports), waits until both inventory hosts answer over SSH,
# prepares their VGs and writes tests/output/guest/inventory.ini and env.sh.
# If the guest already runs and answers, it is reused. A failed start leaves no QEMU behind.
#
# Environment: GUEST_MEM (MiB, 4096), GUEST_SMP (2), GUEST_BOOT_TIMEOUT (s, 180),
# GUEST_POOL_MIB (size of each thin pool, 2048), GUEST_OUT (tests/output/guest).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck disable=SC2034 # REPO is read by lib.sh
REPO=$PWD
source tests/guest/lib.sh

MEM=${GUEST_MEM:-4096}
SMP=${GUEST_SMP:-2}
CPU=${GUEST_CPU:-qemu64}
TIMEOUT=${GUEST_BOOT_TIMEOUT:-180}
POOL_MIB=${GUEST_POOL_MIB:-2048}

die() { echo "guest: ERROR: $*" >&2; exit 1; }
for t in qemu-system-x86_64 ssh python3 flock timeout; do
  command -v "$t" >/dev/null || die "$t not found: run 'make deps'"
done

tests/guest/build.sh

mkdir -p "$OUT"
exec 7>"$OUT/.start.lock"
flock -w 300 7 || die "another start/stop holds $OUT/.start.lock"

prepare_vgs() { # on both hosts at once; their output is shown only when they fail
  local t h p pids=() failed=0
  t=$(now)
  for h in src dst; do
    p=$SRC_PORT; [[ $h == dst ]] && p=$DST_PORT
    ssh_to "$p" "lvdiff-guest-prepare $h $POOL_MIB" >"$RUN/prepare-$h.log" 2>&1 &
    pids+=($!)
  done
  for h in src dst; do
    if ! wait "${pids[0]}"; then
      echo "guest: preparing the VGs of $h failed:" >&2
      sed 's/^/    /' "$RUN/prepare-$h.log" >&2
      failed=1
    fi
    pids=("${pids[@]:1}")
  done
  ((failed == 0)) || die "VG preparation failed"
  grep -h '^lvdiff-guest-prepare:' "$RUN/prepare-src.log" "$RUN/prepare-dst.log" | sed 's/^lvdiff-guest-prepare/guest/'
  echo "guest: VGs ready in $(elapsed "$t") s"
}

# --- Reuse a running guest --------------------------------------------------------------------
if pid=$(guest_pid); then
  SRC_PORT=$(guest_ssh_port src || true)
  DST_PORT=$(guest_ssh_port dst || true)
  if [[ -n $SRC_PORT && -n $DST_PORT && -f $OUT/inventory.ini && -f $OUT/env.sh ]] &&
     timeout 30 ssh "${SSH_OPTS[@]}" -p "$SRC_PORT" root@127.0.0.1 true &&
     timeout 30 ssh "${SSH_OPTS[@]}" -p "$DST_PORT" root@127.0.0.1 true; then
    echo "guest: already running (qemu pid $pid, src 127.0.0.1:$SRC_PORT, dst 127.0.0.1:$DST_PORT)"
    if ! cmp -s "$RUN/build.key" "$OUT/build.key"; then
      echo "guest: WARNING: it runs an older build; 'make guest-stop guest' boots the new one" >&2
    fi
    prepare_vgs
    echo "guest: inventory $OUT/inventory.ini"
    exit 0
  fi
  echo "guest: a guest runs (pid $pid) but does not answer; stopping it" >&2
  stop_guest
fi

# --- Boot --------------------------------------------------------------------------------------
rm -f "$OUT/inventory.ini" "$OUT/env.sh"
rm -rf "$RUN"
mkdir -p "$RUN/cp"
chmod 700 "$RUN" "$RUN/cp"

started=0
ready=0
on_exit() {
  local rc=$?
  ((ready)) && return 0
  if ((started)); then
    echo "guest: start failed; stopping the guest. Console log tail ($RUN/console.log):" >&2
    if [[ -s $RUN/console.log ]]; then
      tail -n 40 "$RUN/console.log" | sed 's/^/    /' >&2
    else
      echo "    (empty: the kernel had not printed anything yet)" >&2
    fi
    stop_guest
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

free_ports() { # two distinct free TCP ports on 127.0.0.1
  python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

t_start=$(now)
for attempt in 1 2 3; do
  read -r SRC_PORT DST_PORT < <(free_ports)
  rm -f "$RUN/qemu.pid"
  # restrict=on: the guest can reach nothing outside; only the two forwards below get in.
  if qemu-system-x86_64 -nodefaults -no-user-config -name lvdiff-test-guest \
      -accel tcg,thread=multi -cpu "$CPU" -smp "$SMP" -m "$MEM" \
      -display none -monitor none -serial "file:$RUN/console.log" -no-reboot \
      -kernel "$OUT/vmlinuz" -initrd "$OUT/initramfs.img" \
      -append "console=ttyS0 quiet panic=-1 mitigations=off" \
      -nic "user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:$SRC_PORT-:22,hostfwd=tcp:127.0.0.1:$DST_PORT-:2222" \
      -device virtio-rng-pci \
      -daemonize -pidfile "$RUN/qemu.pid" 2>"$RUN/qemu.log" 7>&- 8>&-; then
    started=1
    break
  fi
  if grep -qi 'hostfwd\|forwarding rule\|address already in use' "$RUN/qemu.log" && ((attempt < 3)); then
    echo "guest: ports $SRC_PORT/$DST_PORT taken meanwhile; retrying" >&2
    continue
  fi
  cat "$RUN/qemu.log" >&2
  die "qemu-system-x86_64 failed to start"
done
pid=$(guest_pid) || die "qemu started but its pid file $RUN/qemu.pid is not usable"
printf 'GUEST_SRC_PORT=%s\nGUEST_DST_PORT=%s\n' "$SRC_PORT" "$DST_PORT" >"$RUN/ports"
cp "$OUT/build.key" "$RUN/build.key"
echo "guest: qemu pid $pid ($SMP vCPU, $MEM MiB), src 127.0.0.1:$SRC_PORT, dst 127.0.0.1:$DST_PORT; waiting for SSH (up to ${TIMEOUT} s)"

# --- Wait for both SSH servers --------------------------------------------------------------
deadline=$(($(date +%s) + TIMEOUT))
while :; do
  kill -0 "$pid" 2>/dev/null || die "qemu exited during boot"
  if grep -q 'lvdiff-guest: .*ERROR' "$RUN/console.log" 2>/dev/null; then
    die "the guest reported an error while booting"
  fi
  # Probe only once the guest says its sshd runs: before that, QEMU accepts the forwarded
  # connection and the client would wait for a banner that comes late.
  if grep -q 'lvdiff-guest: .*ready' "$RUN/console.log" 2>/dev/null &&
     timeout 20 ssh "${SSH_OPTS[@]}" -p "$SRC_PORT" root@127.0.0.1 true 2>/dev/null &&
     timeout 20 ssh "${SSH_OPTS[@]}" -p "$DST_PORT" root@127.0.0.1 true 2>/dev/null; then
    break
  fi
  (($(date +%s) < deadline)) || die "the guest did not answer over SSH within ${TIMEOUT} s"
  sleep 0.3
done
boot_s=$(elapsed "$t_start")
echo "guest: SSH up on src and dst $boot_s s after start"

prepare_vgs

# --- Inventory and env file ---------------------------------------------------------------------
cat >"$RUN/inventory.ini" <<EOF
# Written by tests/guest/start.sh for the guest booted $(date -u +%FT%TZ) (qemu pid $pid).
# Rewritten at every boot (ports change); tests/guest/README.md explains the variables.
[guest]
src ansible_port=$SRC_PORT guest_ssh_host=127.0.0.1 guest_ssh_port=22 guest_ssh_alias=src guest_vgs="['vgsrc']"
dst ansible_port=$DST_PORT guest_ssh_host=127.0.0.1 guest_ssh_port=2222 guest_ssh_alias=dst guest_vgs="['vgdst', 'vgodd']"

[guest:vars]
ansible_host=127.0.0.1
ansible_user=root
ansible_ssh_private_key_file=$KEY
ansible_python_interpreter=/usr/bin/python3
ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o LogLevel=ERROR'
ansible_host_key_checking=false
ansible_control_path_dir=$RUN/cp
ansible_pipelining=true
guest_ssh_user=root
guest_ssh_key=/root/.ssh/id_ed25519
EOF
{
  echo "# Written by tests/guest/start.sh for the guest booted $(date -u +%FT%TZ). Source it (bash)."
  printf 'GUEST_DIR=%q\n' "$OUT"
  printf 'GUEST_PID=%q\n' "$pid"
  printf 'GUEST_INVENTORY=%q\n' "$OUT/inventory.ini"
  printf 'GUEST_KEY=%q\n' "$KEY"
  printf 'GUEST_SRC_PORT=%q\n' "$SRC_PORT"
  printf 'GUEST_DST_PORT=%q\n' "$DST_PORT"
  printf 'GUEST_CONTROL_PATH_DIR=%q\n' "$RUN/cp"
  printf 'GUEST_CONSOLE_LOG=%q\n' "$RUN/console.log"
  printf 'GUEST_SSH=('; printf ' %q' ssh "${SSH_OPTS[@]}"; echo ' )   # array: "${GUEST_SSH[@]}" -p PORT root@127.0.0.1'
  printf 'GUEST_SSH_SRC=%q\n' "$(printf '%q ' ssh "${SSH_OPTS[@]}" -p "$SRC_PORT" root@127.0.0.1)"
  printf 'GUEST_SSH_DST=%q\n' "$(printf '%q ' ssh "${SSH_OPTS[@]}" -p "$DST_PORT" root@127.0.0.1)"
  cat <<'EOF'
# guest_ssh src|dst [CMD...]: ssh as root to that inventory host of the guest
guest_ssh() {
  local port
  case ${1:-} in
    src) port=$GUEST_SRC_PORT ;;
    dst) port=$GUEST_DST_PORT ;;
    *) echo "usage: guest_ssh src|dst [command...]" >&2; return 2 ;;
  esac
  shift
  "${GUEST_SSH[@]}" -p "$port" root@127.0.0.1 "$@"
}
EOF
} >"$RUN/env.sh"
mv -f "$RUN/inventory.ini" "$OUT/inventory.ini"
mv -f "$RUN/env.sh" "$OUT/env.sh"
ready=1

echo "guest: ready $(elapsed "$t_start") s after start (SSH after $boot_s s)"
echo "guest: inventory $OUT/inventory.ini; env file $OUT/env.sh; stop with 'make guest-stop'"
