#!/usr/bin/env bash
# Instructions per message, repeatable: the gateway runs under valgrind's callgrind (which
# counts instructions, not seconds, so the figure does not move with the machine's load) while
# the load generator sends through it. Collection is off during start-up and migrations and on
# for the load only (instrumentation toggled by callgrind_control); each scenario is dumped
# separately. Prints one JSON line per scenario
# (instructions, acked messages, deliveries, instructions per message and per delivery) and
# writes the top functions by their own instructions to
# bench/results/callgrind-<time>/<scenario>.txt.
#
#   bash bench/callgrind.sh                 # Postgres, 20 s per scenario, about 3 minutes
#   bash bench/callgrind.sh sqlite 30       # SQLite, 30 s per scenario
#   bash bench/callgrind.sh postgres 20 2   # two nodes over a Redis of its own, both under
#                                           # callgrind: the instructions of both, per message
#                                           # (sessions alternate between the nodes: in `direct`
#                                           # every sender is on the first and its partner on
#                                           # the second); top functions per node
#
# BENCH_GATEWAY=<path> measures another build of the gateway (an earlier commit's, say).
#
# Needs valgrind (callgrind_control, callgrind_annotate), curl and python3; Postgres at
# $BENCH_PG (default postgres://postgres@127.0.0.1:5432) for the postgres backend.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND="${1:-postgres}"
SECS="${2:-20}"
NODES="${3:-1}"
case "$NODES" in 1|2) ;; *) echo "bench/callgrind.sh: nodes must be 1 or 2" >&2; exit 1 ;; esac
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
for tool in valgrind callgrind_control callgrind_annotate curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/callgrind.sh needs $tool on PATH" >&2; exit 1; }
done
SECRET="bench-secret-bench-secret-bench-secret-0123"
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT="bench/results/callgrind-$STAMP-$BACKEND"
[ "$NODES" = 2 ] && OUT="$OUT-2nodes"
WORK=$(mktemp -d)
VGS=()
DB=
cleanup() {
  for p in "${VGS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$DB" ] && { psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT
cargo build --release -q -p switchboard -p loadgen
mkdir -p "$OUT"
if [ "$BACKEND" = sqlite ]; then
  URL="sqlite://$WORK/cg.db"
else
  DB="sb_callgrind_$$"
  psql "$PG/postgres" -qc "CREATE DATABASE $DB" >/dev/null
  URL="$PG/$DB"
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS=()
if [ "$NODES" = 2 ]; then
  command -v redis-server >/dev/null || { echo "bench/callgrind.sh needs redis-server for two nodes" >&2; exit 1; }
  RPORT=$(free_port)
  redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
  VGS+=($!)
  for _ in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  REDIS=(REDIS_URL="redis://127.0.0.1:$RPORT")
fi
NODE_PIDS=()
URLS=()
for i in $(seq 1 "$NODES"); do
  PORT=$(free_port)
  # valgrind runs the threads one at a time; the timeouts are for a machine 50 times slower.
  env -i PATH="$PATH" HOME="$HOME" BIND_ADDR="127.0.0.1:$PORT" DATABASE_URL="$URL" \
    JWT_SECRET="$SECRET" RUST_LOG=warn RATE_PER_S=1000000 RATE_BURST=1000000 DB_TIMEOUT_MS=30000 \
    NODE_ID="cg$i" "${REDIS[@]}" \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg$i.out" \
    "${BENCH_GATEWAY:-target/release/switchboard}" serve >"$WORK/gateway$i.log" 2>&1 &
  VGS+=($!)
  NODE_PIDS+=($!)
  URLS+=("http://127.0.0.1:$PORT")
  for _ in $(seq 1 600); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$WORK/gateway$i.log" >&2; exit 1; }
done
NODE_URLS=$(IFS=,; echo "${URLS[*]}")
PID_LIST=$(IFS=,; echo "${NODE_PIDS[*]}")

# run <name> <loadgen args...>: collect during one scenario, then dump its counts.
run() {
  local name=$1; shift
  for p in "${NODE_PIDS[@]}"; do callgrind_control -i on "$p" >/dev/null; done
  # loadgen exits 1 on a lost or duplicated delivery: the row is still printed, with it.
  target/release/loadgen "$@" --nodes "$NODE_URLS" --secret "$SECRET" \
    --pids "$PID_LIST" --label "callgrind-$BACKEND" 2>"$WORK/$name.err" >"$WORK/$name.json" || true
  [ -s "$WORK/$name.json" ] || { cat "$WORK/$name.err" >&2; exit 1; }
  local annotations=()
  for i in $(seq 1 "$NODES"); do
    local p=${NODE_PIDS[$((i - 1))]} dump
    callgrind_control -i off "$p" >/dev/null
    callgrind_control -d "$name" "$p" >/dev/null
    dump=$(ls -t "$WORK"/cg$i.out.* | head -1)
    callgrind_annotate --threshold=99 "$dump" >"$WORK/$name.$i.annotate"
    annotations+=("$WORK/$name.$i.annotate")
    # CALLGRIND_KEEP=DIR keeps the raw dumps, for callgrind_annotate --tree=caller and the like.
    [ -n "${CALLGRIND_KEEP:-}" ] && mkdir -p "$CALLGRIND_KEEP" && cp "$dump" "$CALLGRIND_KEEP/$name.$i.callgrind"
  done
  python3 - "$name" "$WORK/$name.json" "$OUT/$name" "${annotations[@]}" <<'PY'
import json, re, sys
name, row, top = sys.argv[1:4]
annotates = sys.argv[4:]
r = json.load(open(row))["result"]
acked, delivered = r["acked"], r["delivered"]
totals, tops = [], []
for node, annotate in enumerate(annotates, 1):
    text = open(annotate).read()
    m = re.search(r"^\s*([\d,]+)\s*(?:\([^)]*\)\s*)?PROGRAM TOTALS", text, re.M)
    if not m:
        sys.exit(f"{name}: no totals in callgrind_annotate's output:\n{text[:2000]}")
    total = int(m.group(1).replace(",", ""))
    fns = []
    for line in text.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            fns.append((int(m.group(1).replace(",", "")), float(m.group(2)), m.group(3)))
    # One node: <name>.txt as before; two: <name>.node1.txt and <name>.node2.txt.
    path = f"{top}.txt" if len(annotates) == 1 else f"{top}.node{node}.txt"
    with open(path, "w") as f:
        f.write(f"{name}: {total:,} instructions for {acked:,} acked sends and {delivered:,} deliveries\n")
        f.write("self instructions, share, per acked send, function\n")
        for ir, pct, fn in fns[:40]:
            f.write(f"{ir:>15,} {pct:5.1f}% {ir / max(acked, 1):>10,.0f}  {fn[:160]}\n")
    totals.append(total)
    tops.append(fns)
total = sum(totals)
print(json.dumps({"label": "callgrind", "scenario": name, "nodes": len(annotates),
                  "instructions": total, "per_node": totals, "acked": acked,
                  "delivered": delivered, "per_acked_send": round(total / max(acked, 1)),
                  "per_delivery": round(total / max(delivered, 1)), "missing": r["missing"],
                  "top": [{"share": pct, "fn": fn[:120]} for _, pct, fn in tops[0][:8]]}))
PY
}

run direct direct --seconds "$SECS" --pairs 10 --window 4
run group group --seconds "$SECS" --groups 2 --members 10 --senders 2 --window 2
echo "top functions: $OUT/" >&2
