#!/usr/bin/env bash
# Runs two private Debian clickhouse-server processes as the two shards of
# a local cluster, for the cluster tests and benchmarks: each has its own
# data dir and ports (loopback only), both know the cluster from the same
# remote_servers config, and both keep system.query_log, so a test can see
# what each shard returned to the initiator (prefer_localhost_replica=0:
# the initiator's own shard answers over the network too, and is logged).
#
#   scripts/clickhouse-cluster.sh start   start both (scripts/clickhouse-server.sh), wait until they answer
#   scripts/clickhouse-cluster.sh stop    stop both
#   scripts/clickhouse-cluster.sh status  exit 0 when both answer
#   scripts/clickhouse-cluster.sh env     print the MLWATCH_TEST_CLUSTER_* exports of the tests
#
# Environment: CH_CLUSTER_DIR (default .clickhouse-cluster; shard i in
# shard<i>/), CH_CLUSTER_NAME (mlwatch_test), CH_SHARD1_TCP_PORT (19010),
# CH_SHARD1_HTTP_PORT (18133), CH_SHARD2_TCP_PORT (19020),
# CH_SHARD2_HTTP_PORT (18143). No ZooKeeper: tables are plain MergeTree
# per shard, and DDL goes node by node (ON CLUSTER needs the DDL queue).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
dir="${CH_CLUSTER_DIR:-$top/.clickhouse-cluster}"
name="${CH_CLUSTER_NAME:-mlwatch_test}"
tcp1="${CH_SHARD1_TCP_PORT:-19010}"
http1="${CH_SHARD1_HTTP_PORT:-18133}"
tcp2="${CH_SHARD2_TCP_PORT:-19020}"
http2="${CH_SHARD2_HTTP_PORT:-18143}"

xml() {
  cat <<XML
  <remote_servers>
    <$name>
      <shard><replica><host>127.0.0.1</host><port>$tcp1</port></replica></shard>
      <shard><replica><host>127.0.0.1</host><port>$tcp2</port></replica></shard>
    </$name>
  </remote_servers>
  <query_log><database>system</database><table>query_log</table>
    <flush_interval_milliseconds>500</flush_interval_milliseconds></query_log>
XML
}

shard() { # shard N start|stop|status
  local n="$1" tcp http
  if [ "$n" = 1 ]; then tcp="$tcp1" http="$http1"; else tcp="$tcp2" http="$http2"; fi
  CH_DIR="$dir/shard$n" CH_TCP_PORT="$tcp" CH_HTTP_PORT="$http" CH_MAX_MEMORY="${CH_MAX_MEMORY:-4000000000}" \
    CH_EXTRA_XML="$(xml)" CH_PROFILE_XML="<prefer_localhost_replica>0</prefer_localhost_replica>" "$top/scripts/clickhouse-server.sh" "$2"
}

case "${1:-}" in
  start) shard 1 start && shard 2 start ;;
  stop) rc=0; shard 1 stop || rc=$?; shard 2 stop || rc=$?; exit $rc ;;
  status) shard 1 status && shard 2 status ;;
  env)
    echo "export MLWATCH_TEST_CLUSTER_ADDRS=127.0.0.1:$tcp1,127.0.0.1:$tcp2"
    echo "export MLWATCH_TEST_CLUSTER_NAME=$name"
    ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
