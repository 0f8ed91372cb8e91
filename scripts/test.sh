#!/usr/bin/env bash
# The test command (make test, .ci/run): installs what is missing, starts
# the private ClickHouse server the tests need, runs vet, staticcheck and
# every test, and stops the server again whatever happens.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
scripts/deps.sh
scripts/clickhouse-server.sh start
trap 'scripts/clickhouse-server.sh stop' EXIT
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
go test -count=1 -timeout 25m "$@" ./...
