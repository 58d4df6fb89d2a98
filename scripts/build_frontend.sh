#!/usr/bin/env bash
# Builds the front end (vts.js and the dashboard) into chalicelib/web/static/ with npm.
# Idempotent: `npm ci` runs only when package-lock.json changed since the last install;
# the build itself always runs (it takes about a second).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
if ! command -v npm >/dev/null 2>&1; then
  echo "== front end: npm is missing: skipping the build of vts.js and the dashboard."
  echo "   Install Node.js 18+ with npm, then run: npm ci && npm run build"
  exit 0
fi
stamp=node_modules/.vts-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "== front end: npm ci (node $(node --version), npm $(npm --version))"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
echo "== front end: npm run build"
npm run --silent build
