#!/usr/bin/env bash
# Plots sweep figures (see scripts/bench-plot.py); installs matplotlib from PyPI into a virtual
# environment under the target directory the first time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${CARGO_TARGET_DIR:-$here/../target}/bench-plot-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet matplotlib
fi
exec "$venv/bin/python" "$here/bench-plot.py" "$@"
