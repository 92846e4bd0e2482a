#!/usr/bin/env bash
# Sets up, builds and runs every test: the release build (unit + integration through the real
# kernel), then the same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Integration tests need root and /dev/fuse; without them they are reported as skipped.
# SANDFS_SKIP_ASAN=1 runs only the release build (quicker local iteration).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

status=0
run_suite() {
  local kind=$1
  echo "=== $kind build ==="
  scripts/build.sh "$kind" >/dev/null
  echo "=== $kind tests ==="
  (cd "build/$kind" && ctest --output-on-failure --timeout 600 -j1) || status=1
}

run_suite release
if [ "${SANDFS_SKIP_ASAN:-0}" != 1 ]; then
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  run_suite asan
fi
exit $status
