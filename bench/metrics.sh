#!/usr/bin/env bash
# What the metrics cost the append path (issue #17: at most 3%): append
# throughput with `annald --metrics on` and `--metrics off` in one run,
# interleaved (on, off, on, off, ...) on a fresh data directory each time so
# that drift of the machine hits both alike; prints every round, the median
# of each, their ratio and the node's CPU per event. Also scrapes /metrics
# once per "on" round while the load runs (a scrape every 200 ms), so the
# cost of being scraped is in the figure.
#
#   bench/metrics.sh      # on a quiet machine: no builds, tests or helpers
#
# Environment: ANNAL_METRICS_ROUNDS (3), ANNAL_METRICS_SECONDS (6),
# ANNAL_METRICS_CONNECTIONS (16), ANNAL_BENCH_NO_BUILD=1.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build/release"
ROUNDS=${ANNAL_METRICS_ROUNDS:-3}
SECS=${ANNAL_METRICS_SECONDS:-6}
CONNS=${ANNAL_METRICS_CONNECTIONS:-16}
if [[ "${ANNAL_BENCH_NO_BUILD:-0}" != 1 ]]; then
  (cd "$ROOT" && cmake --preset release >/dev/null)
  cmake --build "$BUILD" --target annald annal -j2 >/dev/null
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/annal-metrics.XXXXXX")
PID=""
SCRAPER=""
cleanup() {
  [[ -n "$SCRAPER" ]] && kill "$SCRAPER" 2>/dev/null || true
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
echo "# metrics on/off, $(date -u +%Y-%m-%dT%H:%MZ), $(git -C "$ROOT" rev-parse --short HEAD), $CONNS connections, ${SECS}s per round, load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -a ON OFF
run_round() {  # $1 = on|off
  local mode=$1
  rm -rf "$TMP/data" "$TMP/port" "$TMP/hport"
  "$BUILD/tools/annald" --data "$TMP/data" --listen 127.0.0.1:0 --port-file "$TMP/port" \
    --http 127.0.0.1:0 --http-port-file "$TMP/hport" --metrics "$mode" --log-level warn 2>"$TMP/annald.log" &
  PID=$!
  for _ in $(seq 200); do [[ -s "$TMP/port" && -s "$TMP/hport" ]] && break; sleep 0.05; done
  local port hport
  port=$(cat "$TMP/port")
  hport=$(cat "$TMP/hport")
  # Warm-up (not measured): the first seconds zero-fill the spare segment.
  "$BUILD/tools/annal" bench append --server "127.0.0.1:$port" --connections 4 --duration 1 --warmup 0 >/dev/null
  sleep 1
  if [[ "$mode" == on ]]; then
    (while sleep 0.2; do curl -s "http://127.0.0.1:$hport/metrics" >/dev/null || true; done) &
    SCRAPER=$!
  fi
  local c0 c1 json eps
  c0=$(awk '{print $14 + $15}' "/proc/$PID/stat")
  json=$("$BUILD/tools/annal" bench append --server "127.0.0.1:$port" --json --connections "$CONNS" \
    --duration "$SECS" --warmup 1)
  c1=$(awk '{print $14 + $15}' "/proc/$PID/stat")
  if [[ -n "$SCRAPER" ]]; then kill "$SCRAPER" 2>/dev/null || true; wait "$SCRAPER" 2>/dev/null || true; SCRAPER=""; fi
  kill "$PID"; wait "$PID" || true; PID=""
  eps=$(echo "$json" | jq -r '.events_per_s | floor')
  local events us
  events=$(echo "$json" | jq -r '.events')
  us=$(awk -v a="$c1" -v b="$c0" -v e="$events" -v t="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", (a - b) / t * 1e6 / e}')
  echo "round metrics=$mode: $eps events/s, node CPU ${us} µs/event (whole run incl. warm-up)"
  if [[ "$mode" == on ]]; then ON+=("$eps"); else OFF+=("$eps"); fi
}
for _ in $(seq "$ROUNDS"); do run_round on; run_round off; done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mon=$(median "${ON[@]}")
moff=$(median "${OFF[@]}")
awk -v on="$mon" -v off="$moff" 'BEGIN {printf "median: metrics on %d events/s, off %d events/s, on/off = %.3f (%+.1f%%)\n", on, off, on / off, (on / off - 1) * 100}'
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
