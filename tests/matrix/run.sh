#!/usr/bin/env bash
# make test-matrix: the collection's sanity tests and unit tests with every ansible-core release
# still in use that runs on this machine's Python 3.11, each in its own virtualenv under
# tests/output/matrix/<version>/, by the same gates as make lint (tests/lint/run.sh: ansible-test
# sanity, then ansible-test units, which runs tests/unit with both thin-tools generations); then, with
# the oldest and the newest release run, the integration target `roundtrip` (lvdiff + lvpatch on real
# thin pools) and the ad hoc checks in the Debian 12 guest (tests/integration/run.sh, ANSIBLE_BIN).
# Not part of make test: 15-25 minutes per release on 2 busy cores (sanity 800-1050 s, units 230-530 s,
# measured 2026-12-02). Writes tests/output/matrix/results.md.
# Usage: tests/matrix/run.sh [--integration-only] [version ...]   (default: every pinned release below)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD

# Pinned: the latest patch release of each line (2.16 is the oldest that requires_ansible allows).
RELEASES=(2.16.19 2.17.14 2.18.19 2.19.14)
lint=1
if [[ ${1:-} == --integration-only ]]; then lint=0; shift; fi
versions=("$@")
[[ ${#versions[@]} -gt 0 ]] || versions=("${RELEASES[@]}")

OUT=$ROOT/tests/output/matrix
mkdir -p "$OUT"
results=() failed=0
t0=$(date +%s)
for v in "${versions[@]}"; do
  dir=$OUT/$v venv=$OUT/$v/venv
  mkdir -p "$dir"
  echo "=== matrix: ansible-core $v"
  if [[ ! -x $venv/bin/ansible-test || $("$venv/bin/python" -c 'import ansible; print(ansible.__version__)' 2>/dev/null) != "$v" ]]; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" ||
       ! "$venv/bin/pip" install -q --disable-pip-version-check "ansible-core==$v" >"$dir/pip.log" 2>&1; then
      results+=("$(printf '%-8s FAILED  cannot install ansible-core %s (%s)' "$v" "$v" "${dir#"$ROOT"/}/pip.log")")
      failed=$((failed + 1)); continue
    fi
  fi
  ((lint)) || continue
  start=$(date +%s)
  # A copy of its own per release: ansible-test keeps state in the copy's tests/output.
  VENV=$venv LINT_OUT=$dir/logs LINT_COPY=$dir/ansible_collections/lvdiff/thin \
    tests/lint/run.sh sanity units >"$dir/run.log" 2>&1
  rc=$?
  tail -n 4 "$dir/run.log"
  secs=$(( $(date +%s) - start ))
  units=$(grep -hoE '[0-9]+ passed[^=]*' "$dir/logs/units.log" 2>/dev/null | paste -sd+ - | sed 's/+/ + /g')
  if ((rc == 0)); then
    results+=("$(printf '%-8s passed  %4d s  sanity: all tests; units: %s' "$v" "$secs" "$units")")
  else
    failed=$((failed + 1))
    results+=("$(printf '%-8s FAILED  %4d s  (logs: %s)' "$v" "$secs" "${dir#"$ROOT"/}/logs")")
  fi
done

# The round trip on real LVM with the oldest and the newest release asked for (one guest boot each).
ends=("${versions[0]}")
[[ ${#versions[@]} -gt 1 ]] && ends+=("${versions[-1]}")
for v in "${ends[@]}"; do
  venv=$OUT/$v/venv
  [[ -x $venv/bin/ansible-playbook ]] || continue   # its install failed: reported above
  echo "=== matrix: ansible-core $v, integration target roundtrip"
  start=$(date +%s)
  if ANSIBLE_BIN=$venv/bin tests/integration/run.sh roundtrip >"$OUT/$v/integration.log" 2>&1; then
    results+=("$(printf '%-8s passed  %4d s  integration: roundtrip and the ad hoc checks in the Debian 12 guest' \
      "$v" "$(( $(date +%s) - start ))")")
  else
    failed=$((failed + 1))
    results+=("$(printf '%-8s FAILED  integration roundtrip (log: %s)' "$v" "${OUT#"$ROOT"/}/$v/integration.log")")
  fi
  tail -n 3 "$OUT/$v/integration.log"
done
{
  echo "# make test-matrix, $(date -u '+%Y-%m-%d %H:%M UTC'), Python $(python3 -c 'import platform; print(platform.python_version())')"
  echo
  printf '    %s\n' "${results[@]}"
} >"$OUT/results.md"
echo "=== matrix summary"
printf '%s\n' "${results[@]}"
echo "matrix: ${#results[@]} results, $failed failed in $(( $(date +%s) - t0 )) s"
((failed == 0))
