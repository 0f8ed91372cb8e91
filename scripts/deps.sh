#!/usr/bin/env bash
# Installs what building and testing mlwatch needs on a fresh Debian
# machine: Go modules and the embedded ClickHouse library. Idempotent.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
if ! command -v go >/dev/null 2>&1; then
  echo "deps: Go is needed (https://go.dev/dl/; Debian: golang-go is too old, use the Go release)" >&2
  exit 1
fi
go mod download
scripts/install-libchdb.sh
