#!/usr/bin/env bash
# smsd.sh - aryz-smsd benchmark: MO messages accepted per second (each one
# a complaint committed before the 200) and latency, next to the same SQL
# call made directly.  See bench/smsd.py for the BENCH_* knobs.
set -euo pipefail
cd "$(dirname "$0")/.."
export ARYZ_BUILD=${ARYZ_BUILD:-$PWD/build}
exec /usr/bin/python3 bench/smsd.py
