#!/usr/bin/env bash
# What one idle WebSocket holds, by allocation site: heaptrack on a glibc build of the gateway
# (jemalloc, the default allocator, is invisible to heaptrack) while the load generator holds
# N authenticated idle sockets open on a fresh SQLite node. Prints the largest sites at the
# peak with their bytes per socket; the full report is kept (path printed at the end).
#
#   bash bench/idle_heap.sh          # 3,000 sockets, about 2 minutes after the builds
#   bash bench/idle_heap.sh 1000
#
# Needs heaptrack (Debian: apt-get install heaptrack). Run it alone on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-3000}"
command -v heaptrack >/dev/null || { echo "bench/idle_heap.sh needs heaptrack on PATH" >&2; exit 1; }
SECRET="bench-secret-bench-secret-bench-secret-0123"
WORK=$(mktemp -d)
HT=
cleanup() { [ -n "$HT" ] && pkill -INT -P "$HT" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
cargo build --release -q --no-default-features -p switchboard
cp target/release/switchboard "$WORK/sb-glibc"
cargo build --release -q -p loadgen
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ulimit -n "$(ulimit -Hn)" || true

env -i PATH="$PATH" HOME="$HOME" BIND_ADDR="127.0.0.1:$PORT" DATABASE_URL="sqlite://$WORK/idle.db" \
  JWT_SECRET="$SECRET" RUST_LOG=warn MAX_SESSIONS_PER_USER=1000 \
  heaptrack -o "$WORK/heap" "$WORK/sb-glibc" serve >"$WORK/gateway.log" 2>&1 &
HT=$!
for _ in $(seq 1 150); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
PID=$(pgrep -P "$HT" -x sb-glibc | head -1 || true)
[ -n "$PID" ] || { cat "$WORK/gateway.log" >&2; exit 1; }
target/release/loadgen idle --nodes "http://127.0.0.1:$PORT" --secret "$SECRET" --pids "$PID" \
  --label idle-heap --sockets "$N" 2>/dev/null | tee "$WORK/idle.json"
kill -INT "$PID"
wait "$HT" || true
HT=

REPORT="$WORK/peaks.txt"
heaptrack_print -f "$WORK"/heap.* --print-peaks 1 --print-allocators 0 --print-leaks 0 \
  --print-temporary 0 -n 12 >"$REPORT" 2>/dev/null
# Each entry: "<size> peak memory consumed over <calls> calls from" and the allocating function.
python3 - "$REPORT" "$N" <<'PY'
import re, sys
units = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}
lines = open(sys.argv[1]).read().splitlines()
n = int(sys.argv[2])
print(f"{'bytes/socket':>12}  {'calls/socket':>12}  allocated in")
for i, line in enumerate(lines):
    m = re.match(r"^([\d.]+)([KMG]?) peak memory consumed over (\d+) calls from$", line)
    if m:
        size = float(m[1]) * units[m[2]]
        site = re.sub(r"::h[0-9a-f]{16}$", "", lines[i + 1].strip())
        print(f"{size / n:>12,.0f}  {int(m[3]) / n:>12.2f}  {site[:110]}")
PY
echo "full report: $REPORT; the load generator's line (RSS per socket under heaptrack): $WORK/idle.json"
