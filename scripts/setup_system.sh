#!/usr/bin/env bash
# System packages the tests need, from Debian: Chromium for the browser tests (tests/e2e/).
# Idempotent: does nothing when /usr/bin/chromium is there; installs only as root; never
# downloads a browser build of its own (Playwright drives Debian's chromium).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "== chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "== chromium: /usr/bin/chromium is missing and we are not root: skipping."
  echo "   The browser tests (tests/e2e/) will be skipped. Install it with:"
  echo "   sudo apt-get update && sudo apt-get install -y chromium"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "== chromium: /usr/bin/chromium is missing and there is no apt-get: skipping."
  echo "   The browser tests (tests/e2e/) will be skipped."
  exit 0
fi
echo "== chromium: /usr/bin/chromium is missing; running apt-get update"
DEBIAN_FRONTEND=noninteractive apt-get update -q
echo "== chromium: apt-get install -y chromium"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-noto-color-emoji
echo "== chromium: installed $(/usr/bin/chromium --version 2>/dev/null || echo '(version unknown)')"
