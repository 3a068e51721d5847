#!/usr/bin/env bash
# routerd.sh - aryz-routerd benchmark: routed complaints per second (1 and
# 2 instances) and commit-to-claim latency, each next to a baseline
# measured in the same run.  Starts its own throwaway servers; see
# bench/routerd.py for what is measured and the BENCH_* knobs.
set -euo pipefail
cd "$(dirname "$0")/.."
export ARYZ_BUILD=${ARYZ_BUILD:-$PWD/build}
exec /usr/bin/python3 bench/routerd.py
