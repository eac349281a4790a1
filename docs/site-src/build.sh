#!/usr/bin/env bash
# make docs: the HTML site in tests/output/docs/html (build output, not committed).
#   sources      docs/site-src/ (conf.py, rst/ with the index and the guides, diagrams/)
#   included     docs/format.md, docs/security.md, docs/benchmarks.md (when present), roles/replicate/README.md
#   generated    a page for every module, filter and role, and the plugin indexes (antsibull-docs,
#                from the collection's own DOCUMENTATION, filter .yml files and role argument
#                specs), the data-flow picture (Graphviz dot)
# Everything is assembled in tests/output/docs/src, then built with Sphinx; warnings fail, and so
# does a module, filter or role of the checkout without its page.
set -euo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
VENV=${VENV:-.venv}
[[ $VENV = /* ]] || VENV=$ROOT/$VENV
export PATH=$VENV/bin:$PATH
SITE=docs/site-src
OUT=tests/output/docs
STAGE=$OUT/src
HTML=$OUT/html

if ! command -v dot >/dev/null; then
  echo "docs: installing graphviz (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz >/dev/null
fi

rm -rf "$STAGE" "$HTML"
mkdir -p "$STAGE"
chmod 755 "$STAGE"   # antsibull-docs writes only into a directory nobody else can write to
cp -r "$SITE/rst/." "$STAGE/"

# Module, filter and role pages and the plugin indexes, from the checkout as collection lvdiff.thin
# (tests/output/collections links to it: make's $(COLLECTION_LINK)).
ANSIBLE_COLLECTIONS_PATH=$ROOT/tests/output/collections \
  antsibull-docs --config-file "$SITE/antsibull-docs.cfg" collection \
  --use-current --fail-on-error --dest-dir "$STAGE" lvdiff.thin

# Guides kept beside the code.
cp docs/format.md "$STAGE/guides/format.md"
cp docs/security.md "$STAGE/guides/security.md"
if [[ -f docs/benchmarks.md ]]; then
  cp docs/benchmarks.md "$STAGE/guides/benchmarks.md"
else
  cat >"$STAGE/guides/benchmarks.md" <<'END'
# Benchmarks

Not written yet: `make bench` measures and writes `tests/output/bench/results.md`;
the guide `docs/benchmarks.md` will appear here.
END
fi

# The replicate role's README, the reference the fleet guide links to.
cp roles/replicate/README.md "$STAGE/guides/replicate-role.md"

dot -Tsvg "$SITE/diagrams/dataflow.dot" -o "$STAGE/guides/dataflow.svg"

sphinx-build -b html -W --keep-going -q -c "$SITE" "$STAGE" "$HTML"

# Every module, filter and role of the checkout has its generated page in the site.
pages=()
for f in plugins/modules/*.py; do
  [[ $(basename "$f") = __init__.py ]] || pages+=("$(basename "$f" .py)_module")
done
for f in plugins/filter/*.yml plugins/test/*.yml; do
  [[ -e $f ]] && pages+=("$(basename "$f" .yml)_$(basename "$(dirname "$f")")")
done
for d in roles/*/; do
  [[ -f $d/meta/argument_specs.yml ]] && pages+=("$(basename "$d")_role")
done
missing=0
for p in "${pages[@]}"; do
  if [[ ! -s $HTML/collections/lvdiff/thin/$p.html ]]; then
    echo "docs: no page collections/lvdiff/thin/$p.html in the site"; missing=1
  fi
done
((missing == 0)) || exit 1
echo "docs: ${#pages[@]} plugin and role pages: ${pages[*]}"
echo "docs: $HTML/index.html"
