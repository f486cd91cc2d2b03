#!/usr/bin/env bash
# The standard benchmark suite of annal (docs/benchmarks.md), in one command:
#
#   bench/run.sh                 # build Release, measure the disk, run the suite
#
# Builds Release in build/release (cmake --preset release), measures the
# disk's own fdatasync rate/latency and write bandwidth (with fio when it is
# installed, and always with bench/disk_probe.cc), starts annald on a
# temporary directory on 127.0.0.1 with an ephemeral port, runs the suite with
# `annal bench`, writes bench/results/<UTC date and time>.json and .md (so runs
# of one day do not overwrite each other), stops the node by PID and removes
# the directory.
#
# Environment:
#   ANNAL_BENCH_SECONDS  measured seconds per timed item (default 8)
#   ANNAL_BENCH_TMP      parent of the temporary data directory (default $TMPDIR or /tmp);
#                        it must be on the disk you want to measure
#   ANNAL_BENCH_NO_BUILD=1  use the existing build/release as is
#   ANNAL_BENCH_OUT      results directory (default bench/results)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build/release"
SECS=${ANNAL_BENCH_SECONDS:-8}
OUT=${ANNAL_BENCH_OUT:-$ROOT/bench/results}
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)

for tool in cmake jq python3 awk; do
  command -v "$tool" >/dev/null || { echo "bench/run.sh needs $tool (Debian: apt-get install $tool)" >&2; exit 1; }
done

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [[ "${ANNAL_BENCH_NO_BUILD:-0}" != 1 ]]; then
  log "building Release in $BUILD"
  (cd "$ROOT" && cmake --preset release >/dev/null)
  cmake --build "$BUILD" --target annald annal annal_disk_probe -j"$(nproc)" >/dev/null
fi
ANNAL="$BUILD/tools/annal"
ANNALD="$BUILD/tools/annald"
PROBE="$BUILD/bench/annal_disk_probe"
for b in "$ANNAL" "$ANNALD" "$PROBE"; do [[ -x "$b" ]] || { echo "missing $b" >&2; exit 1; }; done

TMP=$(mktemp -d "${ANNAL_BENCH_TMP:-${TMPDIR:-/tmp}}/annal-bench.XXXXXX")
NODE_PID=""
cleanup() {
  if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill -TERM "$NODE_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

RES="$TMP/results.jsonl"
: >"$RES"

# ---- the machine ----
{
  printf '{"section":"machine","date":"%s","nproc":%s,' "$STAMP" "$(nproc)"
  printf '"cpu":"%s",' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//;s/"/\\"/g')"
  printf '"mem_gib":%s,' "$(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)"
  dev=$(df -P "$TMP" | awk 'NR==2 {print $1}')
  printf '"fs":"%s","device":"%s",' "$(findmnt -no FSTYPE -T "$TMP" 2>/dev/null || stat -f -c %T "$TMP")" "$dev"
  printf '"kernel":"%s","commit":"%s","uncommitted_files":%s,"loadavg_start":"%s"}\n' "$(uname -r)" \
    "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | wc -l)" "$(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$RES"

# ---- the disk's own limits ----
log "measuring the disk (annal_disk_probe in $TMP)"
{ printf '{"section":"disk","probe":'; "$PROBE" --dir "$TMP" --json | tr -d '\n'; printf '}\n'; } >>"$RES"
if command -v fio >/dev/null; then
  log "measuring fdatasync with fio"
  fio --name=fsync4k --directory="$TMP" --rw=write --bs=4k --size=64m --fdatasync=1 --runtime=3 --time_based \
    --output-format=json >"$TMP/fio.json" 2>/dev/null &&
    { printf '{"section":"fio","fio":'; jq -c '.jobs[0] | {write_iops: .write.iops, sync_p50_ns: .sync.lat_ns.percentile["50.000000"], sync_p99_ns: .sync.lat_ns.percentile["99.000000"], sync_mean_ns: .sync.lat_ns.mean}' "$TMP/fio.json"; printf '}\n'; } >>"$RES" ||
    log "fio failed; using the probe's figures only"
  rm -f "$TMP"/fsync4k.*
fi

# ---- the node ----
mkdir -p "$TMP/data"
"$ANNALD" --data "$TMP/data" --listen 127.0.0.1:0 --port-file "$TMP/port" --http 127.0.0.1:0 --log-level warn \
  2>"$TMP/annald.log" &
NODE_PID=$!
for _ in $(seq 200); do [[ -s "$TMP/port" ]] && break; sleep 0.05; done
[[ -s "$TMP/port" ]] || { echo "annald did not start:" >&2; cat "$TMP/annald.log" >&2; exit 1; }
HOST="127.0.0.1:$(cat "$TMP/port")"
log "annald pid $NODE_PID on $HOST, data in $TMP/data"

# CPU seconds used by the node (utime+stime from /proc) around each item, to
# show how the 2 cores were shared between node and load generator.
node_cpu() { awk '{printf "%.2f", ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$NODE_PID/stat"; }

# item LABEL MODE ARGS...: runs `annal bench MODE` and records its JSON line
# plus the node's and the generator's CPU seconds.
item() {
  local label=$1 mode=$2
  shift 2
  log "$label: annal bench $mode $*"
  local c0 t0 line rc=0 trace_pid=""
  # The node's own fdatasync durations during the item (perf trace: syscall
  # tracepoints, no ptrace stops), when perf is usable.
  if [[ "$mode" == append || "$mode" == subscribe ]] && command -v perf >/dev/null; then
    perf trace -e fdatasync -p "$NODE_PID" -o "$TMP/trace.txt" 2>/dev/null &
    trace_pid=$!
    sleep 0.3
  fi
  c0=$(node_cpu)
  t0=$(date +%s.%N)
  # The generator's own CPU time, from bash's `times` equivalent: /usr/bin/time is not always installed.
  line=$( { TIMEFORMAT='%U %S'; time "$ANNAL" bench "$mode" --host "$HOST" --json --label "$label" "$@" \
            >"$TMP/item.json"; } 2>"$TMP/item.time") || rc=$?
  local wall c1 gen
  wall=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {printf "%.3f", a - b}')
  c1=$(node_cpu)
  gen=$(tail -1 "$TMP/item.time" | awk '{printf "%.2f", $1 + $2}')
  local syncs='null'
  if [[ -n "$trace_pid" ]]; then
    kill -INT "$trace_pid" 2>/dev/null || true
    wait "$trace_pid" 2>/dev/null || true
    syncs=$(sed -n 's/.*( *\([0-9.]*\) ms): .*fdatasync.*/\1/p' "$TMP/trace.txt" | sort -g |
      awk 'function q(f,  i) {i = int(NR * f) + 1; if (i > NR) i = NR; return v[i]}
           {v[NR] = $1}
           END {if (NR == 0) {print "null"; exit}
                printf "{\"count\":%d,\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"max_ms\":%.4f}",
                       NR, q(0.5), q(0.9), q(0.99), v[NR]}')
    rm -f "$TMP/trace.txt"
  fi
  if [[ ! -s "$TMP/item.json" ]]; then
    log "$label: no result (exit $rc)"; cat "$TMP/item.time" >&2
    printf '{"label":"%s","command":"%s","failed":true,"exit":%d}\n' "$label" "$mode" "$rc" >>"$RES"
    return 0
  fi
  jq -c --argjson rc "$rc" --argjson wall "$wall" --argjson syncs "$syncs" --argjson node "$(awk -v a="$c1" -v b="$c0" 'BEGIN {printf "%.2f", a - b}')" --argjson gen "$gen" \
    '. + {exit: $rc, wall_s: $wall, node_cpu_s: $node, generator_cpu_s: $gen, node_fdatasync: $syncs}' "$TMP/item.json" >>"$RES"
  tail -1 "$RES" | jq -c '{label: .label, events_per_s: .events_per_s, p50_ms: (.latency.p50_ms // .request_latency.p50_ms), exit: .exit}' >&2
}

# quick_sync LABEL: the disk's fdatasync latency right before a latency-bound
# item (the disk is shared: its latency moves from one minute to the next).
quick_sync() {
  { printf '{"section":"%s","probe":' "$1"; "$PROBE" --dir "$TMP" --seconds 1.5 --sync-only --json | tr -d '\n'; printf '}\n'; } >>"$RES"
}

LOAD=(--size 256 --streams 1000 --duration "$SECS" --warmup 1)
quick_sync disk_item1
item 1-append-1x1     append "${LOAD[@]}" --connections 1  --in-flight 1
quick_sync disk_item2
item 2-append-16x1    append "${LOAD[@]}" --connections 16 --in-flight 1
item 3-append-64x8    append "${LOAD[@]}" --connections 64 --in-flight 8
item 4-append-1x8-b100 append "${LOAD[@]}" --connections 1  --in-flight 8 --batch 100
# Item 5 needs a 10,000-event stream and a log of at least 1,000,000 events.
item prep-long-stream append --size 256 --streams 1 --stream-prefix long --batch 100 --in-flight 4 --count 10000
item prep-fill-log    append --size 256 --streams 1000 --batch 100 --connections 2 --in-flight 8 --fill-to 1000000
item 5a-read-stream   read-stream --stream long-0
item 5b-read-all      read-all
item 5b-read-all-2    read-all
item 6-subscribe-100  subscribe "${LOAD[@]}" --connections 64 --in-flight 8 --subscribers 100
# Supplementary (not a suite item): the same 100 subscribers under item 2's
# lighter append load, to separate delivery delay from CPU saturation.
item 6b-subscribe-100-at-16x1 subscribe "${LOAD[@]}" --connections 16 --in-flight 1 --subscribers 100

# The disk again, to show how much its limits moved during the suite.
log "measuring the disk again"
{ printf '{"section":"disk_after","probe":'; "$PROBE" --dir "$TMP" --seconds 1 --json | tr -d '\n'; printf '}\n'; } >>"$RES"

echo "{\"section\":\"end\",\"loadavg_end\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"data_bytes\":$(du -sb "$TMP/data" | cut -f1)}" >>"$RES"

mkdir -p "$OUT"
jq -s '.' "$RES" >"$OUT/$STAMP.json"
python3 "$ROOT/bench/report.py" "$OUT/$STAMP.json" >"$OUT/$STAMP.md"
log "wrote $OUT/$STAMP.json and $OUT/$STAMP.md"
cat "$OUT/$STAMP.md"
