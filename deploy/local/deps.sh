#!/usr/bin/env bash
# deps.sh - install the Debian 12 packages aryz needs to build, run and
# test.  Skips apt entirely when everything is already installed.
set -euo pipefail

PKGS=(
  build-essential pkg-config clang libclang-rt-14-dev
  libevent-dev libpq-dev libmosquitto-dev libconfig-dev libjansson-dev
  libunistring-dev libcmocka-dev
  postgresql-15 postgresql-client-15 mosquitto mosquitto-clients
  python3 python3-pytest python3-psycopg2 python3-paho-mqtt
  curl procps util-linux
  kannel    # bearerbox + smsbox for tests/integration/test_kannel_e2e.py
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Keep Debian from starting the system Kannel during this install (a
# bearerbox on port 13000 and a wapbox; aryz's tests run their own): a
# temporary policy-rc.d that refuses the "kannel" init script only and
# allows everything else; removed afterwards.  An existing policy-rc.d
# (docker images ship one) is left as it is.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# temporary, from aryz deploy/local/deps.sh\n[ "$1" = kannel ] && exit 101\nexit 0\n' \
    | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system-wide PostgreSQL and Mosquitto on install; aryz
# runs private ones, so leave the system services alone but do not rely
# on them.  The system Kannel is enabled but not started (it would start
# at the next boot: `systemctl disable kannel` if unwanted); nothing in
# aryz uses it or its ports.
