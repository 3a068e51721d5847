#!/usr/bin/env bash
# run-all.sh - unit tests (cmocka), then integration tests (pytest against
# real PostgreSQL and Mosquitto).  BUILD selects the build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export ARYZ_BUILD=$PWD/$BUILD

tests/unit/run.sh "$BUILD"
# Debian's python3 carries pytest, psycopg2 and paho-mqtt; another python3
# earlier on PATH would not.
exec /usr/bin/python3 -m pytest -p no:cacheprovider -q tests/integration "$@"
