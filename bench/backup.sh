#!/usr/bin/env bash
# Append latency and throughput without a backup, then during an online
# backup in copy mode and in link mode, and the backup's duration and MB/s
# (bench/backup_bench.cc), in one run, on a log of ANNAL_BACKUP_BENCH_GB GiB.
# Run with nothing else on the machine; prints the load average with the
# figures. Disk: about 2.1 x the log size (the log, a copy-mode backup of it,
# a spare segment), checked before it starts.
#   ANNAL_BACKUP_BENCH_GB (default 10; fractions allowed)
#   ANNAL_BACKUP_BENCH_SECONDS (default 10: the least time of each phase)
#   ANNAL_BACKUP_MB_PER_S (default 128, the node's --backup-mb-per-s; 0 = unthrottled)
#   ANNAL_BACKUP_BENCH_SEGMENT_MB (default 256, the node's; e.g. 32 for a small check run)
#   ANNAL_BENCH_NO_BUILD=1  ANNAL_BENCH_DIR (default build/bench-backup)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${ANNAL_BENCH_NO_BUILD:-}" ]]; then
  cmake --preset release >/dev/null
  cmake --build --preset release -j2 --target annal_backup_bench >/dev/null
fi
dir="${ANNAL_BENCH_DIR:-$PWD/build/bench-backup}"
gb="${ANNAL_BACKUP_BENCH_GB:-10}"
seconds="${ANNAL_BACKUP_BENCH_SECONDS:-10}"
budget="${ANNAL_BACKUP_MB_PER_S:-128}"
segment="${ANNAL_BACKUP_BENCH_SEGMENT_MB:-256}"
mkdir -p "$dir"
need=$(awk -v g="$gb" 'BEGIN { printf "%d", (g * 2.1 + 0.6) * 1073741824 }')
avail=$(df --output=avail -B1 "$dir" | tail -1)
if (( avail < need )); then
  echo "backup.sh: $dir has $((avail >> 20)) MiB free; a ${gb} GiB run needs about $((need >> 20)) MiB" >&2
  exit 1
fi
echo "# backup benchmark, ${gb} GiB log, $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
build/release/bench/annal_backup_bench "$dir/data" "$dir/backup" --gb "$gb" --seconds "$seconds" --budget "$budget" --segment-mib "$segment"
rm -rf "$dir"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
