#!/usr/bin/env bash
# Runs every test of the project: installs Redis if it is missing (Debian), starts a private
# instance on a free loopback port, runs formatting and lint checks and the whole test suite
# against it, then stops it. Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_cargo
apt_install redis-server redis-server

dir=$(mktemp -d /tmp/emailengine-test.XXXXXX)
port=$(free_port 16379)
trap 'stop_redis "$dir"; rm -rf "$dir"' EXIT
start_redis "$port" "$dir"
export EE_TEST_REDIS_URL="redis://127.0.0.1:$port/0"

if cargo fmt --version >/dev/null 2>&1; then cargo fmt --all -- --check; fi
if cargo clippy --version >/dev/null 2>&1; then cargo clippy --all-targets --quiet -- -D warnings; fi
cargo test --workspace "$@"
