#!/usr/bin/env bash
# make lint: the Ansible quality gates, all of them, then a summary; fails if any gate failed.
# Usage: tests/lint/run.sh [gate ...]   (default: every gate; names as in the summary)
#
# Every gate runs on one snapshot of the working tree: an rsync'd real copy (not a symlink)
# at tests/output/ansible-test/ansible_collections/lvdiff/thin, because ansible-test needs the
# collection at a path ending in ansible_collections/<namespace>/<name>/. Files that .gitignore
# excludes are not copied. Full logs: tests/output/lint/<gate>.log.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
VENV=${VENV:-.venv}
[[ $VENV = /* ]] || VENV=$ROOT/$VENV
export PATH=$VENV/bin:$PATH
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 NO_COLOR=1 PY_COLORS=0
PYVER=3.11
# make test-matrix (tests/matrix/run.sh) runs gates with another ansible-core: its own VENV,
# logs (LINT_OUT) and copy (LINT_COPY, a path ending in ansible_collections/lvdiff/thin).
OUT=${LINT_OUT:-$ROOT/tests/output/lint}
COPY=${LINT_COPY:-$ROOT/tests/output/ansible-test/ansible_collections/lvdiff/thin}
mkdir -p "$OUT" "$COPY"

# pip's chatter while ansible-test builds its virtualenvs: kept in the logs, not on the console.
quiet() {
  grep -v -E '^(WARNING: Location|Looking in|Collecting|Downloading|Processing|Requirement already|Installing collected|Successfully (installed|uninstalled)|Attempting uninstall|Found existing|Uninstalling|Using cached| +━)' || true
}

snapshot() {
  rsync -a --delete --delete-excluded --exclude=/.git --filter=':- .gitignore' "$ROOT/" "$COPY/"
  # A repository of its own, so that ansible-test lists the copy's files (tracked or not)
  # instead of finding the checkout's repository, which ignores tests/output.
  git -C "$COPY" init -q
  # The unit tests' second thin-tools generation (make deps unpacks it under the ignored tests/output).
  mkdir -p "$COPY/tests/output/thin-tools"
  rsync -a --delete "$ROOT/tests/output/thin-tools/1.x" "$COPY/tests/output/thin-tools/"
}

# ansible-test bootstraps pip in each of its virtualenvs with a get-pip script from the internet,
# unless one is cached: put our offline stand-in there, under the pip version it asks for.
get_pip_standin() {
  local ver
  ver=$(python - <<'EOF'
import inspect, re
import ansible_test._internal.python_requirements as m
print(re.search(r"pip='([\d.]+)'", inspect.getsource(m.get_venv_packages)).group(1))
EOF
  ) || return 1
  local dest=$HOME/.ansible/test/cache/get_pip_${ver//./_}.py
  mkdir -p "$(dirname "$dest")"
  cmp -s tests/lint/get_pip_standin.py "$dest" || cp tests/lint/get_pip_standin.py "$dest"
}

gate_sanity() {  # every sanity test that applies (shellcheck needs Debian's shellcheck: deps.sh)
  (cd "$COPY" && ansible-test sanity --venv --python "$PYVER" --color no)
}

gate_units() {  # tests/unit under ansible-test (its own venv, tests/unit/requirements.txt)
  (cd "$COPY" && ansible-test units --venv --python "$PYVER" --color no)
}

gate_ansible_lint() {  # production profile, config in .ansible-lint; the collection resolvable for arg checks
  (cd "$COPY" && ANSIBLE_COLLECTIONS_PATH=${COPY%/ansible_collections/*} ansible-lint --offline --nocolor -f pep8 --profile production)
}

gate_docs_lint() {
  (cd "$COPY" && antsibull-docs lint-collection-docs --plugin-docs .)
}

gate_changelog() {
  (cd "$COPY" && antsibull-changelog lint && antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml)
}

gate_ruff() {  # config in ruff.toml
  (cd "$COPY" && ruff check --no-cache --output-format concise .)
}

# Build the collection, install the tarball into an empty path, and run a module from there
# (and only there) on a diff file that the unit tests' helpers write.
gate_build_install() {
  local b=$OUT/build i=$OUT/install w=$OUT/adhoc
  rm -rf "$b" "$i" "$w" && mkdir -p "$b" "$i" "$w" || return 1
  (cd "$COPY" && ansible-galaxy collection build --output-path "$b") || return 1
  local tarball
  tarball=$(ls "$b"/lvdiff-thin-*.tar.gz) || return 1
  echo "built $tarball: $(tar tzf "$tarball" | wc -l) entries"
  if tar tzf "$tarball" | grep -E '(^|/)(tests/output|\.venv|\.git|__pycache__)(/|$)'; then
    echo "the tarball holds build output or caches (above)"; return 1
  fi
  ansible-galaxy collection install --offline -p "$i" "$tarball" || return 1
  local made diff sha1 out
  made=$(python tests/lint/sample_diff.py "$w/files") || return 1
  diff=$(sed -n 1p <<<"$made"); sha1=$(sed -n 2p <<<"$made")
  : >"$w/ansible.cfg"
  (
    cd "$w" || exit 1
    export ANSIBLE_CONFIG=$w/ansible.cfg ANSIBLE_COLLECTIONS_PATH=$i ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
    export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
    ansible-galaxy collection list lvdiff.thin || exit 1
    out=$(ansible localhost -m lvdiff.thin.lvdiff_info -a "src=$diff verify=true") || { echo "$out"; exit 1; }
    echo "$out"
    if ! grep -q '"verified": true' <<<"$out" || ! grep -q "\"sha1\": \"$sha1\"" <<<"$out"; then
      echo "lvdiff_info did not verify the sample diff (sha1 $sha1)"; exit 1
    fi
  )
}

# The execution-environment files read by ansible-builder and bindep (tests/ee/check.sh; offline, seconds).
gate_ee() {
  (cd "$COPY" && VENV=$VENV tests/ee/check.sh)
}

ALL=(sanity units ansible_lint docs_lint changelog ruff build_install ee)
gates=("$@")
[[ ${#gates[@]} -gt 0 ]] || gates=("${ALL[@]}")

t0=$(date +%s)
snapshot || { echo "lint: cannot copy the checkout to $COPY"; exit 1; }
get_pip_standin || { echo "lint: cannot install the get-pip stand-in"; exit 1; }
summary=() failed=0
for g in "${gates[@]}"; do
  declare -F "gate_$g" >/dev/null || { echo "lint: no gate $g (gates: ${ALL[*]})"; exit 2; }
  echo "=== lint: $g"
  start=$(date +%s)
  "gate_$g" >"$OUT/$g.log" 2>&1
  rc=$?
  quiet <"$OUT/$g.log" | tail -n 200
  secs=$(( $(date +%s) - start ))
  if ((rc == 0)); then
    summary+=("$(printf '%-14s passed  %4d s' "$g" "$secs")")
  else
    failed=$((failed + 1))
    summary+=("$(printf '%-14s FAILED  %4d s  (log: %s)' "$g" "$secs" "${OUT#"$ROOT"/}/$g.log")")
  fi
done
echo "=== lint summary"
printf '%s\n' "${summary[@]}"
echo "lint: $(( ${#gates[@]} - failed )) passed, $failed failed in $(( $(date +%s) - t0 )) s"
((failed == 0))
