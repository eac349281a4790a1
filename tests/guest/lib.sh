# shellcheck shell=bash
# Shared by tests/guest/{start,stop,smoke}.sh (sourced, bash). Expects REPO (the checkout).
# GUEST picks the flavor: bookworm (default; this machine's Debian 12 files) or trixie (Debian 13
# packages pinned in tests/guest/trixie.lock), each with its own default output directory.
GUEST_FLAVOR=${GUEST:-bookworm}
case $GUEST_FLAVOR in
  bookworm) OUT=${GUEST_OUT:-$REPO/tests/output/guest} ;;
  trixie) OUT=${GUEST_OUT:-$REPO/tests/output/guest-trixie} ;;
  *) echo "guest: ERROR: unknown GUEST=$GUEST_FLAVOR (bookworm or trixie)" >&2; exit 2 ;;
esac
RUN=$OUT/run                 # per-boot state: qemu.pid, ports, console.log, cp/
KEY=$OUT/id_ed25519
SSH_OPTS=(-F /dev/null -i "$KEY" -o IdentitiesOnly=yes -o StrictHostKeyChecking=no
  -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=10
  -o ServerAliveInterval=10 -o ServerAliveCountMax=3)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# The pid of the running guest QEMU started from this OUT, or nothing (exit 1). The pid file
# alone is not trusted: the process must be a qemu whose command line names this pid file.
guest_pid() {
  local pid cmd
  [[ -f $RUN/qemu.pid ]] || return 1
  pid=$(tr -dc '0-9' <"$RUN/qemu.pid")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  [[ $cmd == *qemu-system-x86_64\ * && $cmd == *" -pidfile $RUN/qemu.pid "* ]] || return 1
  echo "$pid"
}

# guest_ssh_port src|dst: the host port forwarded to that host's sshd in the running guest
guest_ssh_port() {
  local v=GUEST_${1^^}_PORT
  [[ -f $RUN/ports ]] || return 1
  (source "$RUN/ports" && echo "${!v}")
}

# ssh_to PORT CMD...: run CMD as root in the guest through the host forward PORT
ssh_to() {
  local port=$1
  shift
  ssh "${SSH_OPTS[@]}" -p "$port" root@127.0.0.1 "$@"
}

# Stops the guest QEMU started from this OUT (if any): clean poweroff over SSH, then SIGTERM
# and SIGKILL after bounded waits. Never fails because nothing runs.
stop_guest() {
  local pid port i asked=0
  pid=$(guest_pid) || { rm -rf "$RUN"; rm -f "$OUT/inventory.ini" "$OUT/env.sh"; return 0; }
  port=$(guest_ssh_port src || true)
  # a clean power-off only once the guest's sshd runs (before that, ssh would just wait)
  if [[ -n $port ]] && grep -q 'lvdiff-guest: .*ready' "$RUN/console.log" 2>/dev/null; then
    timeout 15 ssh "${SSH_OPTS[@]}" -o ConnectTimeout=5 -p "$port" root@127.0.0.1 poweroff \
      >/dev/null 2>&1 || true
    asked=1
  fi
  for ((i = 0; asked && i < 100; i++)); do    # 20 s for a clean power-off
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    ((asked)) && echo "guest: no clean power-off within 20 s" >&2
    echo "guest: sending SIGTERM to qemu (pid $pid)" >&2
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 25; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "guest: sending SIGKILL to qemu (pid $pid)" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  [[ -f $RUN/console.log ]] && mv -f "$RUN/console.log" "$OUT/console.last.log"
  rm -rf "$RUN"
  rm -f "$OUT/inventory.ini" "$OUT/env.sh"
}
