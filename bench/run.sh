#!/usr/bin/env bash
# run.sh - run every benchmark in bench/ (each bench/*.sh but this one).
# Benchmarks print figures, as ratios against a baseline measured in the
# same run; they never fail on a number.
set -euo pipefail
cd "$(dirname "$0")/.."
export ARYZ_BUILD=${ARYZ_BUILD:-$PWD/build}
for b in bench/*.sh; do
  [ "$(basename "$b")" = run.sh ] && continue
  echo "== $b"
  bash "$b"
done
