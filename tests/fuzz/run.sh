#!/usr/bin/env bash
# run.sh BUILD SECONDS - run every fuzz target for SECONDS from its seed
# corpus (tests/fuzz/corpus/<name>/, kept read-only: new inputs go to a
# temp dir).  Fails on the first crash, leak or sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-fuzz}
SECS=${2:-20}
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
for f in "$BUILD"/fuzz/fuzz_*; do
  name=$(basename "$f"); name=${name#fuzz_}
  work=$(mktemp -d)
  echo "fuzz $name for ${SECS}s"
  "$f" -max_total_time="$SECS" -max_len=4096 -print_final_stats=0 \
       -artifact_prefix="$work/" "$work" "tests/fuzz/corpus/$name" 2>"$work/log" \
    || { tail -50 "$work/log"; echo "fuzz $name FAILED; artifacts in $work"; exit 1; }
  grep -E '^(Done|#[0-9]+ +DONE)' "$work/log" | tail -1 || true
  rm -rf "$work"
done
