package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/store/storetest"
)

const rollupConfig = `
models:
  - name: fraud
    table: predictions
    slices: [country]
    rollup: {table: predictions_1m}
    owners: {product: team, infra: team}
detectors:
  - {name: block, kind: block_rate, model: fraud, source: rollup, window: 1h, baseline: {mode: previous}}
  - {name: block-raw, kind: block_rate, model: fraud, window: 1h, baseline: {mode: previous}}
receivers:
  - name: team
    webhook: {url: "http://127.0.0.1:9999/hook"}
`

// TestRollupBackfill: eval refuses a rollup that does not exist, naming
// the command; `schema apply --rollups --backfill` rolls up the rows
// already there, once, and the rollup detector then finds what the raw one
// finds.
func TestRollupBackfill(t *testing.T) {
	e := storetest.ServerEngine(t)
	env := []string{"MLWATCH_CLICKHOUSE_ADDR=" + storetest.ServerAddr(), "MLWATCH_CLICKHOUSE_DATABASE=" + e.Database}
	cfg := filepath.Join(t.TempDir(), "rollup.yaml")
	if err := os.WriteFile(cfg, []byte(rollupConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Hour)
	mlwatchCmd(t, env, "schema", "apply", "--config", cfg, "--predictions")
	mlwatchCmd(t, env, "generate", "--config", cfg, "--from", at.Add(-3*time.Hour).Format(time.RFC3339), "--to", at.Format(time.RFC3339),
		"--rate", "300", "--incident", "slice_block:+2h:+3h:FR")

	out, code := runMlwatch(t, env, "eval", "--config", cfg, "--at", at.Format(time.RFC3339))
	if code != 1 || !strings.Contains(out, "read rollup "+e.Database+".predictions_1m, which does not exist (mlwatch schema apply --rollups --backfill") {
		t.Fatalf("eval without the rollup: exit %d\n%s", code, out)
	}
	out = mlwatchCmd(t, env, "schema", "apply", "--config", cfg, "--rollups", "--backfill")
	if !strings.Contains(out, "backfilled from") {
		t.Fatalf("backfill: %s", out)
	}
	if out, code := runMlwatch(t, env, "schema", "apply", "--config", cfg, "--rollups", "--backfill"); code != 1 || !strings.Contains(out, "backfill runs once") {
		t.Fatalf("a second backfill must be refused: exit %d\n%s", code, out)
	}
	out = mlwatchCmd(t, env, "eval", "--config", cfg, "--at", at.Format(time.RFC3339), "--format", "json")
	var rollupFR, rawFR bool
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"slice":{"country":"FR"}`) && strings.Contains(line, `"metric":"block_rate"`) {
			rollupFR = rollupFR || strings.Contains(line, `"detector":"block"`)
			rawFR = rawFR || strings.Contains(line, `"detector":"block-raw"`)
		}
	}
	if !rollupFR || !rawFR {
		t.Fatalf("both detectors must find FR (rollup %v, raw %v):\n%s", rollupFR, rawFR, out)
	}
}
