#!/usr/bin/env bash
# Profiles one `annal bench` item against a fresh node, for finding where a
# benchmark target is missed (docs/benchmarks.md, "Gaps and their causes"):
#
#   bench/profile.sh append --connections 64 --in-flight 8
#   bench/profile.sh read-all            # fills the log to 1,000,000 events first
#
# Prints: the item's result, the node's syscall and context-switch counts per
# event (perf stat, software events and syscall tracepoints: no hardware
# counters needed), and flat CPU profiles (perf record -e cpu-clock) of the
# node and of the load generator. Needs perf; uses build/release as built by
# bench/run.sh. ANNAL_PROFILE_SECONDS sets the measured time (default 5).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B="$ROOT/build/release"
SECS=${ANNAL_PROFILE_SECONDS:-5}
MODE=$1
shift
TMP=$(mktemp -d "${TMPDIR:-/tmp}/annal-profile.XXXXXX")
NODE_PID=""
cleanup() {
  [[ -n "$NODE_PID" ]] && kill "$NODE_PID" 2>/dev/null && while kill -0 "$NODE_PID" 2>/dev/null; do sleep 0.1; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
"$B/tools/annald" --data "$TMP/data" --listen 127.0.0.1:0 --port-file "$TMP/port" --http 127.0.0.1:0 --log-level warn 2>"$TMP/log" &
NODE_PID=$!
for _ in $(seq 200); do [[ -s "$TMP/port" ]] && break; sleep 0.05; done
HOST="127.0.0.1:$(cat "$TMP/port")"
if [[ "$MODE" == read-all || "$MODE" == read-stream ]]; then
  "$B/tools/annal" bench append --host "$HOST" --batch 100 --connections 2 --in-flight 8 --fill-to 1000000 >/dev/null
  "$B/tools/annal" bench append --host "$HOST" --batch 100 --streams 1 --stream-prefix long --in-flight 4 --count 10000 >/dev/null
  "$B/tools/annal" bench read-all --host "$HOST" >/dev/null  # warm the page cache
  EXTRA=()
else
  EXTRA=(--duration "$SECS" --warmup 0)
fi
EVENTS="syscalls:sys_enter_fdatasync,syscalls:sys_enter_pwrite64,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvfrom,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,context-switches,cpu-clock"
echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg)"
perf stat -e "$EVENTS" -p "$NODE_PID" -o "$TMP/node.stat" &
STAT_PID=$!
perf record -q -e cpu-clock -F 1999 -p "$NODE_PID" -o "$TMP/node.data" 2>/dev/null &
REC_PID=$!
sleep 0.3
GEN_T0=$(date +%s.%N)
perf stat -e cpu-clock,context-switches -o "$TMP/gen.stat" -- perf record -q -e cpu-clock -F 1999 -o "$TMP/gen.data" -- \
  "$B/tools/annal" bench "$MODE" --host "$HOST" --json "${EXTRA[@]}" "$@" >"$TMP/result.json" 2>/dev/null || true
kill -INT "$STAT_PID" "$REC_PID" 2>/dev/null || true
wait "$STAT_PID" "$REC_PID" 2>/dev/null || true
cat "$TMP/result.json"
echo "== wall $(awk -v a="$(date +%s.%N)" -v b="$GEN_T0" 'BEGIN {printf "%.2f", a - b}') s; generator:"
grep -E "cpu-clock|context" "$TMP/gen.stat" | sed 's/^/  /'

N=$(jq -r '.events // 0' "$TMP/result.json")
echo "== node, per event (events=$N; counts include warm-up and drain):"
grep -E "syscalls|context|cpu-clock" "$TMP/node.stat" | awk -v n="$N" '{gsub(",", "", $1); printf "  %-40s %12s  %8.3f per event\n", $2, $1, (n > 0 ? $1 / n : 0)}'
echo "== node: CPU by thread and by binary (cpu-clock samples)"
perf report -i "$TMP/node.data" --stdio --no-children --sort comm 2>/dev/null | grep -E "^ +[0-9]" | head -8 || true
perf report -i "$TMP/node.data" --stdio --no-children --sort dso 2>/dev/null | grep -E "^ +[0-9]" | head -8 || true
echo "== node: top functions (cpu-clock samples)"
perf report -i "$TMP/node.data" --stdio --no-children --sort dso,sym 2>/dev/null | grep -E "^ +[0-9]" | head -30 || true
echo "== load generator: CPU by binary, top functions"
perf report -i "$TMP/gen.data" --stdio --no-children --sort dso 2>/dev/null | grep -E "^ +[0-9]" | head -6 || true
perf report -i "$TMP/gen.data" --stdio --no-children --sort dso,sym 2>/dev/null | grep -E "^ +[0-9]" | head -15 || true
