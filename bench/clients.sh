#!/usr/bin/env bash
# The three clients side by side in one run (issue #19): the C++ load
# generator (`annal bench`), the Python client and the TypeScript client, each
# appending one 256-byte JSON event per append with 16 connections x 1 in
# flight and 64 x 8, then reading the whole log in order (>= 200,000 events).
#
#   bench/clients.sh          # on a quiet machine: node and clients share its cores
#
# Writes bench/results/clients-<UTC stamp>.md. Environment: ANNAL_CLIENTS_SECONDS
# (4) per append point, ANNAL_BENCH_NO_BUILD=1, ANNAL_BENCH_OUT (bench/results).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build/release"
SECS=${ANNAL_CLIENTS_SECONDS:-4}
OUT=${ANNAL_BENCH_OUT:-$ROOT/bench/results}
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
PY=/usr/bin/python3
log() { printf '[clients %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [[ "${ANNAL_BENCH_NO_BUILD:-0}" != 1 ]]; then
  (cd "$ROOT" && cmake --preset release >/dev/null)
  cmake --build "$BUILD" --target annald annal -j"$(nproc)" >/dev/null
fi
(cd "$ROOT/clients/typescript" && { [[ -d node_modules ]] || npm ci --no-audit --no-fund --loglevel=error; } &&
  npm run build --silent)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/annal-clients.XXXXXX")
PID=""
trap '[[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT INT TERM
"$BUILD/tools/annald" --data "$TMP/data" --listen 127.0.0.1:0 --port-file "$TMP/port" --http 127.0.0.1:0 --log-level warn \
  2>"$TMP/annald.log" &
PID=$!
for _ in $(seq 200); do [[ -s "$TMP/port" ]] && break; sleep 0.05; done
PORT=$(cat "$TMP/port")
log "annald pid $PID on 127.0.0.1:$PORT; load average $(cut -d' ' -f1-3 /proc/loadavg)"
node_cpu() { awk '{printf "%.2f", ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$PID/stat"; }
# Warm-up (not measured): the node's first seconds zero-fill its spare segment.
"$BUILD/tools/annal" bench append --server "127.0.0.1:$PORT" --connections 4 --duration 1 --warmup 0 >/dev/null
sleep 2

rows=()
# measure CLIENT WHAT COMMAND...: the command prints JSON with events and events_per_s.
measure() {
  local client=$1 what=$2 c0 c1 json eps ev gen
  shift 2
  c0=$(node_cpu)
  json=$("$@")
  c1=$(node_cpu)
  eps=$(echo "$json" | jq -r '.events_per_s | floor')
  ev=$(echo "$json" | jq -r '.events // .total_events')
  gen=$(echo "$json" | jq -r '.cpu_s // empty')
  local node_us
  node_us=$(awk -v a="$c1" -v b="$c0" -v n="$ev" 'BEGIN {printf "%.1f", (n > 0 ? (a - b) * 1e6 / n : 0)}')
  local gen_us="-"
  [[ -n "$gen" ]] && gen_us=$(awk -v g="$gen" -v n="$ev" 'BEGIN {printf "%.1f", (n > 0 ? g * 1e6 / n : 0)}')
  log "$client $what: $eps events/s ($ev events), node $node_us us/event, client $gen_us us/event"
  rows+=("| $client | $what | $eps | $node_us | $gen_us |")
}
S="127.0.0.1:$PORT"
for shape in "16 1" "64 8"; do
  read -r c p <<<"$shape"
  measure "C++ (annal bench)" "append ${c}x${p}" "$BUILD/tools/annal" bench append --server "$S" --json --size 256 \
    --streams 1000 --connections "$c" --in-flight "$p" --duration "$SECS" --warmup 0
  measure "Python" "append ${c}x${p}" "$PY" "$ROOT/clients/python/bench.py" --port "$PORT" append \
    --connections "$c" --in-flight "$p" --seconds "$SECS"
  measure "TypeScript" "append ${c}x${p}" node "$ROOT/clients/typescript/bench.mjs" --port "$PORT" append \
    --connections "$c" --in-flight "$p" --seconds "$SECS"
done
"$BUILD/tools/annal" bench append --server "$S" --size 256 --streams 1000 --batch 100 --connections 2 \
  --in-flight 8 --fill-to 200000 >/dev/null
END=$("$BUILD/tools/annal" info --server "$S" | jq -r .durable_end)
measure "C++ (annal bench)" "read-all ($END events)" "$BUILD/tools/annal" bench read-all --server "$S" --json --in-flight 1
measure "Python" "read-all ($END events)" "$PY" "$ROOT/clients/python/bench.py" --port "$PORT" read-all
measure "TypeScript" "read-all ($END events)" node "$ROOT/clients/typescript/bench.mjs" --port "$PORT" read-all

mkdir -p "$OUT"
{
  echo "# Clients side by side, $STAMP"
  echo
  echo "Commit $(git -C "$ROOT" rev-parse --short HEAD), $(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Appends: one 256-byte JSON event each, 1,000 streams, durable acks, $SECS s per point. Reads: the whole"
  echo "log in order, one request at a time (the Python and TypeScript iterators page one request at a time;"
  echo "\`annal bench read-all --in-flight 1\` likewise). Client CPU: the client process (user + system)."
  echo
  echo "| client | load | events/s | node CPU µs/event | client CPU µs/event |"
  echo "|---|---|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} | tee "$OUT/clients-$STAMP.md"
