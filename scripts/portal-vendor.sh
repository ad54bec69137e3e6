#!/usr/bin/env bash
# The partner portal's front-end packages from npm (portal/package.json, pinned with their
# integrity in portal/package-lock.json): installs them with `npm ci` into portal/node_modules
# and copies the built files the page loads into portal/web/vendor/, which is committed, so
# that the node embeds them and a fresh checkout serves the page with no npm and no build step.
#   scripts/portal-vendor.sh          refresh portal/web/vendor/ (after changing package.json)
#   scripts/portal-vendor.sh --check  fail if portal/web/vendor/ is not exactly what the lock
#                                     file's packages ship (run by scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/../portal"
check=false
[ "${1:-}" = "--check" ] && check=true
npm ci --no-audit --no-fund >/dev/null
# package file -> vendored file
files=(
  "uplot/dist/uPlot.iife.min.js:uPlot.iife.min.js"
  "uplot/dist/uPlot.min.css:uPlot.min.css"
  "uplot/LICENSE:uPlot.LICENSE"
)
status=0
for entry in "${files[@]}"; do
  from="node_modules/${entry%%:*}"
  to="web/vendor/${entry##*:}"
  if $check; then
    if ! cmp -s "$from" "$to"; then
      echo "portal-vendor: $to is not $from of the locked version: run scripts/portal-vendor.sh and commit" >&2
      status=1
    fi
  else
    mkdir -p web/vendor
    cp "$from" "$to"
    echo "portal-vendor: $to ($(wc -c < "$to") bytes)"
  fi
done
extra=$(cd web/vendor && ls | grep -vxF -e uPlot.iife.min.js -e uPlot.min.css -e uPlot.LICENSE || true)
if [ -n "$extra" ]; then
  echo "portal-vendor: web/vendor holds files no package ships: $extra" >&2
  status=1
fi
$check && [ $status -eq 0 ] && echo "portal-vendor: web/vendor is what portal/package-lock.json's packages ship"
exit $status
