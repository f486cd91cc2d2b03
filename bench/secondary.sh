#!/usr/bin/env bash
# The secondary index's targets (docs/benchmarks.md, "Secondary indexes"):
#
#   bench/secondary.sh
#
# 1. build/release/bench/annal_secondary_bench: index space against the log,
#    a 10% category over one connection against read_all of the same log,
#    what a 0.1% category's read touches, seek_time, reopen (clean, kill).
# 2. Appends at 64 connections x 8 in flight, one 256-byte event per append
#    to 1,000 streams: a node with the secondary index and three tags per
#    event, against a node with --secondary-index off and the same tags
#    (the index's own cost), and one with no tags either (the tags' cost on
#    the wire and in the record as well), in turn (ANNAL_SECONDARY_ROUNDS,
#    3) so the disk's drift hits all three.
#
# Run it on a quiet machine only. Environment: ANNAL_BENCH_EVENTS (10000000),
# ANNAL_SECONDARY_SECONDS (10) per append run, ANNAL_BENCH_TMP (/tmp),
# ANNAL_BENCH_NO_BUILD=1, ANNAL_SECONDARY_APPENDS_ONLY=1 (step 2 only).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build/release"
TMP_PARENT=${ANNAL_BENCH_TMP:-/tmp}
SECS=${ANNAL_SECONDARY_SECONDS:-10}
ROUNDS=${ANNAL_SECONDARY_ROUNDS:-3}
log() { printf '[secondary %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [[ "${ANNAL_BENCH_NO_BUILD:-0}" != 1 ]]; then
  cmake --preset release >/dev/null
  cmake --build "$BUILD" --target annald annal annal_secondary_bench -j"$(nproc)" >/dev/null
fi

log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ "${ANNAL_SECONDARY_APPENDS_ONLY:-0}" != 1 ]]; then
  ANNAL_BENCH_DIR="$TMP_PARENT/annal-secondary-bench" "$BUILD/bench/annal_secondary_bench"
fi

TMP=$(mktemp -d "$TMP_PARENT/annal-secondary.XXXXXX")
NODE_PID=""
stop_node() {
  if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill -TERM "$NODE_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NODE_PID" 2>/dev/null || true
  fi
  NODE_PID=""
}
trap 'stop_node; rm -rf "$TMP"' EXIT

# One append run: $1 = on|off (secondary index), $2 = tags per event.
append_run() {
  rm -rf "$TMP/data" "$TMP/port"
  "$BUILD/tools/annald" --data "$TMP/data" --listen 127.0.0.1:0 --port-file "$TMP/port" --http 127.0.0.1:0 \
    --log-level warn --secondary-index "$1" 2>"$TMP/annald.log" &
  NODE_PID=$!
  for _ in $(seq 100); do [[ -s "$TMP/port" ]] && break; sleep 0.1; done
  [[ -s "$TMP/port" ]] || { cat "$TMP/annald.log" >&2; exit 1; }
  local port
  port=$(cat "$TMP/port")
  local c0
  c0=$(awk '{print $14 + $15}' "/proc/$NODE_PID/stat")
  # The generator's CPU (bash's `times` in a subshell: its children's user
  # and system time) is printed next to the node's: on two cores both count.
  (
    "$BUILD/tools/annal" bench append --host "127.0.0.1:$port" --connections 64 --in-flight 8 \
      --threads 1 --duration "$SECS" --tags "$2" --json >"$TMP/out.json"
    times >"$TMP/gen_times"  # line 2: the children's user and system time
  )
  local c1
  c1=$(awk '{print $14 + $15}' "/proc/$NODE_PID/stat")
  local eps events tick
  eps=$(jq -r '.events_per_s' "$TMP/out.json")
  events=$(jq -r '.total_events' "$TMP/out.json")  # the node's CPU covers the warm-up too
  tick=$(getconf CLK_TCK)
  local gen
  gen=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t }' \
    "$TMP/gen_times")
  printf '  index %-3s tags %s: %10.0f events/s, p50 %s ms, p99 %s ms, node CPU %.1f us/event, generator CPU %.1f us/event\n' \
    "$1" "$2" "$eps" "$(jq -r '.latency.p50_ms' "$TMP/out.json")" \
    "$(jq -r '.latency.p99_ms' "$TMP/out.json")" \
    "$(echo "($c1 - $c0) / $tick * 1000000 / $events" | bc -l)" \
    "$(echo "$gen * 1000000 / $events" | bc -l)"
  echo "$1-$2 $eps" >>"$TMP/rates"
  stop_node
}

# The first run after step 1 met its 4 GB of dirty pages still being
# written back; wait for them, and start each round with another of the
# three so no configuration always runs first.
sync
sleep 5
log "appends at 64 x 8, ${SECS} s each, ${ROUNDS} rounds; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
CONFIGS=("on 3" "off 3" "off 0")
for round in $(seq 0 $((ROUNDS - 1))); do
  for k in 0 1 2; do
    # shellcheck disable=SC2086  # "on 3" is two arguments
    append_run ${CONFIGS[$(((round + k) % 3))]}
  done
done
awk '{ n[$1]++; sum[$1] += $2 }
     END { on = sum["on-3"] / n["on-3"]; off3 = sum["off-3"] / n["off-3"]; off0 = sum["off-0"] / n["off-0"];
           printf "  mean of %d rounds: index on, 3 tags %.0f events/s; index off, 3 tags %.0f; index off, no tags %.0f\n", n["on-3"], on, off3, off0;
           printf "  ratio to index off, same tags %.2f; to index off, no tags %.2f (target: within 15%%, >= 0.85)\n", on / off3, on / off0 }' \
  "$TMP/rates"
log "done; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
