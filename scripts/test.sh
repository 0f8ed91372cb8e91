#!/usr/bin/env bash
# The test command (make test, .ci/run): installs what is missing, starts
# the private ClickHouse server the tests need and the two-shard test
# cluster (scripts/clickhouse-cluster.sh), runs vet, staticcheck and every
# test, and stops the servers again whatever happens.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
. scripts/lib.sh
scripts/deps.sh
scripts/tools.sh
export MLWATCH_TEST_CLICKHOUSE_ADDR="127.0.0.1:$ch_tcp"
export MLWATCH_TEST_ALERTMANAGER_URL="http://127.0.0.1:$am_port"
eval "$(scripts/clickhouse-cluster.sh env)"
trap 'scripts/alertmanager.sh stop; scripts/clickhouse-cluster.sh stop; scripts/clickhouse-server.sh stop' EXIT
scripts/clickhouse-server.sh start
scripts/clickhouse-cluster.sh start
scripts/alertmanager.sh start
echo "test: go vet" >&2
go vet ./...
echo "test: staticcheck" >&2
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
unformatted="$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))"
if [ -n "$unformatted" ]; then
  echo "test: not gofmt'ed:" >&2
  echo "$unformatted" >&2
  exit 1
fi
echo "test: go test" >&2
# -timeout is each package's guard against a hang, not a speed target:
# idle, the slowest package (detectors) takes about 10 min on 2 cores;
# on a machine at load average 25-30 (other test runs beside it), over
# 40 min.
#
# -p 8 runs every test package at once. With go test's default (one
# package per CPU, 2 here) the short packages (monitor, traffic, store,
# slackapp) wait for the two long ones (cmd/mlwatch, detectors) and then
# run one after another at the end, about 5 minutes on a loaded machine.
# -parallel 4: cmd/mlwatch's parallel tests (daemons under faults, bad
# input, the demo) mostly wait on their mlwatch processes; two at a time
# (the default, one per CPU) queued the demo, the longest, behind the
# others. The tests assert outcomes, not durations, and hold at load
# 25-30.
go test -count=1 -p 8 -parallel 4 -timeout 75m "$@" ./...
