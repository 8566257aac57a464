#!/usr/bin/env bash
# Builds and starts the server. Installs Redis if it is missing (Debian) and starts it on
# 127.0.0.1:6379 when nothing listens there and no other Redis URL is configured.
# Every argument is passed to the server, e.g. scripts/serve.sh --api.port=3000
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_cargo
if [ -z "${EENGINE_REDIS:-}${REDIS_URL:-}" ] && ! printf '%s\n' "$@" | grep -q -- '--dbs.redis'; then
  apt_install redis-server redis-server
  if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
    start_redis 6379 "${EE_REDIS_DIR:-/tmp/emailengine-redis}"
    echo "Started Redis on 127.0.0.1:6379 (data is not persisted)" >&2
  fi
fi
cargo build --release --quiet
exec target/release/emailengine "$@"
