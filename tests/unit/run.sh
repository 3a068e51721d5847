#!/usr/bin/env bash
# run.sh - run every unit test binary of a build directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"
fail=0; n=0
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  n=$((n + 1))
  (cd tests/unit && "../../$t") || fail=$((fail + 1))
done
echo "unit test binaries: $n, failed: $fail"
[ "$fail" -eq 0 ]
