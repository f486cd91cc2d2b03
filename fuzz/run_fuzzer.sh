#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time; fails on any crash, leak,
# timeout or sanitizer report (libFuzzer exits non-zero and leaves the input
# as WORKDIR/crash-*, which becomes a regression test in tests/reliability).
#   run_fuzzer.sh FUZZER SEED_CORPUS WORKDIR
#   ANNAL_FUZZ_SECONDS  time budget (default 20)
set -euo pipefail
fuzzer=$1 seeds=$2 work=$3
secs=${ANNAL_FUZZ_SECONDS:-20}
mkdir -p "$work/corpus"
# New inputs go to the build's corpus (first directory); the checked-in seeds
# are only read.
exec "$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
  -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "$seeds"
