#!/usr/bin/env bash
# Runs Debian's prometheus-alertmanager as a private process for tests: its
# own data dir, a non-default loopback port, clustering off.
#
#   scripts/alertmanager.sh start    install if missing, start, wait until ready
#   scripts/alertmanager.sh stop     stop it and wait for the process to go
#   scripts/alertmanager.sh status   exit 0 when it answers /-/ready
#   scripts/alertmanager.sh url      print its base URL
#
# Environment: AM_DIR (default .alertmanager-test), AM_PORT (19093).
# Tests find it through MLWATCH_TEST_ALERTMANAGER_URL (default
# http://127.0.0.1:19093).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
. "$top/scripts/lib.sh"
dir="${AM_DIR:-$top/.alertmanager-test}"
url="http://127.0.0.1:$am_port"
bin=prometheus-alertmanager

install() {
  if command -v "$bin" >/dev/null 2>&1; then
    return
  fi
  echo "alertmanager.sh: installing Debian's prometheus-alertmanager" >&2
  # The package's postinst may try to start a system service; there is none
  # here, and the private instance below does not need it.
  apt_install --no-install-recommends prometheus-alertmanager
}

answers() {
  curl -fsS -o /dev/null --max-time 2 "$url/-/ready" 2>/dev/null
}

start() {
  install
  if answers; then
    echo "alertmanager.sh: already answering on $url" >&2
    return
  fi
  mkdir -p "$dir/data"
  cat >"$dir/alertmanager.yml" <<YAML
route:
  receiver: blackhole
  group_wait: 1h
receivers:
  - name: blackhole
YAML
  nohup "$bin" --config.file="$dir/alertmanager.yml" --storage.path="$dir/data" \
    --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= \
    --log.level=warn >"$dir/alertmanager.log" 2>&1 &
  echo $! >"$dir/am.pid"
  wait_ready alertmanager.sh "$url" "$dir" "$dir/alertmanager.log" "$dir/am.pid"
}

stop() {
  stop_pidfile "$dir/am.pid" 100
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) answers ;;
  url) echo "$url" ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
