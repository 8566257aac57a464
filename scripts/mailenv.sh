#!/usr/bin/env bash
# A throwaway mail system on loopback for the tests and benchmarks of this project:
#   Dovecot IMAP  127.0.0.1:$IMAP_PORT  (any user@$DOMAIN, password "pass")
#   Postfix SMTP  127.0.0.1:$SMTP_PORT  (accepts mail for $DOMAIN, delivers into Dovecot over LMTP;
#                                        SMTP AUTH via Dovecot SASL with the same users;
#                                        refused@$DOMAIN and any other domain bounce with a DSN)
#   a second SMTP listener on 127.0.0.1:$GATEWAY_PORT when set (announces itself as
#                                        gateway.$DOMAIN; stands in for an SMTP gateway)
#   a third on 127.0.0.1:$OAUTH_SMTP_PORT when it and OAUTH_SASL_PATH are set: SMTP AUTH with
#                                        OAuth2 tokens (XOAUTH2, OAUTHBEARER) checked by the
#                                        Dovecot of scripts/oauthenv.sh at that SASL socket
# Usage: scripts/mailenv.sh start|stop [DIR]   (defaults: DIR=/tmp/mailenv, IMAP_PORT=2143,
#        SMTP_PORT=2525, DOMAIN=example.com). Installs dovecot-imapd, dovecot-lmtpd and postfix
#        with apt-get when they are missing (needs root).
set -euo pipefail
cmd=${1:-start}; DIR=${2:-/tmp/mailenv}
IMAP_PORT=${IMAP_PORT:-2143}; SMTP_PORT=${SMTP_PORT:-2525}; DOMAIN=${DOMAIN:-example.com}
need() { command -v "$1" >/dev/null || { export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq >/dev/null; apt-get install -y -q dovecot-imapd dovecot-lmtpd postfix >/dev/null; }; }
case $cmd in
stop)
  [ -f "$DIR/run/master.pid" ] && kill "$(cat "$DIR/run/master.pid")" 2>/dev/null || true
  [ -f "$DIR/spool/pid/master.pid" ] && kill "$(tr -d ' ' < "$DIR/spool/pid/master.pid")" 2>/dev/null || true
  exit 0;;
start) ;;
*) echo "usage: $0 start|stop [DIR]" >&2; exit 2;;
esac
need dovecot; need postfix
# Dovecot's IDLE uses one inotify instance per session; the kernel default (128 per user) makes
# sessions beyond that fall back to 30 s polling. Raise it where the machine allows.
[ "$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 0)" -ge 8192 ] || sysctl -qw fs.inotify.max_user_instances=8192 2>/dev/null || true
id vmail >/dev/null 2>&1 || useradd -r -u 5000 -M -d /nonexistent -s /usr/sbin/nologin vmail
mkdir -p "$DIR"/{run,home,postfix,spool}
chown vmail:vmail "$DIR/home"
cat > "$DIR/dovecot.conf" <<CONF
base_dir = $DIR/run
state_dir = $DIR/run/state
log_path = $DIR/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:$DIR/home/%d/%n/Maildir
first_valid_uid = 5000
passdb {
  driver = static
  args = password=pass
}
userdb {
  driver = static
  args = uid=5000 gid=5000 home=$DIR/home/%d/%n
}
# room for thousands of simultaneous IDLE connections (load tests)
default_process_limit = 5000
default_client_limit = 20000
service imap {
  process_limit = 5000
}
service imap-login {
  service_count = 0
  client_limit = 5000
  process_min_avail = 2
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
}
protocol lmtp {
  postmaster_address = postmaster@$DOMAIN
}
namespace inbox {
  inbox = yes
  mailbox Drafts {
    special_use = \Drafts
    auto = subscribe
  }
  mailbox Sent {
    special_use = \Sent
    auto = subscribe
  }
  mailbox Trash {
    special_use = \Trash
    auto = subscribe
  }
  mailbox Junk {
    special_use = \Junk
    auto = subscribe
  }
}
CONF
mkdir -p "$DIR/run/state"
dovecot -c "$DIR/dovecot.conf" </dev/null >/dev/null 2>&1
# Postfix: a private config dir and queue; no chroot, logs to a file, runs in the foreground under setsid
# Postfix only accepts a private config dir that the default main.cf names; on a machine where
# postfix was installed with "No configuration" the default files may be missing.
[ -f /etc/postfix/main.cf ] || touch /etc/postfix/main.cf
grep -q "^alternate_config_directories.*$DIR/postfix" /etc/postfix/main.cf || postconf -e "alternate_config_directories = $DIR/postfix"
master=/etc/postfix/master.cf; [ -f "$master" ] || master=/etc/postfix/master.cf.proto
awk 'BEGIN{OFS="  "} /^[a-z0-9]/ && NF>=8 {$5="n"} {print}' "$master" > "$DIR/postfix/master.cf"
sed -i "s/^smtp  inet .*/127.0.0.1:$SMTP_PORT  inet  n  -  n  -  -  smtpd/" "$DIR/postfix/master.cf"
if [ -n "${GATEWAY_PORT:-}" ]; then
  echo "127.0.0.1:$GATEWAY_PORT  inet  n  -  n  -  -  smtpd -o myhostname=gateway.$DOMAIN -o smtpd_sasl_auth_enable=no" >> "$DIR/postfix/master.cf"
fi
if [ -n "${OAUTH_SMTP_PORT:-}" ] && [ -n "${OAUTH_SASL_PATH:-}" ]; then
  echo "127.0.0.1:$OAUTH_SMTP_PORT  inet  n  -  n  -  -  smtpd -o myhostname=oauth.$DOMAIN -o smtpd_sasl_path=$OAUTH_SASL_PATH" >> "$DIR/postfix/master.cf"
fi
echo "refused@$DOMAIN  error:5.1.1 mailbox unavailable" > "$DIR/postfix/transport"
cat > "$DIR/postfix/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $DIR/spool
data_directory = $DIR/spool/data
mail_owner = postfix
myhostname = mail.$DOMAIN
mydomain = $DOMAIN
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = $DOMAIN
virtual_transport = lmtp:unix:$DIR/run/lmtp
smtpd_sasl_type = dovecot
smtpd_sasl_path = $DIR/run/auth-client
smtpd_sasl_auth_enable = yes
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
maillog_file = /dev/stdout
relayhost =
default_transport = error:outside mail is not delivered in this test system
smtputf8_enable = yes
transport_maps = texthash:$DIR/postfix/transport
smtpd_reject_unlisted_recipient = no
CONF
mkdir -p "$DIR/spool/data"; chown postfix "$DIR/spool/data"
(setsid postfix -c "$DIR/postfix" start-fg </dev/null >"$DIR/postfix.log" 2>&1 &)
for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$SMTP_PORT) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/$IMAP_PORT) 2>/dev/null && { [ -z "${GATEWAY_PORT:-}" ] || (exec 3<>/dev/tcp/127.0.0.1/$GATEWAY_PORT) 2>/dev/null; } && break; sleep 0.2; done
echo "imap=127.0.0.1:$IMAP_PORT smtp=127.0.0.1:$SMTP_PORT users=*@$DOMAIN password=pass dir=$DIR"
