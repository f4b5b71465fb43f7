#!/usr/bin/env bash
# What a `mixed` send costs against a `group` send (docs/performance.md, "Session 14"): one
# Postgres node on a fresh database per scenario, `group` closed loop and `mixed` offered
# $RATE sends/s (default 600), 10 s each; prints Postgres's transactions and WAL flushes per
# send for that database, the gateway's CPU and the machine's. Needs the release builds of
# the gateway and loadgen (cargo build --release -p switchboard -p loadgen), or BENCH_GATEWAY=<a
# gateway binary> to measure another build. Run it alone on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
SECRET="bench-secret-bench-secret-bench-secret-0123"
GW=${BENCH_GATEWAY:-target/release/switchboard}; LG=target/release/loadgen
RATE=${RATE:-600}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for sc in group mixed; do
  db="sb_commits_$RANDOM"; psql "$PG/postgres" -qc "CREATE DATABASE $db"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  env -i PATH="$PATH" BIND_ADDR=127.0.0.1:$port DATABASE_URL=$PG/$db JWT_SECRET=$SECRET RUST_LOG=warn \
    RATE_PER_S=1000000 RATE_BURST=1000000 MAX_SESSIONS_PER_USER=1000 $GW serve >"$WORK/gw-$sc.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -fs http://127.0.0.1:$port/readyz >/dev/null 2>&1 && break; sleep 0.1; done
  q() { psql "$PG/postgres" -Atc "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname='$db'), wal_sync, wal_records FROM pg_stat_wal"; }
  b=$(q)
  $LG $sc --nodes http://127.0.0.1:$port --secret $SECRET --pids $pid --label $sc --seconds 10 --groups 20 --members 10 --senders 4 --rate $RATE > "$WORK/lg-$sc.json"
  sleep 0.5; a=$(q)
  python3 - "$sc" "$b" "$a" "$WORK/lg-$sc.json" <<'PY'
import json,sys
sc,b,a,f=sys.argv[1:]
b=[int(x) for x in b.split('|')]; a=[int(x) for x in a.split('|')]
r=json.loads(open(f).read().strip().splitlines()[-1])['result']
n=r['acked']
g=r['gateways'][0]
print(f"{sc}: acked {n} ({r['acked_per_s']}/s), transactions {a[0]-b[0]} ({(a[0]-b[0])/n:.2f}/send), WAL flushes {a[1]-b[1]} ({(a[1]-b[1])/n:.2f}/send), WAL records {(a[2]-b[2])/n:.1f}/send, gateway CPU {g['cpu_percent']}% ({g['cpu_percent']*1e4/r['acked_per_s']:.0f} us/send), machine {r['machine']['busy_percent']}%, loadgen {r['machine']['loadgen_cpu_percent']}%")
PY
  kill $pid; wait $pid 2>/dev/null || true
  psql "$PG/postgres" -qc "DROP DATABASE $db WITH (FORCE)"
done
