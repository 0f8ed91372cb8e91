#!/usr/bin/env bash
# The benchmark command (make bench; not part of make test): starts a
# private ClickHouse server of its own (data in .clickhouse-bench/, port
# 19200, so it never disturbs the test server), builds mlwatch and mlbench,
# fills the server with generated traffic at 1M, 5M and 10M rows (kept
# between runs; --huge adds 100M, about 40 min to generate), prints the
# table of docs/benchmarks.md and stops the server whatever happens.
#
#   scripts/bench.sh [mlbench flags]      e.g. --huge, --sizes 5M, --reps 9
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
export CH_DIR="${BENCH_CH_DIR:-$top/.clickhouse-bench}"
export CH_TCP_PORT="${BENCH_CH_PORT:-19200}"
export CH_HTTP_PORT="${BENCH_CH_HTTP_PORT:-18223}"
export CH_MAX_MEMORY="${BENCH_CH_MAX_MEMORY:-12000000000}"
go mod download
trap 'scripts/clickhouse-server.sh stop' EXIT
scripts/clickhouse-server.sh start
go build -o bin/mlwatch ./cmd/mlwatch
go build -o bin/mlbench ./cmd/mlbench
bin/mlbench --addr "127.0.0.1:$CH_TCP_PORT" --mlwatch bin/mlwatch "$@"
