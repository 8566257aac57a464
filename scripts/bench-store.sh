#!/usr/bin/env bash
# The embedded store and Redis side by side (issue #7): starts a private Redis, Dovecot and
# Postfix on free loopback ports, builds the release binary and runs bench/store_bench.py, which
# measures every figure on both stores in the same run. Needs root (Dovecot, Postfix).
# Usage: scripts/bench-store.sh    BENCH_RUNS (5), BENCH_SECS (10), BENCH_EVENTS (20000) and
#        BENCH_MESSAGES (10000) tune it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_cargo
apt_install redis-server redis-server
apt_install wrk wrk
cargo build --release --quiet
dir=$(mktemp -d /tmp/emailengine-bench.XXXXXX)
chmod 755 "$dir"
rport=$(free_port 18479)
trap 'bash scripts/mailenv.sh stop "$dir/mail" >/dev/null 2>&1; stop_redis "$dir"; rm -rf "$dir"' EXIT
start_redis "$rport" "$dir"
export IMAP_PORT SMTP_PORT
IMAP_PORT=$(free_port 13243)
SMTP_PORT=$(free_port $((IMAP_PORT + 1)))
bash scripts/mailenv.sh start "$dir/mail" >/dev/null
mkdir -p "$dir/work"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), redis $(redis-server --version | awk '{print $3}' | cut -d= -f2)"
EE_BIN=$PWD/target/release/emailengine EE_REDIS_URL="redis://127.0.0.1:$rport/8" EE_REDIS_PORT=$rport \
  MAILDIR_ROOT="$dir/mail/home/example.com" BENCH_DIR="$dir/work" python3 bench/store_bench.py
