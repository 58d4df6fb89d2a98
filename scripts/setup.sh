#!/usr/bin/env bash
# Creates the virtual environment and installs everything the local stack and tests need.
# Usage: scripts/setup.sh PYTHON VENV   (called by make; safe to run again)
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv with $($python --version)"
  "$python" -m venv "$venv"
fi
# chalice 1.34 requires pip<26.3
"$venv/bin/python" -m pip install -q --disable-pip-version-check 'pip<26.3'
echo "== installing pinned Python packages"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r requirements-dev.txt
if [ -f scripts/setup_geoip.py ]; then
  echo "== local GeoIP database"
  "$venv/bin/python" scripts/setup_geoip.py
fi
if [ -f scripts/build_frontend.sh ]; then
  bash scripts/build_frontend.sh  # vts.js + dashboard into chalicelib/web/static/ (npm ci + build)
fi
if [ -f scripts/setup_system.sh ]; then
  bash scripts/setup_system.sh
fi
echo "== setup done"
