#!/usr/bin/env bash
# Delivery benchmarks (issue #4): starts a private Redis, Dovecot and Postfix on free loopback
# ports, builds the release binary and runs bench/delivery_bench.py. Needs root.
# Usage: scripts/bench-delivery.sh [fanout] [latency] [submit]    (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_cargo
apt_install redis-server redis-server
apt_install wrk wrk
cargo build --release --quiet
dir=$(mktemp -d /tmp/emailengine-bench.XXXXXX)
chmod 755 "$dir"
rport=$(free_port 19379)
trap 'bash scripts/mailenv.sh stop "$dir/mail" >/dev/null 2>&1; stop_redis "$dir"; rm -rf "$dir"' EXIT
start_redis "$rport" "$dir"
export IMAP_PORT SMTP_PORT
IMAP_PORT=$(free_port 14143)
SMTP_PORT=$(free_port $((IMAP_PORT + 1)))
bash scripts/mailenv.sh start "$dir/mail" >/dev/null
EE_BIN=$PWD/target/release/emailengine EE_REDIS_URL="redis://127.0.0.1:$rport/8" EE_REDIS_PORT=$rport \
  python3 bench/delivery_bench.py "$@"
