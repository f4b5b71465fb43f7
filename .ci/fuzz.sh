#!/usr/bin/env bash
# A short fuzzing run of the client-frame target (fuzz/fuzz_targets/client_frame.rs): every
# text a client can send is parsed and dispatched to the real services over SQLite. Fails on
# any crash, panic or bad reply. cargo-fuzz needs nightly flags; the machine's one stable
# toolchain takes them with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${FUZZ_SECONDS:-60}"

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
export RUSTC_BOOTSTRAP=1
corpus=$(mktemp -d)
trap 'rm -rf "$corpus" "${log:-}"' EXIT
cp fuzz/seeds/client_frame/* "$corpus/"
cargo fuzz build client_frame -s none -a
log=$(mktemp)
status=0
cargo fuzz run client_frame -s none -a "$corpus" -- \
  -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -dict=fuzz/client_frame.dict \
  -print_final_stats=1 >"$log" 2>&1 || status=$?
grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
if [ "$status" -ne 0 ]; then
  echo "[fuzz] FAILED (exit $status):" >&2
  tail -n 60 "$log" >&2
  exit 1
fi
# The target's SQLite files (one directory per fuzzing process).
rm -rf "${TMPDIR:-/tmp}"/sb-fuzz-*
echo "[fuzz] ${SECONDS_TO_RUN}s, no crash"
