#!/usr/bin/env bash
# Host-to-host throughput of lvdiff.thin.transfer against OpenSSH on the same file, in the test
# guest (src -> dst, two sshd in one QEMU guest), and of relay mode through the controller.
# A benchmark, not a test: it reports ratios against floors measured in the same run.
#   floor (direct):  on src, `ssh dst 'cat > f' < f`
#   floor + verify:  on src, `ssh dst 'cat > f && sha1sum f'` (what our transfer also does)
#   ours (direct):   the module run on src (ad hoc), its own `seconds` (connections included)
#   floor (relay):   on the controller, `ssh src 'cat f' | ssh dst 'cat > f'`
#   ours (relay):    the module run on the controller with src_host
# Usage: tests/bench/transfer.sh [SIZE_MIB] [RUNS]   (guest booted by `make bench-transfer`)
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE=${1:-256} RUNS=${2:-3}
# shellcheck disable=SC1091
source "${GUEST_OUT:-tests/output/guest}/env.sh"
export ANSIBLE_COLLECTIONS_PATH=$PWD/tests/output/collections ANSIBLE_NOCOLOR=1 ANSIBLE_CALLBACK_RESULT_FORMAT=json
OUT=tests/output/bench/transfer.md
mkdir -p "$(dirname "$OUT")"
F=/var/tmp/lvdiff-bench.bin R=/var/tmp/lvdiff-bench-recv
DST_IN_GUEST="ssh -p 2222 root@127.0.0.1"   # dst as src reaches it (tests/guest/README.md)

ms() { date +%s%N | cut -c1-13; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
module_seconds() { # ad hoc output `host | CHANGED => {json}` on stdin -> the module's `seconds` (ms)
  python3 -c 'import json,sys; t=sys.stdin.read(); h=json.loads(t[t.index("{"):])
assert not h.get("failed"), h.get("msg"); assert h["bytes_sent"]=='"$((SIZE << 20))"', h
print(int(h["seconds"]*1000))'
}

echo "transfer bench: ${SIZE} MiB, ${RUNS} runs"
sha=$(guest_ssh src "head -c ${SIZE}M /dev/urandom >$F && sha1sum $F | cut -c1-40")
guest_ssh src "$DST_IN_GUEST 'mkdir -p $R'"
floor=() verify=() ours=() rfloor=() relay=()
for i in $(seq "$RUNS"); do
  floor+=("$(guest_ssh src "$DST_IN_GUEST 'rm -f $R/f'; s=\$(date +%s%N); $DST_IN_GUEST 'cat > $R/f' <$F; e=\$(date +%s%N); echo \$(( (e - s) / 1000000 ))")")
  verify+=("$(guest_ssh src "$DST_IN_GUEST 'rm -f $R/f'; s=\$(date +%s%N); $DST_IN_GUEST 'cat > $R/f && sha1sum $R/f >/dev/null' <$F; e=\$(date +%s%N); echo \$(( (e - s) / 1000000 ))")")
  guest_ssh src "$DST_IN_GUEST 'rm -f $R/f $R/f.part $R/f.part.sha1'"
  ours+=("$(.venv/bin/ansible -i "$GUEST_INVENTORY" src -m lvdiff.thin.transfer \
    -a "src=$F dest=$R/f host=127.0.0.1 port=2222 sha1=$sha" | module_seconds)")
  guest_ssh dst "rm -f $R/f"
  s=$(ms); guest_ssh src "cat $F" | guest_ssh dst "cat > $R/f"; e=$(ms); rfloor+=("$((e - s))")
  guest_ssh dst "rm -f $R/f $R/f.part $R/f.part.sha1"
  relay+=("$(.venv/bin/ansible -i localhost, -c local localhost -m lvdiff.thin.transfer -a "src=$F dest=$R/f \
    src_host=127.0.0.1 src_port=$GUEST_SRC_PORT src_key_file=$GUEST_KEY host=127.0.0.1 port=$GUEST_DST_PORT \
    key_file=$GUEST_KEY host_key_checking=false sha1=$sha" -e ansible_python_interpreter="$PWD/.venv/bin/python" \
    | module_seconds)")
  echo "run $i: floor ${floor[-1]} ms, floor+sha1sum ${verify[-1]} ms, ours ${ours[-1]} ms," \
       "relay floor ${rfloor[-1]} ms, relay ${relay[-1]} ms"
done
guest_ssh src "rm -f $F; $DST_IN_GUEST 'rm -rf $R'"

row() { # label ours_ms floor_ms floor_label
  L=$1 FL=$4 awk -v o="$2" -v f="$3" -v mib="$SIZE" 'BEGIN { l = ENVIRON["L"]; fl = ENVIRON["FL"]
    printf "| %s | %.2f s (%.1f MiB/s) | %s %.2f s (%.1f MiB/s) | %.2fx |\n", l, o/1000, mib*1000/o, fl, f/1000, mib*1000/f, o/f }'
}
{
  echo "### Transfer, ${SIZE} MiB file, median of ${RUNS} runs ($(date -u +%Y-%m-%d))"
  echo
  echo "In the QEMU test guest (TCG, 2 vCPUs): both hosts are sshd instances in one guest, so both ends"
  echo "of every transfer share its CPUs. Times include connection set-up."
  echo
  echo "| what | ours | floor | ratio |"
  echo "|---|---|---|---|"
  row "direct, src -> dst (module on src)" "$(median "${ours[@]}")" "$(median "${floor[@]}")" "\`ssh dst 'cat > f' < f\`"
  row "direct, against a floor that verifies too" "$(median "${ours[@]}")" "$(median "${verify[@]}")" "\`ssh dst 'cat > f && sha1sum f' < f\`"
  row "relay through the controller" "$(median "${relay[@]}")" "$(median "${rfloor[@]}")" "\`ssh src cat f \\| ssh dst 'cat > f'\`"
} | tee "$OUT"
