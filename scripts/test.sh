#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: the normal
# build, then ASan+UBSan, then TSan. Exits non-zero on any failure.
#   ANNAL_TEST_CONFIGS="debug asan tsan"  which builds to test (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
configs=${ANNAL_TEST_CONFIGS:-"asan tsan debug"}
jobs=${ANNAL_JOBS:-$(nproc)}
status=0
for c in $configs; do
  echo "=== annal tests: $c build ==="
  cmake --preset "$c" >/dev/null
  cmake --build --preset "$c" -j "$jobs"
  if ! ctest --test-dir "build/$c" --output-on-failure -j "$jobs" --timeout 900; then
    status=1
  fi
done
exit $status
