#!/usr/bin/env bash
# escalated.sh - timers fired per second and lateness of aryz-escalated,
# against a bare SKIP LOCKED claim loop measured in the same run (see
# bench/escalated_bench.py).  Throwaway servers; prints numbers only.
#   bench/escalated.sh [backlog-timers] [live-timers]     (50000 5000)
set -euo pipefail
cd "$(dirname "$0")/.."
export ARYZ_BUILD=${ARYZ_BUILD:-$PWD/build}
exec /usr/bin/python3 bench/escalated_bench.py "$@"
