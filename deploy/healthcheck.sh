#!/usr/bin/env bash
# Container health check: GET /healthz on this node, healthy (exit 0) on HTTP 200, unhealthy
# (exit 1, with the reason on stderr) otherwise. The runtime image has no curl or wget: bash's
# /dev/tcp is enough for one plain HTTP request. The address comes from BIND_ADDR (host:port,
# default 127.0.0.1:8080); a wildcard host (0.0.0.0, [::]) is probed on 127.0.0.1.
#
#   bash /usr/local/lib/switchboard/healthcheck.sh     # the image's HEALTHCHECK, and compose's
#   BIND_ADDR=127.0.0.1:18080 bash deploy/healthcheck.sh
set -u
addr=${BIND_ADDR:-127.0.0.1:8080}
port=${addr##*:}
host=${addr%:*}
host=${host#[}
host=${host%]}
case $host in
'' | 0.0.0.0 | ::) host=127.0.0.1 ;;
esac
# A refused or unreachable port fails here at once; the HEALTHCHECK --timeout (3 s) bounds the
# rest, and read -t bounds a node that accepts but never answers.
if ! exec 3<>"/dev/tcp/$host/$port"; then
    echo "healthz: cannot connect to $host:$port" >&2
    exit 1
fi
printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
if ! IFS= read -r -t 2 status <&3; then
    echo "healthz: no answer from $host:$port" >&2
    exit 1
fi
status=${status%$'\r'}
case $status in
'HTTP/1.'[01]' 200 '* | 'HTTP/1.'[01]' 200') exit 0 ;;
*)
    echo "healthz: $host:$port answered: $status" >&2
    exit 1
    ;;
esac
