#!/usr/bin/env bash
# Peak RSS of the daemon (`mlwatch run`, server mode) with 20 detectors
# evaluated incrementally (global.incremental on; docs/benchmarks.md,
# "Incremental evaluation"). Not part of make test or make bench.
#
# The daemon has no clock of its own to set: it evaluates at the wall
# clock. So the traffic is generated around now: 8 days and an hour
# before the start (the 7-day seasonal baselines' data) up to the end of
# the run plus 15 minutes, with a production-only block of FR over the
# last 45 minutes before the start and the whole run (so block_rate
# findings and notifications happen). Every detector runs every 5
# minutes: the first fire time is the cold start (every bucket of every
# window filled), the next ones are steady-state cycles. The daemon's
# notifications go to a local webhook sink (python3). At the end the
# script prints the daemon's VmHWM (peak RSS, read from /proc just
# before SIGTERM), its RSS every 10 s, the runs per detector and outcome
# from /metrics, and the partials it filled.
#
#   scripts/bench-incremental-rss.sh
#
# Environment: RSS_MINUTES (the daemon's run, default 20: a cold start
# and three steady cycles), RSS_RATE (requests/minute on a weekday,
# default 130: ~2.9M rows over the 8 days; each request logs a production
# and a shadow row), RSS_ADDR (use a running ClickHouse server at this
# address instead of starting one: CH_DIR .clickhouse-rss, ports
# RSS_CH_PORT 19260 / RSS_CH_HTTP_PORT 18263), RSS_DATABASE (default
# mlwatch_rss, dropped and recreated), RSS_WEB_PORT (the daemon's HTTP
# port, default 19267), RSS_SINK_PORT (the webhook sink, default 19268),
# RSS_STATE_DATABASE (mlwatch's own tables, default RSS_DATABASE; another
# one lets a second run share the rows), RSS_DIR (config, logs and samples, default a new temporary directory),
# RSS_INCREMENTAL (default true; false: the same daemon on the raw path,
# for comparison), RSS_REUSE=1 (keep the rows RSS_DATABASE holds from the
# last run, topped up to the end of this one; the partials are dropped, so
# the daemon starts cold again).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
minutes="${RSS_MINUTES:-20}"
incremental="${RSS_INCREMENTAL:-true}"
rate="${RSS_RATE:-130}"
db="${RSS_DATABASE:-mlwatch_rss}"
state="${RSS_STATE_DATABASE:-$db}"
web="${RSS_WEB_PORT:-19267}"
sink="${RSS_SINK_PORT:-19268}"
dir="${RSS_DIR:-$(mktemp -d /tmp/mlwatch-rss.XXXXXX)}"
mkdir -p "$dir"
secs=$(( minutes * 60 ))

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -z "${RSS_ADDR:-}" ]; then scripts/clickhouse-server.sh stop; fi
}
trap cleanup EXIT
if [ -n "${RSS_ADDR:-}" ]; then
  addr="$RSS_ADDR"
else
  export CH_DIR="$top/.clickhouse-rss" CH_TCP_PORT="${RSS_CH_PORT:-19260}" CH_HTTP_PORT="${RSS_CH_HTTP_PORT:-18263}"
  scripts/clickhouse-server.sh start
  addr="127.0.0.1:$CH_TCP_PORT"
fi
host="${addr%:*}" port="${addr##*:}"
go build -o bin/mlwatch ./cmd/mlwatch

cat >"$dir/rss.yaml" <<YAML
clickhouse:
  addr: $addr
  database: $state
  query_timeout: 5m
global:
  run_timeout: 10m
  group_wait: 10s
  incremental: {enabled: $incremental}
server:
  listen_address: 127.0.0.1:$web
models:
  - name: fraud
    table: $db.predictions
    slices: [country, merchant_category]
    features: {layout: arrays, names_column: feature_names, values_column: feature_values}
    shadow: {mode: rows, production_role: production, shadow_role: shadow}
    owners: {product: sink, infra: sink}
detectors:
  - {name: br-1h-seasonal, kind: block_rate, model: fraud, schedule: "*/5 * * * *", window: 1h, baseline: {mode: seasonal, days: 7}, min_samples: 200, block_rate: {max_rate: 0.2, score_psi: true}}
  - {name: br-1h-seasonal-country, kind: block_rate, model: fraud, schedule: "*/5 * * * *", window: 1h, baseline: {mode: seasonal, days: 7}, slices: [country], block_rate: {score_psi: true}}
  - {name: br-1h-seasonal-category, kind: block_rate, model: fraud, schedule: "*/5 * * * *", window: 1h, baseline: {mode: seasonal, days: 7}, slices: [merchant_category], block_rate: {score_psi: false}}
  - {name: br-1h-seasonal-delay, kind: block_rate, model: fraud, schedule: "*/5 * * * *", window: 1h, eval_delay: 150s, baseline: {mode: seasonal, days: 7}, slices: [country], block_rate: {score_psi: true}}
  - {name: br-2h-seasonal, kind: block_rate, model: fraud, schedule: "*/5 * * * *", window: 2h, baseline: {mode: seasonal, days: 7}, slices: [country], block_rate: {score_psi: true}}
  - {name: br-6h-seasonal-3d, kind: block_rate, model: fraud, schedule: "*/5 * * * *", window: 6h, baseline: {mode: seasonal, days: 3}, slices: [country], block_rate: {score_psi: false}}
  - {name: br-12h-previous, kind: block_rate, model: fraud, schedule: "*/5 * * * *", window: 12h, baseline: {mode: previous, span: 24h}, slices: [country], min_rel_change: 0.3, block_rate: {score_psi: false}}
  - {name: br-30m-previous, kind: block_rate, model: fraud, schedule: "*/5 * * * *", window: 30m, baseline: {mode: previous, span: 6h}, block_rate: {score_psi: true}}
  - {name: br-15m-previous, kind: block_rate, model: fraud, schedule: "*/5 * * * *", window: 15m, baseline: {mode: previous}, slices: [country], block_rate: {score_psi: false}}
  - {name: vol-1h-seasonal, kind: volume, model: fraud, schedule: "*/5 * * * *", window: 1h, baseline: {mode: seasonal, days: 7}, slices: [], volume: {drop_ratio: 0.5, spike_ratio: 3}}
  - {name: vol-1h-seasonal-country, kind: volume, model: fraud, schedule: "*/5 * * * *", window: 1h, baseline: {mode: seasonal, days: 7}, slices: [country], volume: {drop_ratio: 0.5, spike_ratio: 3}}
  - {name: vol-1h-seasonal-category, kind: volume, model: fraud, schedule: "*/5 * * * *", window: 1h, baseline: {mode: seasonal, days: 7}, slices: [merchant_category], volume: {drop_ratio: 0.5, spike_ratio: 3}}
  - {name: vol-2h-seasonal, kind: volume, model: fraud, schedule: "*/5 * * * *", window: 2h, baseline: {mode: seasonal, days: 7}, volume: {drop_ratio: 0.5, spike_ratio: 3}}
  - {name: vol-30m-previous, kind: volume, model: fraud, schedule: "*/5 * * * *", window: 30m, baseline: {mode: previous, span: 6h}, slices: [merchant_category], volume: {drop_ratio: 0.5, spike_ratio: 3}}
  - {name: vol-15m-previous, kind: volume, model: fraud, schedule: "*/5 * * * *", window: 15m, baseline: {mode: previous}, slices: [country], volume: {drop_ratio: 0.5, spike_ratio: 3}}
  - {name: exp-canaries, kind: expectation, model: fraud, schedule: "*/5 * * * *", window: 1h, min_samples: 20, expectation: {match: [{column: request_id, op: prefix, value: "canary-"}], min_rate: 0.9}}
  - {name: exp-canaries-15m, kind: expectation, model: fraud, schedule: "*/5 * * * *", window: 15m, min_samples: 5, expectation: {match: [{column: request_id, op: prefix, value: "canary-"}], min_rate: 0.9}}
  - {name: exp-fr-de, kind: expectation, model: fraud, schedule: "*/5 * * * *", window: 1h, min_samples: 20, expectation: {match: [{column: country, op: in, values: [FR, DE]}], max_rate: 0.1}}
  - {name: exp-digital-goods, kind: expectation, model: fraud, schedule: "*/5 * * * *", window: 1h, min_samples: 20, expectation: {match: [{column: merchant_category, op: eq, value: digital_goods}], max_rate: 0.2}}
  - {name: exp-us-by-category, kind: expectation, model: fraud, schedule: "*/5 * * * *", window: 1h, min_samples: 20, slices: [merchant_category], expectation: {match: [{column: country, op: eq, value: US}], max_rate: 0.15}}
receivers:
  - name: sink
    webhook: {url: "http://127.0.0.1:$sink/"}
YAML

echo "bench-incremental-rss: config, logs and samples in $dir" >&2
ch() { clickhouse-client --host "$host" --port "$port" -q "$1"; }
have=0
if [ "${RSS_REUSE:-}" = 1 ]; then
  have="$(ch "SELECT count() FROM $db.predictions" 2>/dev/null || echo 0)"
fi
if [ "$have" -gt 0 ]; then
  # The last run's rows stay; mlwatch's own tables (partials, alerts)
  # go, so the daemon starts cold.
  ch "CREATE DATABASE IF NOT EXISTS $state"
  for t in $(ch "SELECT name FROM system.tables WHERE database = '$state' AND name LIKE 'mlwatch\\_%'"); do
    ch "DROP TABLE $state.$t"
  done
  bin/mlwatch schema apply --config "$dir/rss.yaml" >"$dir/schema.log" 2>&1
  from="$(ch "SELECT formatDateTime(min(ts), '%Y-%m-%dT%H:%M:%SZ') FROM $db.predictions")"
  end="$(ch "SELECT toUInt32(toStartOfMinute(max(ts))) + 60 FROM $db.predictions")"
else
  ch "DROP DATABASE IF EXISTS $db"
  ch "CREATE DATABASE $db"
  ch "CREATE DATABASE IF NOT EXISTS $state"
  bin/mlwatch schema apply --config "$dir/rss.yaml" --predictions >"$dir/schema.log" 2>&1
  now="$(date -u +%s)"
  first=$(( now / 300 * 300 - 8 * 86400 - 3600 ))
  span=$(( (now + secs + 900 - first) / 60 ))
  from="$(date -u -d "@$first" +%Y-%m-%dT%H:%M:%SZ)"
  # The block starts 45 minutes or less before the daemon (8d15m after
  # --from) and lasts to the end.
  bin/mlwatch generate --config "$dir/rss.yaml" --from "$from" --to "+${span}m" --rate "$rate" --seed 17 \
    --incident "slice_block:+8d15m:+${span}m:FR" 2>"$dir/generate.log" | tee -a "$dir/generate.out"
  end=$(( first + span * 60 ))
fi
# Generating takes minutes: top the traffic up to the end of the run.
more=$(( ($(date -u +%s) + secs + 900 - end) / 60 + 1 ))
if [ "$more" -gt 0 ]; then
  bin/mlwatch generate --config "$dir/rss.yaml" --from "$(date -u -d "@$end" +%Y-%m-%dT%H:%M:%SZ)" --to "+${more}m" \
    --rate "$rate" --seed "$end" --incident "slice_block:+0m:+${more}m:FR" 2>>"$dir/generate.log" | tee -a "$dir/generate.out"
  end=$(( end + more * 60 ))
fi
to="$(date -u -d "@$end" +%Y-%m-%dT%H:%M:%SZ)"
rows="$(ch "SELECT count() FROM $db.predictions")"

python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$sink" &
pids+=($!)

start="$(date -u +%s)"
bin/mlwatch run --config "$dir/rss.yaml" --log.level warn >"$dir/daemon.log" 2>&1 &
daemon=$!
pids+=("$daemon")
: >"$dir/rss.tsv"
while [ "$(( $(date -u +%s) - start ))" -lt "$secs" ]; do
  kill -0 "$daemon" 2>/dev/null || { echo "bench-incremental-rss: mlwatch run exited; see $dir/daemon.log" >&2; tail -20 "$dir/daemon.log" >&2; exit 1; }
  printf '%s\t%s\n' "$(( $(date -u +%s) - start ))" "$(awk '/^VmRSS:/ {print $2}' "/proc/$daemon/status")" >>"$dir/rss.tsv"
  sleep 10
done
curl -sf "http://127.0.0.1:$web/metrics" >"$dir/metrics.txt" || true
hwm="$(awk '/^VmHWM:/ {print $2}' "/proc/$daemon/status")"
kill -TERM "$daemon"
wait "$daemon" || true

# sum NAME [TEXT]: the sum of the samples of metric NAME whose labels
# contain TEXT (none: 0).
sum() { awk -v n="$1{" -v t="${2:-}" 'index($0, n) == 1 && index($1, t) {s += $2} END {print s + 0}' "$dir/metrics.txt"; }
echo
echo "rows: $rows in $db.predictions ($from to $to, rate $rate)"
echo "daemon: $minutes minutes, 20 detectors every 5 minutes, global.incremental.enabled $incremental, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "runs: $(sum mlwatch_detector_runs_total 'result="success"') succeeded, $(sum mlwatch_detector_runs_total 'result="failure"') failed," \
  "$(sum mlwatch_detector_missed_runs_total) fire times missed; $(sum mlwatch_notifications_total 'outcome="sent"') notifications sent"
echo "partials: $(ch "SELECT count(), uniqExact(hash), uniqExact(detector) FROM $state.mlwatch_partials_fills FORMAT TSV" | awk '{print $1 " buckets filled for " $2 " keys, by " $3 " detectors"}')"
echo "RSS every 10 s (MiB): $(awk '{printf "%s%.0f", (NR > 1 ? " " : ""), $2 / 1024}' "$dir/rss.tsv")"
awk -v k="$hwm" '$2 > m {m = $2} END {printf "peak RSS (VmHWM): %.1f MiB (highest 10 s sample %.1f MiB)\n", k / 1024, m / 1024}' "$dir/rss.tsv"
