#!/usr/bin/env bash
# Property-based API tests: schemathesis (from PyPI) generates requests from the gateway's own
# /api/v1/openapi.json, as a user and as the host backend, and fails on any 5xx, any
# undocumented status and any response that breaks the schema. Runs the debug binary that
# `cargo test` built; a few hundred cases per run, about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[schemathesis] %s\n' "$*"; }
die() { printf '[schemathesis] FATAL: %s\n' "$*" >&2; exit 1; }

if ! command -v st >/dev/null 2>&1; then
  log "installing schemathesis from PyPI"
  python3 -m pip install -q schemathesis >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages schemathesis \
    || die "cannot install schemathesis"
fi
command -v st >/dev/null 2>&1 || die "schemathesis installed but 'st' is not on PATH"

bin=target/debug/switchboard
[ -x "$bin" ] || die "$bin is missing: run cargo test (or cargo build) first"
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
secret="schemathesis-secret-0123456789abcdef0123456789"
key="schemathesis-host-key-0123456789abcdef"
(cd "$work" && BIND_ADDR=127.0.0.1:$port DATABASE_URL=sqlite://st.db JWT_SECRET=$secret \
  SERVER_API_KEY=$key RUST_LOG=warn exec "$OLDPWD/$bin" > "$work/server.log" 2>&1) &
pid=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$work/server.log"; die "the gateway did not start"; }
token=$(JWT_SECRET=$secret "$bin" token alice --org acme)
api="http://127.0.0.1:$port/api/v1"
spec="$api/openapi.json"
# A thread alice belongs to, a message of hers in it, a host thread with an external_ref and a
# notification for her (her token names the organisation `acme`):
# .ci/schemathesis.toml hands their ids to the generated requests.
post() { curl -sf -X POST "$api$1" -H "Authorization: Bearer $2" -H 'content-type: application/json' -d "$3"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
ST_THREAD=$(post /threads "$token" '{"kind":"group","title":"st","members":["bob"]}' | field "['id']") \
  || die "cannot create the test thread"
ST_MESSAGE=$(post "/threads/$ST_THREAD/messages" "$token" '{"body":"hello"}' | field "['message']['id']") \
  || die "cannot send the test message"
ST_REF="job:st-1"
post /server/threads "$key" '{"kind":"group","title":"st","members":["alice","bob"],"external_ref":"job:st-1"}' >/dev/null \
  || die "cannot create the host thread"
post /server/notifications "$key" '{"user_ids":["alice"],"title":"st","body":"hello"}' >/dev/null \
  || die "cannot create the test notification"
ST_NOTIFICATION=$(curl -sf "$api/notifications" -H "Authorization: Bearer $token" | field "[0]['id']" 2>/dev/null \
  || curl -sf "$api/notifications" -H "Authorization: Bearer $token" | field "['notifications'][0]['id']") \
  || die "cannot read the test notification"
export ST_THREAD ST_MESSAGE ST_REF ST_NOTIFICATION
st() { command st --config-file .ci/schemathesis.toml "$@"; }
checks=not_a_server_error,status_code_conformance,response_schema_conformance

log "as a user"
st run "$spec" -H "Authorization: Bearer $token" --checks "$checks" --max-examples 15 \
  --exclude-path-regex '/server/|/events' --seed 1
log "as the host backend"
st run "$spec" -H "Authorization: Bearer $key" --checks "$checks" --max-examples 15 \
  --include-path-regex '/server/' --seed 1
log "passed"
