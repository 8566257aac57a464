#!/usr/bin/env bash
# IMAP sync benchmarks (issue #3): starts a private Redis, Dovecot and Postfix on free loopback
# ports, builds the release binary and runs bench/imap_bench.py. Needs root (Dovecot, Postfix).
# Usage: scripts/bench-imap.sh [big] [latency] [many] [cost]    (default: the first three)
#   BENCH_ACCOUNTS (1000), BENCH_MESSAGES (10000), BENCH_RUNS (3), BENCH_MANY_RUNS (3), BENCH_COST_USERS (300),
#   BENCH_POST_CLIENTS (8) tune the sizes; BENCH_STORE=embedded runs `many` on the embedded store.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_cargo
apt_install redis-server redis-server
cargo build --release --quiet
dir=$(mktemp -d /tmp/emailengine-bench.XXXXXX)
chmod 755 "$dir"
rport=$(free_port 18379)
trap 'bash scripts/mailenv.sh stop "$dir/mail" >/dev/null 2>&1; stop_redis "$dir"; rm -rf "$dir"' EXIT
start_redis "$rport" "$dir"
export IMAP_PORT SMTP_PORT
IMAP_PORT=$(free_port 13143)
SMTP_PORT=$(free_port $((IMAP_PORT + 1)))
bash scripts/mailenv.sh start "$dir/mail" >/dev/null
# Each account holds IMAP connections; leave room for thousands of descriptors.
ulimit -n 65536 2>/dev/null || true
EE_BIN=${EE_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/emailengine} EE_REDIS_URL="redis://127.0.0.1:$rport/8" EE_REDIS_PORT=$rport \
  MAILDIR_ROOT="$dir/mail/home/example.com" python3 bench/imap_bench.py "$@"
