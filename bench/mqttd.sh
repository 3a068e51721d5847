#!/usr/bin/env bash
# mqttd.sh - aryz-mqttd benchmark: MQTT complaints stored per second
# (batched and one per COMMIT) and outbox rows published per second, next
# to a bare-broker baseline measured in the same run.  Starts its own
# throwaway servers; see bench/mqttd.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export ARYZ_BUILD=${ARYZ_BUILD:-$PWD/build}
exec /usr/bin/python3 bench/mqttd.py
