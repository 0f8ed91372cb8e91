# Shared by the scripts that install Debian packages and run private test
# servers (alertmanager.sh, clickhouse-server.sh, tools.sh) and by test.sh;
# sourced, not run.

# The private test servers' ports: CI's unless CH_TCP_PORT, CH_HTTP_PORT
# or AM_PORT say otherwise. clickhouse-server.sh and alertmanager.sh
# listen on them; test.sh points the tests at them.
ch_tcp="${CH_TCP_PORT:-19000}"
ch_http="${CH_HTTP_PORT:-18123}"
am_port="${AM_PORT:-19093}"

# apt_install ARGS...: apt-get install -y -q ARGS, as root or with sudo,
# refreshing the package lists once when the first try fails.
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null ||
    { $sudo apt-get update -q >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

# wait_ready NAME WHERE DIR LOG [PIDFILE]: wait up to 30 s until the
# caller's answers function succeeds, giving up early when PIDFILE's
# process is gone; on failure show LOG's tail and exit 1.
wait_ready() {
  local name="$1" where="$2" dir="$3" log="$4" pidfile="${5:-}"
  for _ in $(seq 1 300); do
    if answers; then
      echo "$name: ready on $where (data in $dir)" >&2
      return
    fi
    if [ -n "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  echo "$name: nothing answered on $where (waited up to 30 s); see $log" >&2
  tail -20 "$log" >&2 || true
  exit 1
}

# stop_pidfile FILE TENTHS: TERM the process in FILE, wait up to TENTHS
# tenths of a second for it to go, then KILL it; remove FILE. Nothing to
# do without FILE.
stop_pidfile() {
  [ -f "$1" ] || return 0
  local pid
  pid="$(cat "$1")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 "$2"); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}
