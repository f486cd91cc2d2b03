#!/usr/bin/env bash
# Throughput and latency against the number of connections, annal and Redis
# side by side in one run (docs/benchmarks.md, "Curves"):
#
#   bench/sweep.sh            # build Release, sweep, plot
#
# For C in 1 2 4 8 16 32 64 connections and P in 1 and 8 appends in flight per
# connection, one 256-byte JSON event per append to 1,000 streams, durable
# acks: `annal bench append` against a fresh annald, then redis-benchmark
# (XADD, `appendfsync always`, -P P for P in flight) against a fresh
# redis-server. Prints a table, writes bench/results/sweep-<UTC stamp>.json
# and, with Debian's python3-matplotlib, three PNGs beside it: throughput,
# p50/p99 latency against connections, and a latency CDF per (C, P).
#
# Run it on a quiet machine only (no builds, tests or other benchmarks):
# the node and the load generator share the machine's cores.
#
# Environment: ANNAL_SWEEP_SECONDS (3) per point; ANNAL_SWEEP_CONNECTIONS
# ("1 2 4 8 16 32 64"); ANNAL_SWEEP_IN_FLIGHT ("1 8"); ANNAL_BENCH_TMP
# (parent of the data directories, default /tmp; must be on the disk to
# measure); ANNAL_BENCH_NO_BUILD=1; ANNAL_BENCH_OUT (bench/results).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build/release"
SECS=${ANNAL_SWEEP_SECONDS:-3}
CONNS=${ANNAL_SWEEP_CONNECTIONS:-"1 2 4 8 16 32 64"}
INFLIGHT=${ANNAL_SWEEP_IN_FLIGHT:-"1 8"}
OUT=${ANNAL_BENCH_OUT:-$ROOT/bench/results}
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
log() { printf '[sweep %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Debian's own python3 (a python3 earlier in PATH, e.g. pyenv's, does not see
# Debian's python3-matplotlib).
PY=/usr/bin/python3
need=()
for p in jq redis-server:redis-server redis-benchmark:redis-tools; do
  command -v "${p%%:*}" >/dev/null || need+=("${p##*:}")
done
[[ -x "$PY" ]] || need+=(python3)
"$PY" -c 'import matplotlib' 2>/dev/null || need+=(python3-matplotlib)
if ((${#need[@]})); then
  log "installing ${need[*]} (Debian packages)"
  SUDO=$([[ $(id -u) == 0 ]] || echo sudo)
  $SUDO apt-get install -y -q "${need[@]}" >/dev/null || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${need[@]}" >/dev/null; }
fi

if [[ "${ANNAL_BENCH_NO_BUILD:-0}" != 1 ]]; then
  log "building Release in $BUILD"
  (cd "$ROOT" && cmake --preset release >/dev/null)
  cmake --build "$BUILD" --target annald annal -j"$(nproc)" >/dev/null
fi
ANNAL="$BUILD/tools/annal"
ANNALD="$BUILD/tools/annald"

TMP=$(mktemp -d "${ANNAL_BENCH_TMP:-${TMPDIR:-/tmp}}/annal-sweep.XXXXXX")
PID=""
stop() {
  [[ -n "$PID" ]] || return 0
  kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
}
trap 'stop; rm -rf "$TMP"' EXIT INT TERM
RES="$TMP/sweep.jsonl"
: >"$RES"
proc_cpu() { awk '{printf "%.2f", ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$1/stat"; }
echo "{\"section\":\"machine\",\"date\":\"$STAMP\",\"nproc\":$(nproc),\"commit\":\"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)\",\"loadavg_start\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$RES"

# ---- annal ----
mkdir -p "$TMP/annal"
"$ANNALD" --data "$TMP/annal/data" --listen 127.0.0.1:0 --port-file "$TMP/annal/port" --http 127.0.0.1:0 --log-level warn \
  2>"$TMP/annal/log" &
PID=$!
for _ in $(seq 200); do [[ -s "$TMP/annal/port" ]] && break; sleep 0.05; done
HOST="127.0.0.1:$(cat "$TMP/annal/port")"
log "annald pid $PID on $HOST"
# Not measured: the first appends, and the background zero-fill of the spare
# segment that a fresh node does in its first seconds (its CPU would be
# charged to the first point).
"$ANNAL" bench append --server "$HOST" --connections 4 --duration 1 --warmup 0 >/dev/null
sleep 2
for p in $INFLIGHT; do
  for c in $CONNS; do
    c0=$(proc_cpu "$PID")
    line=$( { TIMEFORMAT='%U %S'; time "$ANNAL" bench append --server "$HOST" --json --size 256 --streams 1000 \
              --connections "$c" --in-flight "$p" --duration "$SECS" --warmup 0.5 >"$TMP/item.json"; } 2>&1 ) || true
    c1=$(proc_cpu "$PID")
    gen=$(echo "$line" | tail -1 | awk '{printf "%.2f", $1 + $2}')
    jq -c --arg c "$c" --arg p "$p" --argjson node "$(awk -v a="$c1" -v b="$c0" 'BEGIN {printf "%.2f", a - b}')" \
      --argjson gen "${gen:-0}" \
      '{system: "annal", connections: ($c|tonumber), in_flight: ($p|tonumber), events_per_s: .events_per_s,
        p50_ms: .latency.p50_ms, p99_ms: .latency.p99_ms, cdf: .latency.cdf, errors: .errors,
        node_cpu_us_per_event: (if .total_events > 0 then $node * 1e6 / .total_events else null end),
        generator_cpu_us_per_event: (if .total_events > 0 then $gen * 1e6 / .total_events else null end)}' \
      "$TMP/item.json" | tee -a "$RES" | jq -r '"annal \(.connections)x\(.in_flight): \(.events_per_s|floor) events/s, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, node \(.node_cpu_us_per_event|floor) us/event"' >&2
  done
done
stop

# ---- Redis 7, appendfsync always ----
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$TMP/redis"
redis-server --bind 127.0.0.1 --port "$PORT" --protected-mode yes --dir "$TMP/redis" \
  --appendonly yes --appendfsync always --save '' --daemonize no --logfile "$TMP/redis/log" &
PID=$!
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
log "redis-server pid $PID on 127.0.0.1:$PORT (appendfsync $(redis-cli -p "$PORT" config get appendfsync | tail -1))"
PAYLOAD=$("$PY" -c 'import json; d={"seq":1,"pad":""}; s=json.dumps(d,separators=(",",":")); print(s.replace("\"pad\":\"\"", "\"pad\":\"" + "x"*(256-len(s)) + "\""))')
for p in $INFLIGHT; do
  for c in $CONNS; do
    # Calibrate, then size the run to about SECS seconds.
    rps=$(redis-benchmark -p "$PORT" -c "$c" -P "$p" -n $((c * p * 50 + 200)) -r 1000 --csv \
      XADD 'stream:__rand_int__' '*' data "$PAYLOAD" | tail -1 | cut -d'"' -f4)
    n=$(awk -v r="$rps" -v s="$SECS" 'BEGIN {n = int(r * s); if (n < 1000) n = 1000; print n}')
    c0=$(proc_cpu "$PID")
    { TIMEFORMAT='%U %S'; time redis-benchmark -p "$PORT" -c "$c" -P "$p" -n "$n" -r 1000 \
        XADD 'stream:__rand_int__' '*' data "$PAYLOAD" >"$TMP/rb.txt" 2>&1; } 2>"$TMP/rb.time"
    c1=$(proc_cpu "$PID")
    "$PY" - "$TMP/rb.txt" "$c" "$p" "$n" "$(awk -v a="$c1" -v b="$c0" 'BEGIN {printf "%.2f", a - b}')" \
      "$(tail -1 "$TMP/rb.time" | awk '{printf "%.2f", $1 + $2}')" <<'PY' | tee -a "$RES" |
import json, re, sys
text = open(sys.argv[1]).read()
c, p, n, node, gen = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
rps = float(re.search(r"throughput summary: ([0-9.]+) requests per second", text).group(1))
# Only the "Latency by percentile distribution" section (the cumulative
# section after it uses the same line format with other meanings).
section = text.split("Latency by percentile distribution:", 1)[-1].split("\n\n", 1)[0]
cdf = sorted([float(q) / 100, float(ms)]
             for q, ms in re.findall(r"([0-9.]+)% <= ([0-9.]+) milliseconds", section))
def quantile(q):
    for qq, ms in cdf:
        if qq >= q:
            return ms
    return cdf[-1][1] if cdf else None
print(json.dumps({"system": "redis", "connections": c, "in_flight": p, "events_per_s": rps,
                  "p50_ms": quantile(0.5), "p99_ms": quantile(0.99), "cdf": cdf, "errors": 0,
                  "node_cpu_us_per_event": node * 1e6 / n, "generator_cpu_us_per_event": gen * 1e6 / n}))
PY
      jq -r '"redis \(.connections)x\(.in_flight): \(.events_per_s|floor) events/s, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, server \(.node_cpu_us_per_event|floor) us/event"' >&2
  done
done
stop
echo "{\"section\":\"end\",\"loadavg_end\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$RES"

mkdir -p "$OUT"
jq -s '.' "$RES" >"$OUT/sweep-$STAMP.json"
"$PY" "$ROOT/bench/sweep_plot.py" "$OUT/sweep-$STAMP.json"
log "wrote $OUT/sweep-$STAMP.json and its PNGs"
