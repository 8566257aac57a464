#!/usr/bin/env bash
# Builds and starts the server. With no Redis configured it uses the embedded store in
# $XDG_DATA_HOME/emailengine (else ~/.local/share/emailengine): no root, no services, nothing to
# install besides Rust. Every argument is passed to the server, e.g.
#   scripts/serve.sh --api.port=3001
#   scripts/serve.sh --dbs.path=/srv/emailengine
#   scripts/serve.sh --dbs.redis=redis://127.0.0.1:6379/8     (a Redis you run yourself)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_cargo
cargo build --release --quiet
exec target/release/emailengine "$@"
