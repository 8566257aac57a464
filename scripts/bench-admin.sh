#!/usr/bin/env bash
# Measures how fast the admin pages answer with 1,000 accounts registered (issue #11: every page
# under 50 ms locally). Starts a release server on a private store (embedded by default,
# BENCH_STORE=redis for a private Redis), registers 1,000 IMAP accounts over the API (disabled,
# so none connects), signs in to /admin with a password set by the CLI, then times each page
# with curl: REQS requests per page on one kept-alive connection per run, RUNS runs; the figure
# per page is the median over all requests, with the slowest run's p90 beside it.
# Usage: scripts/bench-admin.sh [RUNS] [REQS]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
RUNS=${1:-5}
REQS=${2:-20}
ACCOUNTS=${ACCOUNTS:-1000}

need_cargo
cargo build --release --quiet -p emailengine
BIN=${CARGO_TARGET_DIR:-target}/release/emailengine

dir=$(mktemp -d /tmp/emailengine-bench-admin.XXXXXX)
aport=$(free_port 17400)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; stop_redis "$dir"; rm -rf "$dir"; }
trap cleanup EXIT
if [ "${BENCH_STORE:-embedded}" = redis ]; then
  apt_install redis-server redis-server
  rport=$(free_port 17479)
  start_redis "$rport" "$dir"
  export EENGINE_REDIS="redis://127.0.0.1:$rport/8"
else
  export EENGINE_DB_PATH="$dir/data"
fi
base="http://127.0.0.1:$aport"
password="bench-admin-password"

TOKEN=$($BIN tokens issue -d bench -s '*')
$BIN password --password="$password" >/dev/null
$BIN --api.port="$aport" --log.level=warn >"$dir/server.log" 2>&1 &
server_pid=$!
until curl -sf "$base/health" >/dev/null; do sleep 0.02; done

# 1,000 accounts in one curl run (one connection, requests back to back).
cfg="$dir/accounts.curl"
for i in $(seq -w 1 "$ACCOUNTS"); do
  [ -s "$cfg" ] && echo next >>"$cfg"
  cat >>"$cfg" <<CFG
url = "$base/v1/account"
header = "Authorization: Bearer $TOKEN"
header = "Content-Type: application/json"
data = "{\"account\":\"acct-$i\",\"name\":\"Account $i\",\"email\":\"user$i@example.com\",\"imap\":{\"host\":\"127.0.0.1\",\"port\":9,\"secure\":false,\"disabled\":true,\"auth\":{\"user\":\"user$i\",\"pass\":\"secret\"}}}"
output = "/dev/null"
CFG
done
s=$(date +%s%N)
curl -s --fail-early -K "$cfg"
e=$(date +%s%N)
count=$(curl -s -H "Authorization: Bearer $TOKEN" "$base/v1/accounts?pageSize=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
[ "$count" = "$ACCOUNTS" ] || { echo "expected $ACCOUNTS accounts, found $count" >&2; exit 1; }
register_ms=$(( (e - s) / 1000000 ))

# Sign in: the log-in form's CSRF token, then the password.
jar="$dir/cookies"
csrf=$(curl -s -c "$jar" -b "$jar" "$base/admin/login" | grep -o 'name="csrf" value="[0-9a-f]*"' | grep -o '[0-9a-f]\{64\}')
code=$(curl -s -o /dev/null -w '%{http_code}' -c "$jar" -b "$jar" -H "Origin: $base" \
  --data-urlencode "csrf=$csrf" --data-urlencode "password=$password" "$base/admin/login")
[ "$code" = 303 ] || { echo "sign-in failed (HTTP $code)" >&2; exit 1; }

pages=(
  /admin
  /admin/accounts
  "/admin/accounts?page=25"
  "/admin/accounts?query=acct-0500"
  "/admin/accounts?state=disconnected"
  /admin/accounts/acct-0500
  /admin/accounts/new
  /admin/tokens
  /admin/tokens/new
  /admin/webhooks
  /admin/outbox
  /admin/settings
  /admin/account/security
  /admin/config/oauth
  "/admin/config/oauth/new?provider=gmail"
  "/admin/accounts/states?account=acct-0500"
  /admin/dashboard/states
)
printf 'date:      %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
printf 'machine:   %s cores, %s, %s\n' "$(nproc)" "$(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)" "$(. /etc/os-release; echo "$PRETTY_NAME")"
printf 'command:   scripts/bench-admin.sh %s %s (store %s, %s accounts registered in %s ms)\n' "$RUNS" "$REQS" "${BENCH_STORE:-embedded}" "$ACCOUNTS" "$register_ms"
printf '%-38s %8s %8s %8s\n' page median p90 max
for page in "${pages[@]}"; do
  all="$dir/times"
  : >"$all"
  for _ in $(seq "$RUNS"); do
    args=()
    for _ in $(seq "$REQS"); do args+=(-o /dev/null "$base$page"); done
    out=$(curl -s -b "$jar" -w '%{http_code} %{time_total}\n' "${args[@]}")
    if echo "$out" | grep -qv '^200 '; then echo "non-200 answer on $page: $(echo "$out" | grep -v '^200 ' | head -1)" >&2; exit 1; fi
    echo "$out" | awk '{print $2 * 1000}' >>"$all"
  done
  python3 - "$page" "$all" <<'PY'
import statistics, sys
v = sorted(float(x) for x in open(sys.argv[2]).read().split())
p90 = v[min(len(v) - 1, int(len(v) * 0.9))]
print(f"{sys.argv[1]:<38} {statistics.median(v):7.2f}ms {p90:7.2f}ms {v[-1]:7.2f}ms")
PY
done
