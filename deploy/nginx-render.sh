#!/bin/sh
# Renders deploy/nginx.conf for other nodes and log places, with the same rewrites as the proxy
# tests (tests/it/harness/nginx.rs), so that every use runs the one shipped file:
#   - lines starting `server 127.0.0.1:` or `# server 127.0.0.1:` are dropped, and one
#     `server UPSTREAM;` line per argument goes right after `upstream switchboard {`;
#   - `/var/log/nginx/` becomes LOGS/ (or, with LOGS=stdio, the access log goes to /dev/stdout
#     and the error log to /dev/stderr, as containers want).
#
#   sh deploy/nginx-render.sh [--exec] SRC OUT LOGS UPSTREAM...
#
# --exec: then run nginx in the foreground (the compose nginx service, docker-compose.yml).
# deploy/check.sh renders it too and runs `nginx -t` on the result. POSIX sh and awk only: it
# runs inside the official nginx image.
set -eu

exec_nginx=0
if [ "${1:-}" = "--exec" ]; then
    exec_nginx=1
    shift
fi
if [ "$#" -lt 4 ]; then
    echo "usage: $0 [--exec] SRC OUT LOGS UPSTREAM..." >&2
    exit 2
fi
src=$1 out=$2 logs=$3
shift 3

servers=""
for u in "$@"; do
    servers="${servers}    server ${u};
"
done

SERVERS=$servers LOGS=$logs awk '
    {
        t = $0
        sub(/^[ \t]+/, "", t)
        if (index(t, "server 127.0.0.1:") == 1 || index(t, "# server 127.0.0.1:") == 1) next
        if (index(t, "upstream switchboard {") == 1) {
            print
            printf "%s", ENVIRON["SERVERS"]
            found = 1
            next
        }
        line = $0
        if (ENVIRON["LOGS"] == "stdio") {
            gsub(/\/var\/log\/nginx\/switchboard\.access\.log/, "/dev/stdout", line)
            gsub(/\/var\/log\/nginx\/switchboard\.error\.log/, "/dev/stderr", line)
        } else {
            while ((i = index(line, "/var/log/nginx/")) > 0)
                line = substr(line, 1, i - 1) ENVIRON["LOGS"] "/" substr(line, i + 15)
        }
        print line
    }
    END { if (!found) { print "no `upstream switchboard {` line" > "/dev/stderr"; exit 1 } }
' "$src" >"$out"

if [ "$exec_nginx" = 1 ]; then
    exec nginx -g 'daemon off;'
fi
