#!/usr/bin/env bash
# The targets of multi-stream and conditional appends (docs/benchmarks.md,
# "Append conditions and decision-model reads"):
#
#   bench/dcb.sh
#
# 1. One node, a log of ANNAL_BENCH_EVENTS (10,000,000) events with two tags
#    each (k0:N and k1:N, N one of 1,000,000 values: ~10 events per tag),
#    written in 100-event appends.
# 2. On that log, in turn (ANNAL_DCB_ROUNDS, 3; the order rotates): 1-event
#    appends at 64 connections x 8 in flight, unconditional, and conditional
#    ("fail if an event with both of my two tags exists") after the newest
#    position the connection has seen acknowledged (a decision on what it
#    read: the DCB pattern), and without `after` (a uniqueness guard over
#    the whole log). Target: conditional >= 80% of unconditional.
# 3. Decision-model reads: the events of one tag k0:N, N random of 100,000
#    (~10 events each), from 1 connection (1 and 8 in flight) and from 64
#    connections x 4 in flight. Targets: >= 50,000 reads/s from one
#    connection, >= 300,000 events/s from 64.
# Node and generator CPU per event (or read) are printed for every run.
#
# Run it on a quiet machine only. Environment: ANNAL_BENCH_EVENTS,
# ANNAL_DCB_SECONDS (10) per run, ANNAL_DCB_ROUNDS, ANNAL_BENCH_TMP (/tmp),
# ANNAL_BENCH_NO_BUILD=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build/release"
TMP_PARENT=${ANNAL_BENCH_TMP:-/tmp}
EVENTS=${ANNAL_BENCH_EVENTS:-10000000}
SECS=${ANNAL_DCB_SECONDS:-10}
ROUNDS=${ANNAL_DCB_ROUNDS:-3}
log() { printf '[dcb %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [[ "${ANNAL_BENCH_NO_BUILD:-0}" != 1 ]]; then
  cmake --preset release >/dev/null
  cmake --build "$BUILD" --target annald annal -j"$(nproc)" >/dev/null
fi

TMP=$(mktemp -d "$TMP_PARENT/annal-dcb.XXXXXX")
NODE_PID=""
stop_node() {
  if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill -TERM "$NODE_PID" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NODE_PID" 2>/dev/null || true
  fi
  NODE_PID=""
}
trap 'stop_node; rm -rf "$TMP"' EXIT

"$BUILD/tools/annald" --data "$TMP/data" --listen 127.0.0.1:0 --port-file "$TMP/port" --http 127.0.0.1:0 \
  --log-level warn 2>"$TMP/annald.log" &
NODE_PID=$!
for _ in $(seq 100); do [[ -s "$TMP/port" ]] && break; sleep 0.1; done
[[ -s "$TMP/port" ]] || { cat "$TMP/annald.log" >&2; exit 1; }
HOST="127.0.0.1:$(cat "$TMP/port")"

log "load average: $(cut -d' ' -f1-3 /proc/loadavg); writing $EVENTS events"
"$BUILD/tools/annal" bench append --host "$HOST" --connections 4 --in-flight 4 --threads 1 \
  --batch 100 --tags 2 --tag-values 1000000 --fill-to "$EVENTS" --json >"$TMP/fill.json"
log "written: $(jq -r '.events_per_s | floor' "$TMP/fill.json") events/s; settling"
sync
sleep 5

# One measured run: $1 = a label, the rest are `annal bench` arguments.
# Prints the figures and appends "label rate" to $TMP/rates.
run() {
  local label=$1
  shift
  local c0 c1 tick
  c0=$(awk '{print $14 + $15}' "/proc/$NODE_PID/stat")
  # The generator's CPU (bash's `times` in a subshell: its children's user
  # and system time) is printed next to the node's: on two cores both count.
  (
    "$BUILD/tools/annal" "$@" --host "$HOST" --duration "$SECS" --json >"$TMP/out.json"
    times >"$TMP/gen_times"
  )
  c1=$(awk '{print $14 + $15}' "/proc/$NODE_PID/stat")
  tick=$(getconf CLK_TCK)
  local rate units events requests gen
  events=$(jq -r '.total_events' "$TMP/out.json")
  requests=$(jq -r '.appends' "$TMP/out.json")
  gen=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t }' \
    "$TMP/gen_times")
  if [[ "$(jq -r '.command' "$TMP/out.json")" == read-query ]]; then
    rate=$(jq -r '.appends_per_s' "$TMP/out.json")
    printf '  %-28s %9.0f reads/s %10.0f events/s, p50 %s ms, p99 %s ms, node CPU %.1f us/read, generator CPU %.1f us/read\n' \
      "$label" "$rate" "$(jq -r '.events_per_s' "$TMP/out.json")" \
      "$(jq -r '.latency.p50_ms' "$TMP/out.json")" "$(jq -r '.latency.p99_ms' "$TMP/out.json")" \
      "$(echo "($c1 - $c0) / $tick * 1000000 / ($requests + 1)" | bc -l)" \
      "$(echo "$gen * 1000000 / ($requests + 1)" | bc -l)"
    echo "$label-events $(jq -r '.events_per_s' "$TMP/out.json")" >>"$TMP/rates"
  else
    rate=$(jq -r '.events_per_s' "$TMP/out.json")
    printf '  %-28s %9.0f events/s, p50 %s ms, p99 %s ms, %s refused, node CPU %.1f us/event, generator CPU %.1f us/event\n' \
      "$label" "$rate" "$(jq -r '.latency.p50_ms' "$TMP/out.json")" \
      "$(jq -r '.latency.p99_ms' "$TMP/out.json")" "$(jq -r '.refused' "$TMP/out.json")" \
      "$(echo "($c1 - $c0) / $tick * 1000000 / ($events + 1)" | bc -l)" \
      "$(echo "$gen * 1000000 / ($events + 1)" | bc -l)"
  fi
  echo "$label $rate" >>"$TMP/rates"
}

APPEND=(bench append --connections 64 --in-flight 8 --threads 1 --tags 2 --tag-values 1000000)
log "appends at 64 x 8 on a log of $EVENTS events, ${SECS} s each, ${ROUNDS} rounds"
for round in $(seq 0 $((ROUNDS - 1))); do
  if ((round % 2 == 0)); then
    run unconditional "${APPEND[@]}"
    run conditional-after "${APPEND[@]}" --condition-after
    run conditional-whole-log "${APPEND[@]}" --condition
  else
    run conditional-whole-log "${APPEND[@]}" --condition
    run conditional-after "${APPEND[@]}" --condition-after
    run unconditional "${APPEND[@]}"
  fi
done
log "decision-model reads (one tag of 100,000, ~10 events)"
READ=(bench read-query --tag-values 100000 --chunk 100 --threads 1)
run "1 conn x 1" "${READ[@]}" --connections 1 --in-flight 1
run "1 conn x 8" "${READ[@]}" --connections 1 --in-flight 8
run "64 conn x 4" "${READ[@]}" --connections 64 --in-flight 4
awk '{ n[$1]++; sum[$1] += $2 }
     END { u = sum["unconditional"] / n["unconditional"]; a = sum["conditional-after"] / n["conditional-after"];
           w = sum["conditional-whole-log"] / n["conditional-whole-log"];
           printf "  mean of %d rounds: unconditional %.0f events/s; conditional after the newest seen position %.0f (ratio %.2f); conditional over the whole log %.0f (ratio %.2f); target >= 0.80\n", n["unconditional"], u, a, a / u, w, w / u }' \
  "$TMP/rates"
log "done; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
