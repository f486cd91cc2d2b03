#!/usr/bin/env bash
# Scavenge throughput and its effect on appends and reads running beside it
# (bench/scavenge_bench.cc), in one run: a baseline load, then the same load
# during an unthrottled scavenge, then during one held to 64 MiB/s (the
# node's default budget). Run with nothing else on the machine; prints the
# load average with the figures.
#   ANNAL_SCAVENGE_EVENTS (default 400000)  ANNAL_BENCH_NO_BUILD=1  ANNAL_BENCH_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${ANNAL_BENCH_NO_BUILD:-}" ]]; then
  cmake --preset release >/dev/null
  cmake --build --preset release -j2 --target annal_scavenge_bench >/dev/null
fi
dir="${ANNAL_BENCH_DIR:-$PWD/build/bench-scavenge}"
events="${ANNAL_SCAVENGE_EVENTS:-400000}"
echo "# scavenge benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for budget in 0 64; do
  echo "## budget ${budget} MiB/s (0 = unthrottled)"
  build/release/bench/annal_scavenge_bench "$dir" --events "$events" --seconds 5 --budget "$budget"
done
rm -rf "$dir"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
