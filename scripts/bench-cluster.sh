#!/usr/bin/env bash
# The cluster benchmark (make bench-cluster; not part of make test): starts
# the two-shard cluster of scripts/clickhouse-cluster.sh on bench ports of
# its own (19210/19220, data in .clickhouse-cluster-bench/), runs the
# cluster test (detectors TestClusterMatchesSingleNode) at a higher rate,
# and prints the figures of docs/scaling.md: rows and bytes each kind's
# shards returned to the initiator for one cycle, and the cycle time on one
# node vs the Distributed table over two shards. It stops the servers
# whatever happens.
#
#   BENCH_CLUSTER_RATE=600 scripts/bench-cluster.sh   requests per minute (default 300)
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
export CH_CLUSTER_DIR="${BENCH_CLUSTER_DIR:-$top/.clickhouse-cluster-bench}"
export CH_SHARD1_TCP_PORT=19210 CH_SHARD1_HTTP_PORT=18233 CH_SHARD2_TCP_PORT=19220 CH_SHARD2_HTTP_PORT=18243
eval "$(scripts/clickhouse-cluster.sh env)"
trap 'scripts/clickhouse-cluster.sh stop' EXIT
scripts/clickhouse-cluster.sh start
MLWATCH_CLUSTER_BENCH_RATE="${BENCH_CLUSTER_RATE:-300}" \
  go test ./detectors -run '^TestClusterMatchesSingleNode$' -count=1 -v -timeout 60m | grep -E 'cluster:|^(--- |ok|FAIL)'
