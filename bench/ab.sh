#!/usr/bin/env bash
# Two gateway builds side by side on one loadgen scenario, in alternating rounds, a fresh
# node (new SQLite file or new Postgres database) for every run: before/after figures of one
# change, measured in the same quarter hour. One line per run: the build, throughput, ack
# and send -> receive latency (p50 / p99 / max, ms), errors, missing.
#
#   bash bench/ab.sh OLD_BINARY NEW_BINARY [sqlite|postgres] [ROUNDS] -- <loadgen args>
#   bash bench/ab.sh /tmp/sb-base target/release/switchboard sqlite 4 -- rate --pairs 50 --rate 100 --seconds 12
#
# Needs the release load generator (cargo build --release -p loadgen). Run it alone on the
# machine: it measures speed.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1 NEW=$2 DB=${3:-sqlite} ROUNDS=${4:-4}
shift 4; [ "${1:-}" = "--" ] && shift
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
SECRET="bench-secret-bench-secret-bench-secret-0123"
LG=target/release/loadgen
WORK=$(mktemp -d)
GWPID=""
trap '[ -n "$GWPID" ] && kill "$GWPID" 2>/dev/null; rm -rf "$WORK"' EXIT

run() { # label binary
  local label=$1 gw=$2 url db=""; shift 2
  if [ "$DB" = postgres ]; then
    db="sb_ab_$RANDOM"; psql "$PG/postgres" -qc "CREATE DATABASE $db"; url=$PG/$db
  else
    url=sqlite://$WORK/$label-$RANDOM.db
  fi
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  env -i PATH="$PATH" BIND_ADDR=127.0.0.1:$port DATABASE_URL=$url JWT_SECRET=$SECRET RUST_LOG=warn \
    RATE_PER_S=1000000 RATE_BURST=1000000 MAX_SESSIONS_PER_USER=1000 "$gw" serve >"$WORK/gw.log" 2>&1 &
  local pid=$!
  GWPID=$pid
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  "$LG" "$@" --nodes "http://127.0.0.1:$port" --secret $SECRET --pids $pid --label "$label" > "$WORK/lg.json"
  python3 - "$label" "$WORK/lg.json" <<'PY'
import json,sys
label,f=sys.argv[1:]
r=json.loads(open(f).read().strip().splitlines()[-1])['result']
def lat(k):
    l=r.get(k) or {}
    return f"{l.get('p50','-')} / {l.get('p99','-')} / {l.get('max','-')}"
tp=r.get('acked_per_s') or r.get('reconnects_per_s') or r.get('per_s')
print(f"{label:4} {tp}/s  ack {lat('ack_latency_ms')}  send->receive {lat('delivery_latency_ms')}  errors {r.get('errors')}  missing {r.get('missing')}  machine {r.get('machine',{}).get('busy_percent','-')}%  catch-up {lat('catch_up_ms')}")
PY
  kill $pid; wait $pid 2>/dev/null || true
  GWPID=""
  [ -n "$db" ] && psql "$PG/postgres" -qc "DROP DATABASE $db WITH (FORCE)"
  return 0
}

for i in $(seq 1 "$ROUNDS"); do
  # Alternate which build goes first, so a drift in the machine's speed hits both alike.
  if [ $((i % 2)) = 1 ]; then run old "$OLD" "$@"; run new "$NEW" "$@"
  else run new "$NEW" "$@"; run old "$OLD" "$@"; fi
done
