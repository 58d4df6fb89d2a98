#!/usr/bin/env bash
# System packages the tests need, from Debian: Chromium for the browser tests (tests/e2e/),
# Mosquitto for the Makapix bridge tests (tests/integration/test_makapix_broker.py) and
# PostgreSQL for the Makapix database tests (tests/makapix_db.py: makapix-sync, import-history).
# Idempotent: does nothing for what is already there; installs only as root, with apt-get;
# never downloads a browser build of its own (Playwright drives Debian's chromium). The tests
# start their own mosquitto: the one Debian's package would run as a service is kept from
# starting and disabled, since it would hold 127.0.0.1:1883, the local stack's MQTT port.
# Likewise the tests start throwaway PostgreSQL clusters of their own (initdb, pg_ctl): the
# cluster and service Debian's postgresql sets up are kept from starting and disabled.
set -euo pipefail

packages=()
wanted=()

if [ -x /usr/bin/chromium ]; then
  echo "== chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
else
  packages+=(chromium fonts-noto-color-emoji)
  wanted+=(chromium)
fi

mosquitto_version() {
  # `mosquitto -h` prints the version first and exits non-zero.
  { /usr/sbin/mosquitto -h 2>/dev/null || true; } | head -n 1
}

mosquitto_service_warning() {
  # An already-installed mosquitto is the operator's: only say when its service holds 1883.
  if command -v ss >/dev/null 2>&1 && ss -ltnp 2>/dev/null | grep -E '127\.0\.0\.1:1883|0\.0\.0\.0:1883|\*:1883' | grep -q mosquitto; then
    echo "   note: a mosquitto service listens on port 1883, the local stack's default MQTT port;"
    echo "   stop it (systemctl disable --now mosquitto) or set VTS_MQTT_PORT for 'make run'."
  fi
}

if [ -x /usr/sbin/mosquitto ]; then
  echo "== mosquitto: $(mosquitto_version)"
  mosquitto_service_warning
else
  packages+=(mosquitto)
  wanted+=(mosquitto)
fi

postgres_version() {
  local initdb
  initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
  [ -n "$initdb" ] && "$initdb" --version 2>/dev/null | head -n 1
}

if [ -n "$(postgres_version)" ]; then
  echo "== postgresql: $(postgres_version)"
else
  packages+=(postgresql)
  wanted+=(postgresql)
fi

[ "${#packages[@]}" -eq 0 ] && exit 0

skip_message() {
  for name in "${wanted[@]}"; do
    case "$name" in
      chromium) echo "   chromium: the browser tests (tests/e2e/) will be skipped." ;;
      mosquitto) echo "   mosquitto: the Makapix bridge tests (tests/integration/test_makapix_broker.py) will be skipped." ;;
      postgresql) echo "   postgresql: the Makapix database tests (test_makapix_sync.py, test_import_history.py --dsn) will be skipped." ;;
    esac
  done
}

if [ "$(id -u)" != "0" ]; then
  echo "== ${wanted[*]}: missing and we are not root: skipping."
  skip_message
  echo "   Install with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${packages[*]}"
  case " ${wanted[*]} " in
    *" mosquitto "*) echo "   then: sudo systemctl disable --now mosquitto (so that nothing holds port 1883)" ;;
  esac
  case " ${wanted[*]} " in
    *" postgresql "*) echo "   then: sudo systemctl disable --now postgresql (the tests start clusters of their own)" ;;
  esac
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "== ${wanted[*]}: missing and there is no apt-get: skipping."
  skip_message
  exit 0
fi

# Keep package scripts from starting services during the install (Debian's policy-rc.d
# protocol: exit 101 = "not allowed"; invoke-rc.d and deb-systemd-invoke both honour it).
# Docker images usually ship one already; otherwise a temporary one, removed on exit.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# scripts/setup_system.sh: no service starts during this install\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi

echo "== ${wanted[*]}: missing; running apt-get update"
DEBIAN_FRONTEND=noninteractive apt-get update -q
echo "== apt-get install -y ${packages[*]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"

for name in "${wanted[@]}"; do
  case "$name" in
    chromium)
      echo "== chromium: installed $(/usr/bin/chromium --version 2>/dev/null || echo '(version unknown)')"
      ;;
    mosquitto)
      # The package enables a service (systemd unit and SysV links) that would listen on
      # localhost:1883 at the next boot: disable it, and stop it if it started anyway.
      if command -v systemctl >/dev/null 2>&1; then
        systemctl disable mosquitto.service >/dev/null 2>&1 || true
        if [ -d /run/systemd/system ]; then
          systemctl stop mosquitto.service >/dev/null 2>&1 || true
        fi
      fi
      if command -v update-rc.d >/dev/null 2>&1; then
        update-rc.d mosquitto disable >/dev/null 2>&1 || true
      fi
      if [ -f /run/mosquitto/mosquitto.pid ] && kill -0 "$(cat /run/mosquitto/mosquitto.pid)" 2>/dev/null; then
        kill "$(cat /run/mosquitto/mosquitto.pid)" || true
      fi
      echo "== mosquitto: installed $(mosquitto_version); its service is disabled (the tests start their own)"
      mosquitto_service_warning
      ;;
    postgresql)
      # Debian's package makes a cluster (main) and a service that would run it at the next
      # boot on port 5432: disable both, and stop any cluster that started anyway.
      if command -v systemctl >/dev/null 2>&1; then
        systemctl disable postgresql.service >/dev/null 2>&1 || true
        if [ -d /run/systemd/system ]; then
          systemctl stop postgresql.service >/dev/null 2>&1 || true
        fi
      fi
      if command -v update-rc.d >/dev/null 2>&1; then
        update-rc.d postgresql disable >/dev/null 2>&1 || true
      fi
      if command -v pg_lsclusters >/dev/null 2>&1; then
        pg_lsclusters -h 2>/dev/null | while read -r version cluster _port status _rest; do
          if [ "$status" = "online" ]; then
            pg_ctlcluster "$version" "$cluster" stop >/dev/null 2>&1 || true
          fi
          # start.conf "disabled": not started by the service nor by pg_ctlcluster at boot.
          if [ -f "/etc/postgresql/$version/$cluster/start.conf" ]; then
            echo disabled >"/etc/postgresql/$version/$cluster/start.conf"
          fi
        done
      fi
      echo "== postgresql: installed $(postgres_version); its service is disabled (the tests start their own clusters)"
      ;;
  esac
done
