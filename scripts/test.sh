#!/usr/bin/env bash
# Runs every test of the project: installs Redis, Dovecot and Postfix if they are missing
# (Debian), starts private instances on free loopback ports, runs formatting and lint checks and
# the whole test suite against them (the end-to-end suites once on the embedded store and once
# on Redis), then stops them.
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_cargo
apt_install redis-server redis-server
apt_install openssl openssl

dir=$(mktemp -d /tmp/emailengine-test.XXXXXX)
chmod 755 "$dir"
port=$(free_port 16379)
trap 'bash scripts/mailenv.sh stop "$dir/mail" >/dev/null 2>&1; bash scripts/oauthenv.sh stop "$dir/oauth" >/dev/null 2>&1; stop_redis "$dir"; [ -f "$dir/chromedriver.pid" ] && kill "$(cat "$dir/chromedriver.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
start_redis "$port" "$dir"
export EE_TEST_REDIS_URL="redis://127.0.0.1:$port/0"

# Dovecot (IMAP) and Postfix (SMTP → LMTP → Dovecot) for the mail tests.
export IMAP_PORT SMTP_PORT GATEWAY_PORT
IMAP_PORT=$(free_port 12143)
SMTP_PORT=$(free_port $((IMAP_PORT + 1)))
GATEWAY_PORT=$(free_port $((SMTP_PORT + 1)))
# A real OAuth2 authorization server (oidc-provider, npm) with a Dovecot that checks bearer
# tokens by introspection (scripts/oauthenv.sh), and a Postfix listener whose SMTP AUTH asks
# that Dovecot (tests/oauth_accounts.rs).
apt_install node nodejs npm
export OAUTH_NPM_DIR="$HOME/.cache/emailengine-test/oidc-provider"
OAUTH_PORT=$(free_port $((GATEWAY_PORT + 1000))) OAUTH_IMAP_PORT=$(free_port $((GATEWAY_PORT + 1))) \
  bash scripts/oauthenv.sh start "$dir/oauth" > "$dir/oauth.env"
. "$dir/oauth.env"
export OAUTH_SMTP_PORT OAUTH_SASL_PATH
OAUTH_SMTP_PORT=$(free_port $((GATEWAY_PORT + 2)))
export EE_TEST_OAUTH_SMTP=127.0.0.1:$OAUTH_SMTP_PORT EE_TEST_POSTFIX_LOG=$dir/mail/postfix.log
bash scripts/mailenv.sh start "$dir/mail" >/dev/null
export EE_TEST_IMAP_PORT=$IMAP_PORT EE_TEST_SMTP_PORT=$SMTP_PORT EE_TEST_GATEWAY_PORT=$GATEWAY_PORT
export EE_TEST_MAILDIR="$dir/mail/home/example.com"

# Headless Chromium driven over WebDriver for the admin UI tests (tests/admin_ui.rs):
# chromedriver on a free loopback port, its URL exported, stopped on exit. Screenshots of every
# admin page land in $EE_ARTIFACTS.
apt_install chromium chromium
apt_install chromedriver chromium-driver
DRIVER_PORT=$(free_port 19515)
chromedriver --port="$DRIVER_PORT" >"$dir/chromedriver.log" 2>&1 &
echo $! >"$dir/chromedriver.pid"
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$DRIVER_PORT") 2>/dev/null && break; sleep 0.05; done
export EE_WEBDRIVER_URL="http://127.0.0.1:$DRIVER_PORT"
export EE_ARTIFACTS=${EE_ARTIFACTS:-$PWD/target/screenshots}

# schemathesis (PyPI) checks the API against its OpenAPI document (tests/api_contract.rs); it
# lives in a virtualenv under the user's cache, installed once.
st_venv="$HOME/.cache/emailengine-test/schemathesis"
if [ ! -x "$st_venv/bin/schemathesis" ]; then
  python3 -m venv --help >/dev/null 2>&1 || apt_install_always python3-venv
  python3 -m venv "$st_venv"
  "$st_venv/bin/pip" install -q 'schemathesis==4.32.5'
fi
export EE_SCHEMATHESIS="$st_venv/bin/schemathesis"

if cargo fmt --version >/dev/null 2>&1; then cargo fmt --all -- --check; fi
if cargo clippy --version >/dev/null 2>&1; then cargo clippy --all-targets --quiet -- -D warnings; fi
# Private temporary files (embedded stores of the tests) go away with the run.
export TMPDIR="$dir/tmp"
mkdir -p "$TMPDIR"
# Every suite on the embedded store (the default), then the end-to-end suites again on Redis.
cargo test --workspace "$@"
EE_TEST_STORE=redis cargo test -p emailengine --tests "$@"
