#!/usr/bin/env bash
# The long fault and load tests (make soak): the daemon under 200
# detectors for minutes, SIGKILL in a loop, Slack down for minutes, a
# million distinct slice values. Traffic stays on loopback. The tests start
# private ClickHouse servers of their own; the shared-engine cases use a
# server on soak ports (19100/18323), never the make-test one.
#
# Environment: SOAK_DURATION (load test length, default 5m).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
scripts/deps.sh
export CH_DIR="$top/.clickhouse-soak" CH_TCP_PORT=19100 CH_HTTP_PORT=18323
export MLWATCH_TEST_CLICKHOUSE_ADDR="127.0.0.1:$CH_TCP_PORT"
trap 'scripts/clickhouse-server.sh stop' EXIT
scripts/clickhouse-server.sh start
go test -tags soak -count=1 -timeout 90m -v -run 'TestSoak|TestFaultSlackOutage|TestBadData' ./cmd/mlwatch/ 2>&1 |
  grep -v '^ *{"level"' | tee "$top/soak.log"
test "${PIPESTATUS[0]}" -eq 0
