#!/usr/bin/env bash
# Runs the load scenarios behind docs/performance.md: the machine's raw limits (pgbench on the
# same Postgres, redis-benchmark on the same Redis), then each scenario on SQLite and on
# Postgres with one node, and on two nodes over Redis. (A few tables in that doc came from
# one-off commands it names beside them, not from this script.) One JSON line per row goes to
# bench/results/run-<time>.jsonl (and stdout).
#
#   bash bench/run.sh            # the full run, about 15 minutes on 2 cores
#   bash bench/run.sh --smoke    # every scenario for 2 s at small sizes, on every setup: exit 1
#                                # on a lost or duplicated delivery, a gateway error, or no work done
#   bash bench/run.sh --sweep    # send -> receive latency against offered load, and RSS
#                                # against idle sockets, on one Postgres node, one SQLite node,
#                                # two Postgres nodes and two SQLite nodes over Redis (about 10
#                                # minutes); then python3 bench/plot.py bench/results/sweep-<time>.jsonl
#   bash bench/run.sh --half-peak  # two Postgres nodes: the peak, then send -> receive at half
#                                # of it and at 100/s, each with the nodes' own commit and ack
#                                # latency; one node at the same half-peak rate (about 2 minutes)
#   bash bench/run.sh --idle     # RSS per idle socket at 10,000 and 19,000 per node, fresh
#                                # nodes each: one SQLite, one Postgres, two SQLite, two Postgres
#                                # (two nodes: one load generator per node; about 5 minutes)
#   bash bench/run.sh --floor    # send -> receive at 100/s on each backend beside the floors
#                                # under it: pgbench's lone message, a bare SQLite commit (3 min)
#
# BENCH_GATEWAY=<path> runs another build of the gateway (an earlier commit's, say) against
# the same load generator, and BENCH_LABEL=<text> prefixes the rows' labels: before/after
# rows of one change in one run.
#
# Needs: Postgres at $BENCH_PG (default postgres://postgres@127.0.0.1:5432) with pgbench,
# redis-server and redis-benchmark on PATH. Run it alone on the machine: it measures speed.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
SWEEP=0
HALF=0
IDLE=0
FLOOR=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
[ "${1:-}" = "--idle" ] && IDLE=1
[ "${1:-}" = "--floor" ] && FLOOR=1
[ "${1:-}" = "--sweep" ] && SWEEP=1
[ "${1:-}" = "--half-peak" ] && HALF=1
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
SECRET="bench-secret-bench-secret-bench-secret-0123"
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT="${BENCH_OUT:-bench/results/run-$STAMP.jsonl}"
[ "$SWEEP" = 1 ] && OUT="${BENCH_OUT:-bench/results/sweep-$STAMP.jsonl}"
[ "$HALF" = 1 ] && OUT="${BENCH_OUT:-bench/results/half-peak-$STAMP.jsonl}"
[ "$IDLE" = 1 ] && OUT="${BENCH_OUT:-bench/results/idle-$STAMP.jsonl}"
[ "$FLOOR" = 1 ] && OUT="${BENCH_OUT:-bench/results/floor-$STAMP.jsonl}"
[ "$SMOKE" = 1 ] && OUT="${BENCH_OUT:-$(mktemp)}"
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d)
PIDS=()
DBS=()

log() { printf '[bench] %s\n' "$*" >&2; }
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for d in "${DBS[@]:-}"; do
    [ -n "$d" ] && psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The smoke run checks for loss, not speed: debug builds, which CI has already made.
PROFILE=release
[ "$SMOKE" = 1 ] && PROFILE=debug
log "building ($PROFILE)"
# With BENCH_GATEWAY the gateway is a build made elsewhere: only the load generator is built.
PKGS=(-p loadgen)
[ -z "${BENCH_GATEWAY:-}" ] && PKGS+=(-p switchboard)
if [ "$PROFILE" = release ]; then
  cargo build --release -q "${PKGS[@]}"
else
  cargo build -q "${PKGS[@]}"
fi
GW="${BENCH_GATEWAY:-target/$PROFILE/switchboard}"
LG=target/$PROFILE/loadgen
# Each socket is a file descriptor on both ends.
ulimit -n "$(ulimit -Hn)" || true

# A private Redis for the two-node rows and for redis-benchmark.
RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# start_nodes <sqlite|postgres> <n>: starts n nodes on a fresh database; sets NODES, GPIDS.
start_nodes() {
  local backend=$1 n=$2 db url
  if [ "$backend" = sqlite ]; then
    url="sqlite://$WORK/bench-$RANDOM.db"
  else
    db="sb_bench_$$_$RANDOM"
    psql "$PG/postgres" -qc "CREATE DATABASE $db" >/dev/null
    DBS+=("$db")
    # BENCH_PG_QUERY: connection options for the nodes only (an experiment such as
    # ?options=-c%20synchronous_commit%3Doff, which takes the flush out of every commit).
    url="$PG/$db${BENCH_PG_QUERY:-}"
  fi
  NODES=""
  GPIDS=""
  for i in $(seq 0 $((n - 1))); do
    local port; port=$(free_port)
    local extra=()
    [ "$n" -gt 1 ] && extra=(REDIS_URL="redis://127.0.0.1:$RPORT")
    env -i PATH="$PATH" HOME="$HOME" BIND_ADDR="127.0.0.1:$port" DATABASE_URL="$url" \
      JWT_SECRET="$SECRET" NODE_ID="bench$i" RUST_LOG=warn \
      RATE_PER_S=1000000 RATE_BURST=1000000 MAX_SESSIONS_PER_USER=1000 \
      "${extra[@]}" "$GW" serve >"$WORK/gw-$backend-$i.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 100); do
      curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
      sleep 0.1
    done
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$WORK/gw-$backend-$i.log" >&2; exit 1; }
    NODES="${NODES:+$NODES,}http://127.0.0.1:$port"
    GPIDS="${GPIDS:+$GPIDS,}$pid"
  done
}

stop_nodes() {
  for p in ${GPIDS//,/ }; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}

# row <label> <scenario> [loadgen args...]: one scenario against the running nodes.
row() {
  local label=$1 scenario=$2; shift 2
  label="${BENCH_LABEL:-}$label"
  log "$label: $scenario $*"
  "$LG" "$scenario" --nodes "$NODES" --secret "$SECRET" --pids "$GPIDS" --label "$label" "$@" \
    | tee -a "$OUT"
}

# metered_row <label> <scenario> [loadgen args...]: a row, then what the nodes' own counters
# say about it (commit batches, the mean batch, store call and ack latency; bench/node_metrics.py).
metered_row() {
  python3 bench/node_metrics.py snapshot "$NODES" >"$WORK/before.json"
  row "$@"
  python3 bench/node_metrics.py diff "$WORK/before.json" "$NODES" --label "${BENCH_LABEL:-}$1" | tee -a "$OUT"
}

# idle_split <label> <sockets per node>: `idle` on every running node at once, one load
# generator per node, each given only its node and that node's pid. Why not one generator
# over all nodes: the file limit is 20,000 per process here, hard, so one cannot hold 20,000
# or more sockets; and with several nodes it divides each node's RSS growth by all the
# sockets, not by that node's share. Each generator binds its own loopback source addresses
# (127.0.0.1-8, .9-16, ...: --source-base) so that they draw on no common ephemeral ports.
# Each prints its own line, labelled <label>-node<i>, with the same "split" id and
# "split_nodes", which bench/table.py and bench/plot.py add into one row.
SPLITS=0
idle_split() {
  local label="${BENCH_LABEL:-}$1" n=$2 i p rc=0 nodes=() pids=() lgs=()
  IFS=, read -ra nodes <<<"$NODES"
  IFS=, read -ra pids <<<"$GPIDS"
  SPLITS=$((SPLITS + 1))
  local split="$label idle $n per node #$SPLITS"
  log "$label: idle --sockets $n on each of ${#nodes[@]} nodes, one load generator each"
  for i in "${!nodes[@]}"; do
    "$LG" idle --nodes "${nodes[$i]}" --secret "$SECRET" --pids "${pids[$i]}" \
      --label "$label-node$i" --sockets "$n" --sources 8 --source-base $((1 + 8 * i)) \
      >"$WORK/split-$i.json" &
    lgs+=("$!")
    PIDS+=("$!")
  done
  for p in "${lgs[@]}"; do wait "$p" || rc=1; done
  # Every line that was printed goes to the results, even when a generator failed (exit 1
  # below, as row's pipeline would).
  for i in "${!nodes[@]}"; do
    if [ -s "$WORK/split-$i.json" ]; then
      python3 -c '
import json, sys
d = json.loads(sys.stdin.readline())
d.update(split=sys.argv[1], split_node=int(sys.argv[2]), split_nodes=int(sys.argv[3]))
print(json.dumps(d, separators=(",", ":")))
' "$split" "$i" "${#nodes[@]}" <"$WORK/split-$i.json" | tee -a "$OUT"
    else
      rc=1
    fi
  done
  return "$rc"
}

S=10
[ "$SMOKE" = 1 ] && S=2

# tps <pgbench args...>: pgbench's transactions per second; its own error and exit 1 if none.
tps() {
  local t
  t=$(pgbench -n "$@" 2>"$WORK/pgbench.err" | awk '/^tps/ {print $3; exit}')
  [ -n "$t" ] || { echo "pgbench $* failed:" >&2; cat "$WORK/pgbench.err" >&2; exit 1; }
  echo "$t"
}

# raw_db: a fresh database with one table for pgbench's raw limits; sets db, writes one.sql.
raw_db() {
  db="sb_bench_raw_$$"
  psql "$PG/postgres" -qc "CREATE DATABASE $db" >/dev/null
  DBS+=("$db")
  psql "$PG/$db" -qc "CREATE TABLE t (id bigserial PRIMARY KEY, thread text, body text, at timestamptz DEFAULT now())"
  echo "INSERT INTO t (thread, body) VALUES ('x', 'hello');" >"$WORK/one.sql"
}

# The floor under the `rate` rows' latency: what Postgres alone takes, at 100/s, for the
# statements the gateway sends for one message (tables shaped like its own). "as sent" is one
# round trip per statement, as a lone send goes today; "one statement" folds them into one
# CTE, the lever docs/performance.md names; "insert-only" is one row committed on its own, the
# least any durable ack can cost. p50 and p99 from pgbench's per-transaction log.
lone_message_latency() {
  local db="sb_bench_lat_$$"
  psql "$PG/postgres" -qc "CREATE DATABASE $db" >/dev/null
  DBS+=("$db")
  psql "$PG/$db" -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE TABLE th (id text PRIMARY KEY, last_seq bigint NOT NULL DEFAULT 0, updated_at timestamp NOT NULL DEFAULT now());
CREATE TABLE mem (thread_id text, user_id text, joined_at timestamp NOT NULL DEFAULT now(), PRIMARY KEY (thread_id, user_id));
CREATE TABLE m (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), thread_id text NOT NULL, seq bigint NOT NULL,
  sender_id text NOT NULL, client_id text, body text NOT NULL, created_at timestamp NOT NULL DEFAULT now());
CREATE UNIQUE INDEX m_sender_client ON m (sender_id, client_id);
INSERT INTO th (id) SELECT 't' || i FROM generate_series(1, 50) i;
INSERT INTO mem (thread_id, user_id) SELECT 't' || i, u || i FROM generate_series(1, 50) i, (VALUES ('s'), ('r')) v(u);
SQL
  cat >"$WORK/as-sent.sql" <<'SQL'
\set t random(1, 50)
SELECT id FROM m WHERE sender_id = 's' || :t AND client_id = md5(random()::text);
BEGIN;
UPDATE th SET last_seq = last_seq + 1, updated_at = now() WHERE id = 't' || :t RETURNING last_seq;
SELECT user_id FROM mem WHERE thread_id = 't' || :t ORDER BY joined_at, user_id;
INSERT INTO m (thread_id, seq, sender_id, client_id, body) VALUES ('t' || :t, 0, 's' || :t, md5(random()::text), 'hello');
COMMIT;
SQL
  cat >"$WORK/one-statement.sql" <<'SQL'
\set t random(1, 50)
WITH a AS (UPDATE th SET last_seq = last_seq + 1, updated_at = now() WHERE id = 't' || :t RETURNING id, last_seq), i AS (INSERT INTO m (thread_id, seq, sender_id, client_id, body) SELECT id, last_seq, 's' || :t, md5(random()::text), 'hello' FROM a RETURNING seq) SELECT (SELECT seq FROM i), array(SELECT user_id FROM mem WHERE thread_id = 't' || :t ORDER BY joined_at, user_id);
SQL
  echo "INSERT INTO m (thread_id, seq, sender_id, client_id, body) VALUES ('t1', 0, 's1', md5(random()::text), 'hello');" \
    >"$WORK/insert-only.sql"
  local form
  for form in as-sent one-statement insert-only; do
    rm -f "$WORK"/lat.*
    (cd "$WORK" && pgbench -n -M prepared -c 4 -j 2 -R 100 -T "$S" -l --log-prefix=lat -f "$form.sql" "$PG/$db" >/dev/null 2>"$WORK/pgbench.err") \
      || { echo "pgbench ($form) failed:" >&2; cat "$WORK/pgbench.err" >&2; exit 1; }
    # Per-transaction log: client, tx, latency in µs, ...
    cat "$WORK"/lat.* | python3 -c '
import json, sys
us = sorted(int(l.split()[2]) for l in sys.stdin if l.strip())
q = lambda p: round(us[min(len(us) - 1, int(p * len(us)))] / 1000, 3)
print(json.dumps({"label": "raw", "scenario": "pgbench-lone-message", "form": sys.argv[1], "rate": 100,
                  "transactions": len(us), "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": round(us[-1] / 1000, 3)}))
' "$form" | tee -a "$OUT"
  done
}

# A SQLite commit (WAL, synchronous=FULL, as the gateway sets it) at 100/s: the floor under
# the SQLite `rate` row.
sqlite_commit_latency() {
  rm -f "$WORK/raw.db"*
  python3 - "$WORK/raw.db" "$S" <<'PY' | tee -a "$OUT"
import json, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE m (id INTEGER PRIMARY KEY, body TEXT)")
took, t0 = [], time.monotonic()
for i in range(int(sys.argv[2]) * 100):
    time.sleep(max(0.0, t0 + i / 100 - time.monotonic()))
    a = time.perf_counter()
    db.execute("BEGIN IMMEDIATE"); db.execute("INSERT INTO m (body) VALUES ('hello')"); db.execute("COMMIT")
    took.append(time.perf_counter() - a)
took.sort()
q = lambda p: round(took[min(len(took) - 1, int(p * len(took)))] * 1000, 3)
print(json.dumps({"label": "raw", "scenario": "sqlite-commit", "rate": 100, "transactions": len(took),
                  "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": q(1.0)}))
PY
}

# The 100/s rows beside their floors, in one sitting: what Postgres alone takes for a lone
# message's statements, a bare SQLite commit, then the gateway at 100/s twice on a fresh node
# of each backend (about 3 minutes).
if [ "$FLOOR" = 1 ]; then
  log "raw limits: pgbench latency of a lone message's statements at 100/s"
  lone_message_latency
  log "raw limits: a SQLite commit at 100/s"
  sqlite_commit_latency
  for backend in sqlite postgres; do
    for _ in 1 2; do
      start_nodes "$backend" 1
      row "$backend-1" rate --seconds $S --pairs 50 --rate 100
      stop_nodes
    done
  done
  log "results: $OUT"
  exit 0
fi

# sweep_series <sqlite|postgres> <nodes> <rate...>: one series of the sweep, its rows
# labelled sweep-rate-<backend>-<nodes> and sweep-idle-<backend>-<nodes> so that
# bench/plot.py draws one line per series. (Until the four-series sweep the rows were
# "sweep-rate" and "sweep-idle", one Postgres node; plot.py reads those as postgres-1.)
sweep_series() {
  local backend=$1 n=$2 rate size; shift 2
  # Open loop: 50 pairs together offer RATE messages/s; the nodes' p99 against that. On two
  # nodes a pair's sender and receiver are on different nodes (session i goes to node
  # i % nodes), so every message crosses Redis.
  start_nodes "$backend" "$n"
  for rate in "$@"; do
    row "sweep-rate-$backend-$n" rate --seconds $S --pairs 50 --rate "$rate"
  done
  stop_nodes
  # RSS per idle socket as the count grows, each size on fresh nodes. On two nodes one load
  # generator puts half the sockets on each (15,000 in all is within its file limit), and
  # each node's kib_per_socket is its growth over all the sockets: the two add up to the
  # figure per socket over both nodes.
  for size in 1000 5000 10000 15000; do
    start_nodes "$backend" "$n"
    row "sweep-idle-$backend-$n" idle --sockets "$size"
    stop_nodes
  done
}

if [ "$SWEEP" = 1 ]; then
  # One Postgres node at the rates it always had (its rows compare with earlier sweeps'),
  # then the other three with 20,000/s left out: about 40 s less each, and two nodes peaked
  # at 10,781 (Postgres) and 13,053/s (SQLite) in run-20261204-131844, so 15,000 already
  # shows them past it.
  sweep_series postgres 1 100 1000 3000 6000 10000 15000 20000
  sweep_series sqlite 1 100 1000 3000 6000 10000 15000
  sweep_series postgres 2 100 1000 3000 6000 10000 15000
  sweep_series sqlite 2 100 1000 3000 6000 10000 15000
  log "results: $OUT (plot: python3 bench/plot.py $OUT)"
  exit 0
fi

if [ "$IDLE" = 1 ]; then
  # The file limit is 20,000 per process here, hard: 19,000 leaves the node room for its own.
  # It binds the load generator as well, so on two nodes each node gets its own generator
  # (idle_split): 10,000 and 19,000 per node, 20,000 and 38,000 in all.
  for setup in sqlite-1 postgres-1 sqlite-2 postgres-2; do
    for n in 10000 19000; do
      start_nodes "${setup%-*}" "${setup#*-}"
      if [ "${setup#*-}" = 1 ]; then
        row "$setup" idle --sockets "$n"
      else
        idle_split "$setup" "$n"
      fi
      stop_nodes
    done
  done
  log "results: $OUT"
  exit 0
fi

# The two-node target's rows, alone, each split by the nodes' own counters into the commit
# and the rest; the same rate on one node tells the second node's share from the rate's.
if [ "$HALF" = 1 ]; then
  log "raw limit: pgbench, one insert per transaction from 32 clients"
  raw_db
  tps=$(tps -c 32 -j 2 -T "$S" -f "$WORK/one.sql" "$PG/$db")
  echo "{\"label\":\"raw\",\"scenario\":\"pgbench\",\"clients\":32,\"rows_per_tx\":1,\"tps\":$tps}" | tee -a "$OUT"
  start_nodes postgres 2
  metered_row "postgres-2" direct --seconds $S --pairs 50 --window 4
  half=$(grep '"scenario":"direct"' "$OUT" | tail -1 | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["result"]["acked_per_s"]) // 2)')
  metered_row "postgres-2-half-peak" rate --seconds $S --pairs 50 --rate "$half"
  metered_row "postgres-2" rate --seconds $S --pairs 50 --rate 100
  stop_nodes
  start_nodes postgres 1
  metered_row "postgres-1-at-half-peak" rate --seconds $S --pairs 50 --rate "$half"
  stop_nodes
  log "results: $OUT"
  exit 0
fi

if [ "$SMOKE" = 0 ]; then
  log "raw limits: pgbench (one insert per transaction; 100 per transaction)"
  raw_db
  { echo "BEGIN;"; for _ in $(seq 1 100); do echo "INSERT INTO t (thread, body) VALUES ('x', 'hello');"; done; echo "COMMIT;"; } >"$WORK/hundred.sql"
  for c in 1 32; do
    tps=$(tps -c "$c" -j 2 -T "$S" -f "$WORK/one.sql" "$PG/$db")
    echo "{\"label\":\"raw\",\"scenario\":\"pgbench\",\"clients\":$c,\"rows_per_tx\":1,\"tps\":$tps}" | tee -a "$OUT"
  done
  tps=$(tps -c 8 -j 2 -T "$S" -f "$WORK/hundred.sql" "$PG/$db")
  echo "{\"label\":\"raw\",\"scenario\":\"pgbench\",\"clients\":8,\"rows_per_tx\":100,\"rows_per_s\":$(python3 -c "print(round($tps*100))")}" | tee -a "$OUT"
  log "raw limits: pgbench latency of a lone message's statements at 100/s (as sent; as one statement)"
  lone_message_latency
  log "raw limits: a SQLite commit (WAL, synchronous=FULL, as the gateway sets it) at 100/s"
  sqlite_commit_latency
  log "raw limits: redis-benchmark PUBLISH"
  for p in 1 16; do
    rps=$(redis-benchmark -p "$RPORT" -n 200000 -c 16 -P "$p" -q publish ch hello 2>/dev/null | awk '{for(i=1;i<=NF;i++) if ($i ~ /requests/) {print $(i-1); exit}}')
    echo "{\"label\":\"raw\",\"scenario\":\"redis-publish\",\"pipeline\":$p,\"per_s\":${rps:-0}}" | tee -a "$OUT"
  done
fi

# The sends a second the row just written reached (at least 1).
last_rate() {
  tail -1 "$OUT" | python3 -c 'import json,sys; print(max(1, int(json.load(sys.stdin)["result"]["acked_per_s"])))'
}

# mixed_rows <label> <group peak>: `mixed`'s own peak (offered the group row's peak, which a
# send with its receipt and typing cannot reach; what it does reach is its peak), then `mixed`
# at half of that: the issue's "half of peak". (Until session 13 the half-peak row was offered
# half of the group row's peak, above mixed's own, so it measured an overload.)
mixed_rows() {
  row "$1" mixed --seconds $S --groups 20 --members 10 --senders 4 --window 2 --rate "$2"
  local mpeak
  mpeak=$(last_rate)
  row "$1-half-peak" mixed --seconds $S --groups 20 --members 10 --senders 4 --rate $((mpeak / 2 > 0 ? mpeak / 2 : 1))
}

for backend in sqlite postgres; do
  start_nodes "$backend" 1
  if [ "$SMOKE" = 1 ]; then
    row "$backend-1" direct --seconds $S --pairs 5
    row "$backend-1" group --seconds $S --groups 2 --members 10 --senders 2
    row "$backend-1" rate --seconds $S --pairs 5 --rate 50
    row "$backend-1" mixed --seconds $S --groups 2 --members 10 --senders 2 --rate 50
    row "$backend-1" reconnect --seconds $S --pairs 2 --sockets 4 --rate 20
    row "$backend-1" idle --sockets 200
  else
    row "$backend-1" direct --seconds $S --pairs 50 --window 4
    # The targets' rows: 16 sends in flight per client, so commits are not the limit.
    row "$backend-1" direct --seconds $S --pairs 50 --window 16
    row "$backend-1" group --seconds $S --groups 20 --members 10 --senders 4 --window 2
    gpeak=$(last_rate)
    row "$backend-1" group --seconds $S --groups 20 --members 10 --senders 4 --window 16
    row "$backend-1" group --seconds $S --groups 1 --members 300 --senders 4 --window 2
    row "$backend-1" rate --seconds $S --pairs 50 --rate 100
    mixed_rows "$backend-1" "$gpeak"
    row "$backend-1" reconnect --seconds $S --pairs 10 --sockets 50 --rate 100
    row "$backend-1" idle --sockets 10000
  fi
  stop_nodes
done

if [ "$SMOKE" = 0 ]; then
  # The largest count this machine's file limit allows (20,000 per process), on a fresh node.
  start_nodes postgres 1
  row "postgres-1" idle --sockets 19000
  stop_nodes
fi

start_nodes postgres 2
if [ "$SMOKE" = 1 ]; then
  row "postgres-2" direct --seconds $S --pairs 5
  row "postgres-2" group --seconds $S --groups 2 --members 10 --senders 2
  metered_row "postgres-2" rate --seconds $S --pairs 5 --rate 50
  row "postgres-2" mixed --seconds $S --groups 2 --members 10 --senders 2 --rate 50
  row "postgres-2" reconnect --seconds $S --pairs 2 --sockets 4 --rate 20
  row "postgres-2" idle --sockets 200
  # The full run's two-node idle rows: one load generator per node.
  idle_split "postgres-2" 100
else
  row "postgres-2" direct --seconds $S --pairs 50 --window 4
  # The target's row: send -> receive across the nodes at half of the peak just measured.
  half=$(tail -1 "$OUT" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["result"]["acked_per_s"]) // 2)')
  metered_row "postgres-2-half-peak" rate --seconds $S --pairs 50 --rate "$half"
  row "postgres-2" group --seconds $S --groups 20 --members 10 --senders 4 --window 2
  gpeak=$(last_rate)
  row "postgres-2" group --seconds $S --groups 1 --members 300 --senders 4 --window 2
  row "postgres-2" rate --seconds $S --pairs 50 --rate 100
  mixed_rows "postgres-2" "$gpeak"
  row "postgres-2" reconnect --seconds $S --pairs 10 --sockets 50 --rate 100
  # 10,000 per node, one load generator each (idle_split): RSS per socket on each node.
  idle_split "postgres-2" 10000
fi
stop_nodes

# Two nodes on one SQLite file (one host only: SQLite's locks are the host's), over Redis.
start_nodes sqlite 2
if [ "$SMOKE" = 1 ]; then
  row "sqlite-2" direct --seconds $S --pairs 5
  row "sqlite-2" group --seconds $S --groups 2 --members 10 --senders 2
  row "sqlite-2" rate --seconds $S --pairs 5 --rate 50
  row "sqlite-2" mixed --seconds $S --groups 2 --members 10 --senders 2 --rate 50
  row "sqlite-2" reconnect --seconds $S --pairs 2 --sockets 4 --rate 20
  row "sqlite-2" idle --sockets 200
  idle_split "sqlite-2" 100
else
  row "sqlite-2" direct --seconds $S --pairs 50 --window 4
  # As on Postgres: send -> receive across the nodes at half of the peak just measured.
  half=$(tail -1 "$OUT" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["result"]["acked_per_s"]) // 2)')
  metered_row "sqlite-2-half-peak" rate --seconds $S --pairs 50 --rate "$half"
  row "sqlite-2" group --seconds $S --groups 20 --members 10 --senders 4 --window 2
  gpeak=$(last_rate)
  row "sqlite-2" group --seconds $S --groups 1 --members 300 --senders 4 --window 2
  row "sqlite-2" rate --seconds $S --pairs 50 --rate 100
  mixed_rows "sqlite-2" "$gpeak"
  row "sqlite-2" reconnect --seconds $S --pairs 10 --sockets 50 --rate 100
  idle_split "sqlite-2" 10000
fi
stop_nodes
log "results: $OUT"
