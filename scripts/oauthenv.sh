#!/usr/bin/env bash
# A real OAuth 2.0 / OpenID Connect authorization server on loopback for the tests (npm package
# oidc-provider, configured by scripts/oauth-server.mjs), and optionally a private Dovecot whose
# IMAP logins are OAuth2 tokens checked by introspection against that server.
#
# Usage: scripts/oauthenv.sh start|stop DIR
#   start  installs oidc-provider into $OAUTH_NPM_DIR (default DIR/npm; once), starts the server on 127.0.0.1:$OAUTH_PORT,
#          pid in DIR/oauth.pid, log in DIR/oauth.log, and Dovecot on 127.0.0.1:$OAUTH_IMAP_PORT
#          (config in DIR/dovecot, log DIR/dovecot.log; needs root, like scripts/mailenv.sh).
#          Its SASL socket DIR/dovecot/run/auth-client checks tokens for SMTP AUTH too: start
#          scripts/mailenv.sh with OAUTH_SMTP_PORT and OAUTH_SASL_PATH (printed) for a Postfix
#          listener that takes XOAUTH2 and OAUTHBEARER.
#          Prints the variables the Rust tests read: eval "$(scripts/oauthenv.sh start DIR)".
#   stop   stops both.
# Environment (defaults): OAUTH_PORT=9180, OAUTH_IMAP_PORT=2243 (0 = no Dovecot),
#   OAUTH_CLIENT_ID=emailengine-test, OAUTH_CLIENT_SECRET=emailengine-test-secret,
#   OAUTH_INTROSPECT_ID=dovecot, OAUTH_INTROSPECT_SECRET=dovecot-secret,
#   OAUTH_ACCESS_TTL=3600, OAUTH_SHORT_TTL=3 (tokens that carry the scope "short-lived"),
#   OAUTH_REDIRECT_URIS=http://127.0.0.1/oauth (a loopback URI matches on any port).
#
# Dovecot 2.3 settings that accept these tokens (written by "start" into DIR/dovecot):
#   dovecot.conf:
#     auth_mechanisms = xoauth2 oauthbearer
#     disable_plaintext_auth = no          # the test Dovecot has no TLS; tokens are bearer secrets
#     passdb {
#       driver = oauth2
#       mechanisms = xoauth2 oauthbearer
#       args = DIR/dovecot/dovecot-oauth2.conf.ext
#     }
#     userdb { driver = static  args = uid=5000 gid=5000 home=DIR/dovecot/home/%d/%n }
#   dovecot-oauth2.conf.ext:
#     introspection_mode = post            # RFC 7662: POST token=<token>
#     introspection_url = http://dovecot:dovecot-secret@127.0.0.1:9180/token/introspection
#                                          # userinfo = HTTP Basic client authentication
#     username_attribute = sub             # must equal the IMAP login name
#     active_attribute = active
#     active_value = true
#     force_introspection = yes            # never trust a cached or local answer
# An IMAP client then logs in with AUTHENTICATE XOAUTH2 or OAUTHBEARER as the user name it
# signed in with on the server's login page (e.g. alice@example.com). A revoked or expired
# token introspects as {"active":false} and the login fails with "NO [AUTHENTICATIONFAILED]".
set -euo pipefail
cmd=${1:-}; DIR=${2:-}
[ -n "$cmd" ] && [ -n "$DIR" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OAUTH_PORT=${OAUTH_PORT:-9180}
OAUTH_IMAP_PORT=${OAUTH_IMAP_PORT:-2243}
OIDC_PROVIDER_VERSION=9.13.3
CLIENT_ID=${OAUTH_CLIENT_ID:-emailengine-test}
CLIENT_SECRET=${OAUTH_CLIENT_SECRET:-emailengine-test-secret}
INTROSPECT_ID=${OAUTH_INTROSPECT_ID:-dovecot}
INTROSPECT_SECRET=${OAUTH_INTROSPECT_SECRET:-dovecot-secret}

# stop_pid FILE: ends the process named in FILE and waits (up to 5 s) until it is gone.
stop_pid() {
  [ -f "$1" ] || return 0
  local pid; pid=$(tr -d ' ' < "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$1"
}

case $cmd in
stop)
  stop_pid "$DIR/oauth.pid"
  stop_pid "$DIR/dovecot/run/master.pid"
  exit 0;;
start) ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2;;
esac

command -v node >/dev/null && command -v npm >/dev/null || {
  echo "node and npm are needed (Debian: apt-get install -y nodejs npm)" >&2; exit 1; }
mkdir -p "$DIR"
NPM=${OAUTH_NPM_DIR:-$DIR/npm}
mkdir -p "$NPM"
if [ ! -f "$NPM/node_modules/oidc-provider/package.json" ] ||
   ! grep -q "\"version\": \"$OIDC_PROVIDER_VERSION\"" "$NPM/node_modules/oidc-provider/package.json"; then
  [ -f "$NPM/package.json" ] || echo '{"private":true}' > "$NPM/package.json"
  (cd "$NPM" && npm install --no-audit --no-fund --silent "oidc-provider@$OIDC_PROVIDER_VERSION")
fi
# ES modules resolve packages next to the importing file, so the config runs from there.
cp "$HERE/oauth-server.mjs" "$NPM/oauth-server.mjs"
stop_pid "$DIR/oauth.pid"
(cd "$NPM"
  export OAUTH_PORT OAUTH_CLIENT_ID=$CLIENT_ID OAUTH_CLIENT_SECRET=$CLIENT_SECRET \
    OAUTH_INTROSPECT_ID=$INTROSPECT_ID OAUTH_INTROSPECT_SECRET=$INTROSPECT_SECRET
  setsid node oauth-server.mjs </dev/null >"$DIR/oauth.log" 2>&1 &
  echo $! > "$DIR/oauth.pid")
# Wait for our own server to say it listens (the port alone may belong to another instance).
for _ in $(seq 100); do
  grep -q "listening on" "$DIR/oauth.log" 2>/dev/null && break
  kill -0 "$(cat "$DIR/oauth.pid")" 2>/dev/null || break
  sleep 0.1
done
grep -q "listening on" "$DIR/oauth.log" 2>/dev/null || {
  echo "the authorization server did not start (see $DIR/oauth.log)" >&2; exit 1; }

if [ "$OAUTH_IMAP_PORT" != 0 ]; then
  command -v dovecot >/dev/null || { export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null; apt-get install -y -q dovecot-imapd >/dev/null; }
  id vmail >/dev/null 2>&1 || useradd -r -u 5000 -M -d /nonexistent -s /usr/sbin/nologin vmail
  D=$DIR/dovecot
  stop_pid "$D/run/master.pid"
  mkdir -p "$D/run/state" "$D/home"
  chown vmail:vmail "$D/home"
  cat > "$D/dovecot-oauth2.conf.ext" <<CONF
introspection_mode = post
introspection_url = http://$INTROSPECT_ID:$INTROSPECT_SECRET@127.0.0.1:$OAUTH_PORT/token/introspection
username_attribute = sub
active_attribute = active
active_value = true
force_introspection = yes
CONF
  chmod 600 "$D/dovecot-oauth2.conf.ext"
  cat > "$D/dovecot.conf" <<CONF
base_dir = $D/run
state_dir = $D/run/state
log_path = $DIR/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = xoauth2 oauthbearer
# Tests provoke failed logins on purpose: no failure delay, and no per-IP penalty (the auth
# process skips penalties when it cannot open anvil's penalty socket).
auth_failure_delay = 0
mail_location = maildir:$D/home/%d/%n/Maildir
first_valid_uid = 5000
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $D/dovecot-oauth2.conf.ext
}
userdb {
  driver = static
  args = uid=5000 gid=5000 home=$D/home/%d/%n
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $OAUTH_IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
# Postfix's smtpd (user postfix) asks this socket to check SMTP AUTH tokens
# (scripts/mailenv.sh with OAUTH_SASL_PATH=DIR/dovecot/run/auth-client).
service auth {
  unix_listener auth-client {
    mode = 0666
  }
}
CONF
  dovecot -c "$D/dovecot.conf" </dev/null >/dev/null 2>&1 || {
    echo "Dovecot did not start (see $DIR/dovecot.log)" >&2; exit 1; }
  # Dovecot writes its pid file once the listeners are up: wait for both.
  for _ in $(seq 50); do
    [ -s "$D/run/master.pid" ] && (exec 3<>"/dev/tcp/127.0.0.1/$OAUTH_IMAP_PORT") 2>/dev/null && break
    sleep 0.1
  done
  { [ -f "$D/run/master.pid" ] && kill -0 "$(cat "$D/run/master.pid")" 2>/dev/null &&
    (exec 3<>"/dev/tcp/127.0.0.1/$OAUTH_IMAP_PORT") 2>/dev/null; } || {
    echo "Dovecot did not start (see $DIR/dovecot.log)" >&2; exit 1; }
fi

echo "export EE_TEST_OAUTH_URL=http://127.0.0.1:$OAUTH_PORT"
echo "export EE_TEST_OAUTH_CLIENT_ID=$CLIENT_ID"
echo "export EE_TEST_OAUTH_CLIENT_SECRET=$CLIENT_SECRET"
echo "export EE_TEST_OAUTH_POST_CLIENT_ID=emailengine-post"
echo "export EE_TEST_OAUTH_POST_CLIENT_SECRET=emailengine-post-secret"
echo "export EE_TEST_OAUTH_INTROSPECT_ID=$INTROSPECT_ID"
echo "export EE_TEST_OAUTH_INTROSPECT_SECRET=$INTROSPECT_SECRET"
echo "export EE_TEST_OAUTH_DIR=$DIR"
[ "$OAUTH_IMAP_PORT" = 0 ] || {
  echo "export EE_TEST_OAUTH_IMAP=127.0.0.1:$OAUTH_IMAP_PORT"
  echo "export EE_TEST_OAUTH_MAILDIR=$DIR/dovecot/home"
  echo "export OAUTH_SASL_PATH=$DIR/dovecot/run/auth-client"; }
