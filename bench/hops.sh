#!/usr/bin/env bash
# Thread hand-offs per message, a figure the machine's speed barely moves: one fresh SQLite
# node (its file on tmpfs unless HOPS_DIR says otherwise, so the disk's flush does not blur
# it), a 2 s warm-up, then a loadgen scenario (default: rate 100/s for 10 s). Prints the
# context switches of all the gateway's threads per acked message (each hand-off to a
# sleeping thread is at least one), send -> receive p50/p99, and the node's own store-call
# and send-to-ack means (bench/node_metrics.py).
#
#   bash bench/hops.sh target/release/switchboard new
#   bash bench/hops.sh /tmp/sb-base old group --groups 20 --members 10 --senders 4 --window 16 --seconds 10
#
# Needs the release load generator (cargo build --release -p loadgen). Run it alone.
set -euo pipefail
cd "$(dirname "$0")/.."
GW=$1 LABEL=$2; shift 2
ARGS=("$@"); [ ${#ARGS[@]} = 0 ] && ARGS=(rate --pairs 50 --rate 100 --seconds 10)
SECRET="bench-secret-bench-secret-bench-secret-0123"
LG=target/release/loadgen
W=$(mktemp -d -p "${HOPS_DIR:-/dev/shm}")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env -i PATH="$PATH" BIND_ADDR=127.0.0.1:$port DATABASE_URL=sqlite://$W/db.sqlite JWT_SECRET=$SECRET RUST_LOG=warn \
  RATE_PER_S=1000000 RATE_BURST=1000000 MAX_SESSIONS_PER_USER=1000 "$GW" serve >"$W/gw.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$W"' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
node=http://127.0.0.1:$port
switches() { cat /proc/$pid/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
# Sessions, pools and the direct threads exist before counting.
"$LG" rate --pairs 50 --rate 100 --seconds 2 --nodes $node --secret $SECRET --pids $pid --label warm >/dev/null 2>&1
python3 bench/node_metrics.py snapshot $node >"$W/before.json"
a=$(switches)
"$LG" "${ARGS[@]}" --nodes $node --secret $SECRET --pids $pid --label "$LABEL" 2>/dev/null >"$W/lg.json"
b=$(switches)
python3 bench/node_metrics.py diff "$W/before.json" $node --label "$LABEL" >"$W/m.json"
python3 - "$LABEL" "$a" "$b" "$W/lg.json" "$W/m.json" <<'PY'
import json, sys
label, a, b, lg, m = sys.argv[1:]
r = json.loads(open(lg).read().strip().splitlines()[-1])["result"]
n = r.get("acked") or 1
d = r["delivery_latency_ms"]
node = json.loads(open(m).read().strip().splitlines()[-1])["nodes"][0]
print(f"{label}: context switches per message {(int(b) - int(a)) / n:.2f}  send->receive p50 {d['p50']} p99 {d['p99']}"
      f"  store call mean {node['db_query_ms']['mean']}  send->ack mean {node['send_ack_ms']['mean']}  mean batch {node['mean_batch']}")
PY
