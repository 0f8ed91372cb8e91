#!/usr/bin/env bash
# Runs Debian's clickhouse-server as a private process for tests and
# benchmarks: its own data dir, non-default ports, loopback only.
#
#   scripts/clickhouse-server.sh start   install if missing, start, wait until it answers
#   scripts/clickhouse-server.sh stop    stop it and wait for the process to go
#   scripts/clickhouse-server.sh status  exit 0 when it answers
#
# Environment: CH_DIR (default .clickhouse-test), CH_TCP_PORT (19000),
# CH_HTTP_PORT (18123), CH_MAX_MEMORY (bytes, default 8 GB), CH_EXTRA_XML
# (config elements added inside <yandex>, e.g. the remote_servers of
# scripts/clickhouse-cluster.sh), CH_PROFILE_XML (settings added to the
# default profile).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
. "$top/scripts/lib.sh"
dir="${CH_DIR:-$top/.clickhouse-test}"
maxmem="${CH_MAX_MEMORY:-8000000000}"
extra="${CH_EXTRA_XML:-}"
profile="${CH_PROFILE_XML:-}"

install() {
  if command -v clickhouse-server >/dev/null 2>&1 && command -v clickhouse-client >/dev/null 2>&1; then
    return
  fi
  echo "clickhouse-server.sh: installing Debian's clickhouse-server" >&2
  apt_install clickhouse-server clickhouse-client
}

answers() {
  clickhouse-client --host 127.0.0.1 --port "$ch_tcp" -q 'SELECT 1' >/dev/null 2>&1
}

write_config() {
  mkdir -p "$dir/log" "$dir/data/tmp" "$dir/data/user_files" "$dir/data/format_schemas"
  cat >"$dir/config.xml" <<XML
<yandex>
  <logger><level>warning</level><log>$dir/log/server.log</log>
    <errorlog>$dir/log/err.log</errorlog><size>100M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>$ch_tcp</tcp_port><http_port>$ch_http</http_port>
  <path>$dir/data/</path><tmp_path>$dir/data/tmp/</tmp_path>
  <user_files_path>$dir/data/user_files/</user_files_path>
  <format_schema_path>$dir/data/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size><timezone>UTC</timezone>
  <max_concurrent_queries>100</max_concurrent_queries>
$extra
</yandex>
XML
  cat >"$dir/users.xml" <<XML
<yandex>
  <profiles><default><max_memory_usage>$maxmem</max_memory_usage><log_queries>1</log_queries>$profile</default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
}

start() {
  install
  if answers; then
    echo "clickhouse-server.sh: already answering on 127.0.0.1:$ch_tcp" >&2
    return
  fi
  write_config
  clickhouse-server --config-file="$dir/config.xml" --daemon --pid-file="$dir/ch.pid" >/dev/null 2>&1
  wait_ready clickhouse-server.sh "127.0.0.1:$ch_tcp" "$dir" "$dir/log/err.log"
}

stop() {
  stop_pidfile "$dir/ch.pid" 300
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) answers ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
