# Shared shell helpers for the project's scripts: install Debian packages when missing, find a
# free loopback port, start and stop a private Redis.

need_cargo() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo was not found: install Rust 1.95 or newer (https://rustup.rs) and run this again." >&2
    exit 1
  fi
}

# apt_install CMD PACKAGE...: installs the packages when CMD is not on PATH.
apt_install() {
  local cmd=$1; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "$cmd is missing: run 'sudo apt-get install -y $*' and try again." >&2
    exit 1
  fi
  echo "Installing $* ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "$@" >/dev/null
}

# apt_install_always PACKAGE...: installs the packages (for ones that add no command).
apt_install_always() {
  if [ "$(id -u)" != 0 ]; then
    echo "$* is missing: run 'sudo apt-get install -y $*' and try again." >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "$@" >/dev/null
}

# free_port START: the first port from START that nothing listens on.
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

# start_redis PORT DIR: a Redis without persistence on 127.0.0.1:PORT, pid in DIR/redis.pid.
start_redis() {
  local port=$1 dir=$2
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$dir" --pidfile "$dir/redis.pid" --daemonize yes --logfile "$dir/redis.log"
  for _ in $(seq 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "Redis did not start on port $port (see $dir/redis.log)" >&2
  return 1
}

stop_redis() {
  local dir=$1
  [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
}
