#!/usr/bin/env bash
# The fuzz targets (make fuzz), each for FUZZTIME (default 60s): the config
# loader and the quoting of identifiers and strings. Their seed corpora are
# committed under testdata/fuzz; a failing input is written there too.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
t="${FUZZTIME:-60s}"
go test -run '^$' -fuzz '^FuzzParse$' -fuzztime "$t" ./configs
go test -run '^$' -fuzz '^FuzzQuoteIdent$' -fuzztime "$t" ./store
go test -run '^$' -fuzz '^FuzzQuoteString$' -fuzztime "$t" ./store
