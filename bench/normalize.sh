#!/usr/bin/env bash
# normalize.sh - cost of normalize_text() per message with the full
# reference lexicon (keywords.csv, every aiyl aimak alias, rayon names),
# as printed by the unit test's speed case.  A figure, never a verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${ARYZ_BUILD:-$PWD/build}
[ -x "$BUILD/tests/test_normalize" ] || { echo "build $BUILD first"; exit 1; }
(cd tests/unit && "$BUILD/tests/test_normalize" 2>&1) | grep 'us/message'
