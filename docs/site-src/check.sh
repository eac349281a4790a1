#!/usr/bin/env bash
# make docs-check: build the site, open the start page, a module page, the fleet guide and the
# replicate role's page in headless Chromium (Debian's chromium, installed here if missing), take
# screenshots into tests/output/docs/, and fail if one is missing or blank
# (docs/site-src/png_check.py).
set -euo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
VENV=${VENV:-.venv}
[[ $VENV = /* ]] || VENV=$ROOT/$VENV
OUT=$ROOT/tests/output/docs
HTML=$OUT/html

docs/site-src/build.sh

if ! command -v chromium >/dev/null; then
  echo "docs-check: installing chromium (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

shot() {  # shot PAGE PNG
  local profile
  profile=$(mktemp -d "$OUT/chromium-profile.XXXXXX")
  rm -f "$2"
  timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --window-size=1280,1400 \
    --screenshot="$2" "file://$1" >"$OUT/chromium.log" 2>&1 || {
      echo "docs-check: chromium failed on $1"; tail -20 "$OUT/chromium.log"; }
  rm -rf "$profile"
}

shot "$HTML/index.html" "$OUT/screenshot-index.png"
shot "$HTML/collections/lvdiff/thin/lvdiff_module.html" "$OUT/screenshot-lvdiff-module.png"
shot "$HTML/guides/fleet-backup.html" "$OUT/screenshot-fleet-backup.png"
shot "$HTML/collections/lvdiff/thin/replicate_role.html" "$OUT/screenshot-replicate-role.png"
"$VENV/bin/python" docs/site-src/png_check.py "$OUT/screenshot-index.png" "$OUT/screenshot-lvdiff-module.png" \
  "$OUT/screenshot-fleet-backup.png" "$OUT/screenshot-replicate-role.png"
