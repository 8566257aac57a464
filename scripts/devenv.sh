#!/usr/bin/env bash
# Private services for running one test suite by hand: a Redis and the Dovecot + Postfix mail
# system on free loopback ports, with the variables the tests read written to DIR/env.sh.
# Usage: scripts/devenv.sh start DIR   then   . DIR/env.sh && cargo test -p emailengine --test NAME
#        scripts/devenv.sh stop DIR
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
case $cmd in
stop)
  bash scripts/mailenv.sh stop "$dir/mail" >/dev/null 2>&1 || true
  bash scripts/oauthenv.sh stop "$dir/oauth" >/dev/null 2>&1 || true
  stop_redis "$dir"
  exit 0;;
start) ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2;;
esac
apt_install redis-server redis-server
mkdir -p "$dir/tmp"
chmod 755 "$dir"
dir=$(cd "$dir" && pwd)
port=$(free_port 16379)
start_redis "$port" "$dir"
export IMAP_PORT SMTP_PORT GATEWAY_PORT
IMAP_PORT=$(free_port 12143)
SMTP_PORT=$(free_port $((IMAP_PORT + 1)))
GATEWAY_PORT=$(free_port $((SMTP_PORT + 1)))
# The OAuth2 authorization server and its token-checking Dovecot; Postfix gets a listener
# whose SMTP AUTH asks that Dovecot.
apt_install node nodejs npm
export OAUTH_NPM_DIR="$HOME/.cache/emailengine-test/oidc-provider"
OAUTH_PORT=$(free_port $((GATEWAY_PORT + 1000))) OAUTH_IMAP_PORT=$(free_port $((GATEWAY_PORT + 1))) \
  bash scripts/oauthenv.sh start "$dir/oauth" > "$dir/oauth.env"
. "$dir/oauth.env"
export OAUTH_SMTP_PORT OAUTH_SASL_PATH
OAUTH_SMTP_PORT=$(free_port $((GATEWAY_PORT + 2)))
bash scripts/mailenv.sh start "$dir/mail" >/dev/null
cat "$dir/oauth.env" > "$dir/env.sh"
cat >> "$dir/env.sh" <<ENV
export EE_TEST_REDIS_URL=redis://127.0.0.1:$port/0
export EE_TEST_IMAP_PORT=$IMAP_PORT EE_TEST_SMTP_PORT=$SMTP_PORT EE_TEST_GATEWAY_PORT=$GATEWAY_PORT
export EE_TEST_MAILDIR=$dir/mail/home/example.com
export TMPDIR=$dir/tmp
export EE_TEST_OAUTH_SMTP=127.0.0.1:$OAUTH_SMTP_PORT EE_TEST_POSTFIX_LOG=$dir/mail/postfix.log
ENV
echo "services up; variables in $dir/env.sh"
