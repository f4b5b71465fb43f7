#!/usr/bin/env bash
# What the disk's flush takes under the embedded default at 100 messages/s: the gateway on a
# fresh SQLite file runs under strace, which times only fdatasync/fsync (seccomp filter, so
# other syscalls run untraced), while the load generator's `rate` scenario measures send ->
# receive. Prints the loadgen rows, then the flushes' p50/p90/p99/max during the load: an upper
# bound on what the disk's flush takes inside the gateway (strace's stops fall inside its
# timing), to set beside the gateway's p99 (docs/performance.md, "SQLite at 100/s").
#
#   bash bench/sqlite_fsync.sh        # 2 runs of 12 s, about a minute after the builds
#   bash bench/sqlite_fsync.sh 4 20   # 4 runs of 20 s
#
# Needs strace 5.3+ (for --seccomp-bpf), curl, pgrep and python3 on PATH. Run it alone on the
# machine.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-2}"
SECS="${2:-12}"
for tool in strace curl pgrep python3; do
  command -v "$tool" >/dev/null || { echo "bench/sqlite_fsync.sh needs $tool on PATH" >&2; exit 1; }
done
strace -f --seccomp-bpf -e trace=fsync -o /dev/null true 2>/dev/null \
  || { echo "bench/sqlite_fsync.sh needs strace 5.3+ (--seccomp-bpf)" >&2; exit 1; }
SECRET="bench-secret-bench-secret-bench-secret-0123"
WORK=$(mktemp -d)
ST=
cleanup() { [ -n "$ST" ] && kill "$ST" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
cargo build --release -q -p switchboard -p loadgen
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

env -i PATH="$PATH" HOME="$HOME" BIND_ADDR="127.0.0.1:$PORT" DATABASE_URL="sqlite://$WORK/rate.db" \
  JWT_SECRET="$SECRET" RUST_LOG=warn RATE_PER_S=1000000 RATE_BURST=1000000 \
  strace -f --seccomp-bpf -e trace=fdatasync,fsync -T -o "$WORK/flushes.txt" \
  target/release/switchboard serve >"$WORK/gateway.log" 2>&1 &
ST=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
PID=$(pgrep -P "$ST" -x switchboard | head -1 || true)
[ -n "$PID" ] && curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null \
  || { cat "$WORK/gateway.log" >&2; exit 1; }
# Flushes from start-up (migrations) are not the load's.
SKIP=$(wc -l <"$WORK/flushes.txt")
for _ in $(seq 1 "$RUNS"); do
  target/release/loadgen rate --nodes "http://127.0.0.1:$PORT" --secret "$SECRET" --pids "$PID" \
    --label sqlite-fsync --seconds "$SECS" --pairs 50 --rate 100 2>/dev/null
done
# Only the load's: not the checkpoint and close at shutdown.
END=$(wc -l <"$WORK/flushes.txt")
kill "$PID"
wait "$ST" || true
ST=
sed -n "$((SKIP + 1)),${END}p" "$WORK/flushes.txt" >"$WORK/load-flushes.txt"
python3 - "$WORK/load-flushes.txt" <<'PY'
import json, re, sys
took = sorted(float(m.group(1)) * 1000 for line in open(sys.argv[1])
              if (m := re.search(r"<([\d.]+)>\s*$", line)))
n = len(took)
if not n:
    sys.exit("no fdatasync/fsync traced")
q = lambda p: round(took[min(n - 1, int(n * p))], 3)
print(json.dumps({"label": "raw", "scenario": "sqlite-fdatasync-under-gateway", "rate": 100,
                  "flushes": n, "ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": round(took[-1], 3)}}))
PY
