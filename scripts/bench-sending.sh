#!/usr/bin/env bash
# Sending parity figures (issue #12): a 10,000-recipient mailMerge accepted and queued, and
# /redirect and /open.gif requests per second with a 404 of the same server as the floor, on the
# embedded store and on Redis; then bounce parsing per message over the test corpus.
# Usage: scripts/bench-sending.sh    BENCH_RUNS (5), BENCH_SECS (10), BENCH_RECIPIENTS (10000).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_cargo
apt_install redis-server redis-server
apt_install wrk wrk
cargo build --release --quiet
dir=$(mktemp -d /tmp/emailengine-bench.XXXXXX)
rport=$(free_port 18579)
trap 'stop_redis "$dir"; rm -rf "$dir"' EXIT
start_redis "$rport" "$dir"
mkdir -p "$dir/work"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), redis $(redis-server --version | awk '{print $3}' | cut -d= -f2)"
EE_BIN=$PWD/target/release/emailengine EE_REDIS_URL="redis://127.0.0.1:$rport/8" EE_REDIS_PORT=$rport \
  IMAP_PORT=0 SMTP_PORT=0 MAILDIR_ROOT=/nonexistent BENCH_DIR="$dir/work" python3 bench/sending_bench.py
echo "bounce parsing (cargo run --release -p emailengine-feedback --example bench_parse):"
cargo run --release --quiet -p emailengine-feedback --example bench_parse
