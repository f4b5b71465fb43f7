#!/bin/sh
# Rebuilds the demo (the JS client, the React hooks, then the bundle) and fails when the
# committed clients/demo/dist is stale: the gateway binary embeds those files.
# SKIP_INSTALL=1 skips `npm ci` (use the node_modules already there).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
for dir in clients/js clients/react clients/demo; do
  cd "$root/$dir"
  if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
  npm run --silent build
done
cd "$root"
status=0
git diff --exit-code --stat -- clients/demo/dist || status=1
untracked=$(git ls-files --others --exclude-standard -- clients/demo/dist)
if [ -n "$untracked" ]; then
  echo "not committed: $untracked"
  status=1
fi
if [ "$status" != 0 ]; then
  echo "clients/demo/dist is stale: run 'npm run build' in clients/demo and commit clients/demo/dist" >&2
fi
exit $status
