#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: the normal
# build, then ASan+UBSan, then TSan. Exits non-zero on any failure.
#   ANNAL_TEST_CONFIGS="debug asan tsan"  which builds to test (default: all three)
# Then runs the Python and TypeScript clients' tests against the last build's
# annald (ANNAL_TEST_PYTHON=0, ANNAL_TEST_TYPESCRIPT=0 skip them), the web
# console in headless Chromium against it (ANNAL_TEST_CONSOLE=0 skips), and builds
# the libFuzzer targets (clang, "fuzz" preset) and runs each for a bounded time
# from its seed corpus; any crash, leak or sanitizer report fails.
#   ANNAL_TEST_FUZZ=0        skip the fuzz step
#   ANNAL_FUZZ_SECONDS=20    seconds per fuzz target
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
configs=${ANNAL_TEST_CONFIGS:-"asan tsan debug"}
jobs=${ANNAL_JOBS:-$(nproc)}
# ccache (a Debian package) makes a rebuild of unchanged sources cheap. Paths
# are hashed relative to the checkout, so a fresh clone elsewhere still hits.
if command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache CMAKE_C_COMPILER_LAUNCHER=ccache
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
fi
status=0
for c in $configs; do
  echo "=== annal tests: $c build ==="
  cmake --preset "$c" >/dev/null
  cmake --build --preset "$c" -j "$jobs"
  if ! ctest --test-dir "build/$c" --output-on-failure -j "$jobs" --timeout 900; then
    status=1
  fi
done
# The Python client (clients/python) against the real node of the last
# build above, with Debian's python3 and pytest.
if [ "${ANNAL_TEST_PYTHON:-1}" != "0" ]; then
  echo "=== annal tests: Python client ==="
  annald=""
  for c in $configs; do annald="$PWD/build/$c/tools/annald"; done
  if ! ANNALD="$annald" PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -m pytest -p no:cacheprovider \
      clients/python/tests; then
    status=1
  fi
fi
# The TypeScript client (clients/typescript) likewise: its pinned
# devDependencies from the npm registry (package-lock.json), tsc, node --test.
if [ "${ANNAL_TEST_TYPESCRIPT:-1}" != "0" ]; then
  echo "=== annal tests: TypeScript client ==="
  annald=""
  for c in $configs; do annald="$PWD/build/$c/tools/annald"; done
  if ! (cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error &&
        ANNALD="$annald" npm test --silent); then
    status=1
  fi
fi
# The web console (admin/console) in Debian's headless chromium, driven by
# tests/console's pinned playwright-core, against the last build's annald and
# annal; screenshots of each view go to build/console-screenshots.
if [ "${ANNAL_TEST_CONSOLE:-1}" != "0" ]; then
  echo "=== annal tests: console in headless Chromium ==="
  annald="" annal="" shots="$PWD/build/console-screenshots"
  for c in $configs; do annald="$PWD/build/$c/tools/annald" annal="$PWD/build/$c/tools/annal"; done
  if ! (cd tests/console && npm ci --no-audit --no-fund --loglevel=error &&
        ANNALD="$annald" ANNAL="$annal" ANNAL_CONSOLE_SCREENSHOTS="$shots" npm test --silent); then
    status=1
  fi
fi
if [ "${ANNAL_TEST_FUZZ:-1}" != "0" ]; then
  export ANNAL_FUZZ_SECONDS=${ANNAL_FUZZ_SECONDS:-20}
  echo "=== annal tests: fuzz targets, ${ANNAL_FUZZ_SECONDS} s each ==="
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz -j "$jobs"
  if ! ctest --test-dir build/fuzz -L fuzz --output-on-failure -j "$jobs" --timeout 900; then
    status=1
  fi
fi
exit $status
