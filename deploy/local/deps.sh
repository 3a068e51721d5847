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
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system-wide PostgreSQL and Mosquitto on install; aryz
# runs private ones, so leave the system services alone but do not rely
# on them.
