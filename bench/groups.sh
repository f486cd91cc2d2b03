#!/usr/bin/env bash
# Consumer-group delivery throughput (issue #15's target: ordered >= 50% of
# round robin with 8 consumers and 1,000 keys), in one run beside a plain
# subscription of the same log; node and generator CPU per event printed.
#
#   bench/groups.sh            # ANNAL_GROUP_EVENTS (200000), ANNAL_BENCH_NO_BUILD=1
#
# Run it on a quiet machine only (nothing else running).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build/release"
EVENTS=${ANNAL_GROUP_EVENTS:-200000}
if [[ "${ANNAL_BENCH_NO_BUILD:-0}" != 1 ]]; then
  cmake --preset release >/dev/null
  cmake --build "$BUILD" --target annald annal_group_bench -j"$(nproc)" >/dev/null
fi
TMP=$(mktemp -d "${ANNAL_BENCH_TMP:-/tmp}/annal-groups.XXXXXX")
NODE_PID=""
cleanup() {
  if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill -TERM "$NODE_PID"
    for _ in $(seq 300); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NODE_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
"$BUILD/tools/annald" --data "$TMP/data" --listen 127.0.0.1:0 --port-file "$TMP/port" --http 127.0.0.1:0 \
  --log-level warn 2>"$TMP/annald.log" &
NODE_PID=$!
for _ in $(seq 100); do [[ -s "$TMP/port" ]] && break; sleep 0.1; done
[[ -s "$TMP/port" ]] || { cat "$TMP/annald.log" >&2; exit 1; }
echo "commit $(git -C "$ROOT" rev-parse --short HEAD), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/bench/annal_group_bench" --server "127.0.0.1:$(cat "$TMP/port")" --node-pid "$NODE_PID" \
  --events "$EVENTS"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
