# shellcheck shell=bash
# Sourced by the scripts that fetch Debian 13 packages with a private apt configuration
# (tests/setup/thin-tools-1x.sh, tests/guest/trixie-debs.sh): the archive they use is the one
# this machine's own apt sources name, so no mirror is written into the repository.

# debian_archive_uri: prints the first archive URI of this machine's apt sources (deb822
# .sources files first, then one-line sources.list); prints nothing if there is none.
debian_archive_uri() {
  local uri
  uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [[ -n $uri ]] || uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
                         /etc/apt/sources.list 2>/dev/null || true)
  echo "$uri"
}
