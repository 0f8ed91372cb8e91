#!/usr/bin/env bash
# The HA-pair benchmark (make bench-ha; not part of make test): starts a
# private ClickHouse server on a bench port of its own (BENCH_HA_TCP_PORT,
# default 19230; data in .clickhouse-ha-bench/), runs BenchmarkHAPair
# (cmd/mlwatch/ha_bench_test.go: two `mlwatch run` replicas on one
# ClickHouse and one local Slack) and prints the figures of
# docs/scaling.md: duplicates per 100 notifications with both replicas up,
# and the seconds from a SIGKILL of the sending replica to the survivor's
# first page. It stops the server whatever happens; the whole output is in
# BENCH_HA_LOG (default /tmp/mlwatch-bench-ha.log).
#
#   BENCH_HA_PEER_TIMEOUT=15s BENCH_HA_NOTIFICATIONS=100 BENCH_HA_DETECTORS=10 scripts/bench-ha.sh
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
export CH_DIR="${BENCH_HA_DIR:-$top/.clickhouse-ha-bench}"
export CH_TCP_PORT="${BENCH_HA_TCP_PORT:-19230}" CH_HTTP_PORT="${BENCH_HA_HTTP_PORT:-18253}"
trap 'scripts/clickhouse-server.sh stop' EXIT
scripts/clickhouse-server.sh start
MLWATCH_TEST_CLICKHOUSE_ADDR="127.0.0.1:$CH_TCP_PORT" \
  go test ./cmd/mlwatch -run '^$' -bench '^BenchmarkHAPair$' -benchtime 1x -timeout 60m 2>&1 | tee "${BENCH_HA_LOG:-/tmp/mlwatch-bench-ha.log}" | grep --line-buffered -E '^ha:|Benchmark|^(ok|FAIL)|timed out|_test.go'
