#!/usr/bin/env bash
# apid.sh - aryz-apid benchmark: requests per second and latency of the
# complaint list, a ticket with its events, and /health, next to the same
# query run directly with psycopg2 in the same run.  Starts its own
# throwaway servers; see bench/apid.py for the BENCH_* knobs.
set -euo pipefail
cd "$(dirname "$0")/.."
export ARYZ_BUILD=${ARYZ_BUILD:-$PWD/build}
exec /usr/bin/python3 bench/apid.py
