#!/usr/bin/env bash
# Measures the figures issue #2 names, on this machine, against a private local Redis:
#   - authenticated requests/s and latency with wrk -t2 -c50 on GET /v1/settings and /v1/stats
#   - resident memory at idle (after start) and after the load
#   - time from process start to the first /health answer
#   - wall time of `emailengine tokens issue`
# Each figure is the median of RUNS runs (default 5). Usage: scripts/bench.sh [RUNS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
RUNS=${1:-5}
SECS=${2:-10}
LOG_LEVEL=${LOG_LEVEL:-info}

need_cargo
apt_install redis-server redis-server
apt_install wrk wrk
cargo build --release --quiet
BIN=target/release/emailengine

dir=$(mktemp -d /tmp/emailengine-bench.XXXXXX)
rport=$(free_port 17379)
aport=$(free_port 17300)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; stop_redis "$dir"; rm -rf "$dir"; }
trap cleanup EXIT
start_redis "$rport" "$dir"
export EENGINE_REDIS="redis://127.0.0.1:$rport/8"

median() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.stdin.read().split()]; print(f"{statistics.median(v):.1f}")'; }
now_ns() { date +%s%N; }

# tokens issue: wall time per run
issue_ms=()
for _ in $(seq "$RUNS"); do
  s=$(now_ns); TOKEN=$($BIN tokens issue -d bench -s '*'); e=$(now_ns)
  issue_ms+=("$(( (e - s) / 1000 ))")
done
issue_med=$(printf '%s\n' "${issue_ms[@]}" | awk '{print $1/1000}' | median)

# start-up: process start until /health answers
start_ms=()
for _ in $(seq "$RUNS"); do
  s=$(now_ns)
  $BIN --api.port="$aport" --log.level="$LOG_LEVEL" >/dev/null 2>&1 &
  server_pid=$!
  until curl -sf "http://127.0.0.1:$aport/health" >/dev/null; do sleep 0.002; done
  e=$(now_ns)
  start_ms+=("$(( (e - s) / 1000 ))")
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
done
start_med=$(printf '%s\n' "${start_ms[@]}" | awk '{print $1/1000}' | median)

$BIN --api.port="$aport" --log.level="$LOG_LEVEL" >"$dir/server.log" 2>&1 &
server_pid=$!
until curl -sf "http://127.0.0.1:$aport/health" >/dev/null; do sleep 0.01; done
sleep 1
rss_idle=$(( $(awk '/VmRSS/{print $2}' "/proc/$server_pid/status") ))

run_wrk() {
  local path=$1 rps=() p50=() p99=()
  for _ in $(seq "$RUNS"); do
    out=$(wrk -t2 -c50 -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$aport$path")
    rps+=("$(echo "$out" | awk '/Requests\/sec/{print $2}')")
    p50+=("$(echo "$out" | awk '$1=="50%"{print $2}' | python3 -c 'import sys;v=sys.stdin.read().strip();print(float(v[:-2])/1000 if v.endswith("us") else float(v[:-2]) if v.endswith("ms") else float(v[:-1])*1000)')")
    p99+=("$(echo "$out" | awk '$1=="99%"{print $2}' | python3 -c 'import sys;v=sys.stdin.read().strip();print(float(v[:-2])/1000 if v.endswith("us") else float(v[:-2]) if v.endswith("ms") else float(v[:-1])*1000)')")
    if echo "$out" | grep -q "Non-2xx"; then echo "non-2xx answers on $path" >&2; echo "$out" >&2; exit 1; fi
  done
  echo "$(printf '%s\n' "${rps[@]}" | median) $(printf '%s\n' "${p50[@]}" | python3 -c 'import sys,statistics; print(f"{statistics.median(float(x) for x in sys.stdin.read().split()):.2f}")') $(printf '%s\n' "${p99[@]}" | python3 -c 'import sys,statistics; print(f"{statistics.median(float(x) for x in sys.stdin.read().split()):.2f}")')"
}
read -r set_rps set_p50 set_p99 <<<"$(run_wrk '/v1/settings?webhooks=true&webhooksEnabled=true')"
read -r st_rps st_p50 st_p99 <<<"$(run_wrk '/v1/stats')"
rss_load=$(( $(awk '/VmRSS/{print $2}' "/proc/$server_pid/status") ))

cat <<REPORT
date:        $(date -u +%Y-%m-%dT%H:%MZ)
machine:     $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), redis $(redis-server --version | awk '{print $3}' | cut -d= -f2)
command:     scripts/bench.sh $RUNS $SECS (log level $LOG_LEVEL; medians of $RUNS runs)
GET /v1/settings  wrk -t2 -c50 ${SECS}s: ${set_rps} req/s, p50 ${set_p50} ms, p99 ${set_p99} ms
GET /v1/stats     wrk -t2 -c50 ${SECS}s: ${st_rps} req/s, p50 ${st_p50} ms, p99 ${st_p99} ms
resident memory:  idle $((rss_idle / 1024)) MiB ($rss_idle KiB), after load $((rss_load / 1024)) MiB ($rss_load KiB)
start to first answer: ${start_med} ms
tokens issue:     ${issue_med} ms
REPORT
