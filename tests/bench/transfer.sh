#!/usr/bin/env bash
# Host-to-host throughput of lvdiff.thin.transfer against OpenSSH on the same file, and of relay
# mode through the controller. A benchmark, not a test: ratios against floors measured in the same run.
#   floor (direct):  on src, `ssh dst 'cat > f' < f`
#   floor + verify:  on src, `ssh dst 'cat > f && sha1sum f'` (what our transfer also does)
#   ours (direct):   the module run on src (ad hoc), its own `seconds` (connections included)
#   floor (relay):   on the controller, `ssh src 'cat f' | ssh dst 'cat > f'`
#   ours (relay):    the module run on the controller with src_host
# Where:
#   guest   the test guest's src and dst (two sshd in one QEMU TCG guest; booted by `make bench-transfer`)
#   native  this machine: a private sshd on 127.0.0.1 (throwaway host key and client key) is both
#           src's target and, for relay, the source; no emulation in the way
# Usage: tests/bench/transfer.sh guest|native [SIZE_MIB] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
WHERE=${1:?usage: $0 guest|native [SIZE_MIB] [RUNS]} SIZE=${2:-256} RUNS=${3:-3}
export ANSIBLE_COLLECTIONS_PATH=$PWD/tests/output/collections ANSIBLE_NOCOLOR=1 ANSIBLE_CALLBACK_RESULT_FORMAT=json
OUT=tests/output/bench/transfer-$WHERE.md
mkdir -p "$(dirname "$OUT")"
F=/var/tmp/lvdiff-bench.bin R=/var/tmp/lvdiff-bench-recv
ANSIBLE=.venv/bin/ansible

case $WHERE in
  guest)
    # shellcheck disable=SC1091
    source "${GUEST_OUT:-tests/output/guest}/env.sh"
    on_src() { guest_ssh src "$@"; }
    on_dst() { guest_ssh dst "$@"; }
    DST_FROM_SRC="ssh -p 2222 root@127.0.0.1"     # as src reaches dst (tests/guest/README.md)
    module_on_src=("$ANSIBLE" -i "$GUEST_INVENTORY" src)
    to_dst="host=127.0.0.1 port=2222"             # src's known_hosts has dst's key
    relay_ends="src_port=$GUEST_SRC_PORT src_key_file=$GUEST_KEY port=$GUEST_DST_PORT key_file=$GUEST_KEY"
    env_note="In the QEMU test guest (TCG, 2 vCPUs): both hosts are sshd instances in one guest, so both ends
of every transfer share its CPUs, and every cipher and hash runs emulated."
    ;;
  native)
    D=$(mktemp -d /tmp/lvdiff-bench-sshd.XXXXXX)
    ssh-keygen -q -t ed25519 -N '' -f "$D/host_key" && ssh-keygen -q -t ed25519 -N '' -f "$D/id"
    cp "$D/id.pub" "$D/authorized_keys"
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    /usr/sbin/sshd -f /dev/null -h "$D/host_key" -p "$PORT" -o ListenAddress=127.0.0.1 -o PidFile="$D/pid" \
      -o AuthorizedKeysFile="$D/authorized_keys" -o PermitRootLogin=prohibit-password -o UsePAM=no -o StrictModes=no
    trap 'kill "$(cat "$D/pid")" 2>/dev/null; rm -rf "$D"' EXIT
    SSH="ssh -F /dev/null -i $D/id -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -p $PORT root@127.0.0.1"
    on_src() { bash -c "$*"; }
    on_dst() { bash -c "$*"; }
    guest_ssh() { $SSH "${@:2}"; }   # src and dst are this machine
    DST_FROM_SRC=$SSH
    module_on_src=("$ANSIBLE" -i "localhost," -c local localhost -e "ansible_python_interpreter=$PWD/.venv/bin/python")
    to_dst="host=127.0.0.1 port=$PORT key_file=$D/id host_key_checking=false"
    relay_ends="src_port=$PORT src_key_file=$D/id port=$PORT key_file=$D/id"
    env_note="On this machine, without emulation: a private sshd on 127.0.0.1 is the target (and the relay's
source); both ends share its CPUs."
    ;;
  *) echo "usage: $0 guest|native [SIZE_MIB] [RUNS]" >&2; exit 2 ;;
esac

ms() { date +%s%N | cut -c1-13; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
module_seconds() { # ad hoc output `host | CHANGED => {json}` on stdin -> the module's `seconds` (ms)
  python3 -c 'import json,sys; t=sys.stdin.read(); h=json.loads(t[t.index("{"):])
assert not h.get("failed"), h.get("msg"); assert h["bytes_sent"]=='"$((SIZE << 20))"', h
print(int(h["seconds"]*1000))'
}
timed_on_src() { # command on src -> its wall time in ms, measured on src
  on_src "s=\$(date +%s%N); $1; e=\$(date +%s%N); echo \$(( (e - s) / 1000000 ))"
}

echo "transfer bench ($WHERE): ${SIZE} MiB, ${RUNS} runs"
sha=$(on_src "head -c ${SIZE}M /dev/urandom >$F && sha1sum $F | cut -c1-40")
on_dst "mkdir -p $R"
floor=() verify=() ours=() rfloor=() relay=()
for i in $(seq "$RUNS"); do
  on_dst "rm -f $R/f"
  floor+=("$(timed_on_src "$DST_FROM_SRC 'cat > $R/f' <$F")")
  on_dst "rm -f $R/f"
  verify+=("$(timed_on_src "$DST_FROM_SRC 'cat > $R/f && sha1sum $R/f >/dev/null' <$F")")
  on_dst "rm -f $R/f"
  ours+=("$("${module_on_src[@]}" -m lvdiff.thin.transfer -a "src=$F dest=$R/f sha1=$sha $to_dst" | module_seconds)")
  on_dst "rm -f $R/f"
  s=$(ms); guest_ssh src "cat $F" | guest_ssh dst "cat > $R/f"; e=$(ms); rfloor+=("$((e - s))")
  on_dst "rm -f $R/f"
  relay+=("$("$ANSIBLE" -i localhost, -c local localhost -e "ansible_python_interpreter=$PWD/.venv/bin/python" \
    -m lvdiff.thin.transfer -a "src=$F dest=$R/f src_host=127.0.0.1 host=127.0.0.1 $relay_ends \
    host_key_checking=false sha1=$sha" | module_seconds)")
  echo "run $i: floor ${floor[-1]} ms, floor+sha1sum ${verify[-1]} ms, ours ${ours[-1]} ms," \
       "relay floor ${rfloor[-1]} ms, relay ${relay[-1]} ms"
done
on_src "rm -f $F"; on_dst "rm -rf $R"

row() { # label ours_ms floor_ms floor_label
  L=$1 FL=$4 awk -v o="$2" -v f="$3" -v mib="$SIZE" 'BEGIN { l = ENVIRON["L"]; fl = ENVIRON["FL"]
    printf "| %s | %.2f s (%.1f MiB/s) | %s %.2f s (%.1f MiB/s) | %.2fx |\n", l, o/1000, mib*1000/o, fl, f/1000, mib*1000/f, o/f }'
}
{
  echo "### Transfer ($WHERE), ${SIZE} MiB file, median of ${RUNS} runs ($(date -u +%Y-%m-%d))"
  echo
  echo "$env_note Times include connection set-up."
  echo
  echo "| what | ours | floor | ratio |"
  echo "|---|---|---|---|"
  row "direct, src -> dst (module on src)" "$(median "${ours[@]}")" "$(median "${floor[@]}")" "\`ssh dst 'cat > f' < f\`"
  row "direct, against a floor that verifies too" "$(median "${ours[@]}")" "$(median "${verify[@]}")" "\`ssh dst 'cat > f && sha1sum f' < f\`"
  row "relay through the controller" "$(median "${relay[@]}")" "$(median "${rfloor[@]}")" "\`ssh src cat f \\| ssh dst 'cat > f'\`"
} | tee "$OUT"
