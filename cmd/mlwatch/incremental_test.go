package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// TestEvalIncremental: with global.incremental on, `schema apply` creates
// the partials tables and `eval` fills them and prints the same alerts as
// the raw queries do.
func TestEvalIncremental(t *testing.T) {
	e := storetest.ServerEngine(t)
	env := []string{"MLWATCH_CLICKHOUSE_ADDR=" + storetest.ServerAddr(), "MLWATCH_CLICKHOUSE_DATABASE=" + e.Database}
	raw := "../../configs/example.yaml"
	text, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	inc := filepath.Join(t.TempDir(), "incremental.yaml")
	on := strings.Replace(string(text), "\nglobal:\n", "\nglobal:\n  incremental: {enabled: true}\n", 1)
	if on == string(text) {
		t.Fatal("example.yaml has no global block to extend")
	}
	if err := os.WriteFile(inc, []byte(on), 0o600); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	from := at.Add(-8 * 24 * time.Hour)
	mlwatchCmd(t, env, "schema", "apply", "--config", inc, "--predictions")
	mlwatchCmd(t, env, "generate", "--config", raw, "--from", from.Format(time.RFC3339), "--to", at.Add(time.Hour).Format(time.RFC3339),
		"--rate", "20", "--seed", "5", "--incident", "slice_block:+7d22h:+8d1h:FR", "--incident", "outage:+7d23h30m:+8d1h")
	args := []string{"eval", "--at", at.Format(time.RFC3339), "--format", "json", "--config"}
	want := mlwatchCmd(t, env, append(args, raw)...)
	got := mlwatchCmd(t, env, append(args, inc)...)
	if got != want {
		t.Errorf("eval with global.incremental differs from raw:\nincremental:\n%s\nraw:\n%s", got, want)
	}
	if !strings.Contains(want, `"FR"`) {
		t.Errorf("the FR block was not found:\n%s", want)
	}
	res, err := e.DB.Query(context.Background(), "SELECT count(), uniqExact(detector) FROM "+store.Table{Database: e.Database, Name: "mlwatch_partials_fills"}.Quoted())
	if err != nil {
		t.Fatal(err)
	}
	// fraud-block-rate, -drift, fraud-volume and fraud-canaries.
	if n, dets := store.Int(res.Rows[0][0]), store.Int(res.Rows[0][1]); n == 0 || dets != 4 {
		t.Errorf("%d fills by %d detectors, want the 4 incremental ones", n, dets)
	}
}
