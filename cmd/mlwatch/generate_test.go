package main

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/mlwatch/mlwatch/store/storetest"
)

// generate reports the rows it added, not what the range already held:
// the same command run twice reports the same count both times.
func TestGenerateReportsAddedRows(t *testing.T) {
	e := storetest.ServerEngine(t)
	env := []string{"MLWATCH_CLICKHOUSE_ADDR=" + storetest.ServerAddr(), "MLWATCH_CLICKHOUSE_DATABASE=" + e.Database}
	cfg := "../../configs/example.yaml"
	mlwatchCmd(t, env, "schema", "apply", "--config", cfg, "--predictions")
	re := regexp.MustCompile(`generated (\d+) rows for model fraud over 60 minutes`)
	var counts []int
	for i := 0; i < 2; i++ {
		out := mlwatchCmd(t, env, "generate", "--config", cfg, "--from", "2026-11-16T12:00:00Z", "--to", "+1h", "--rate", "100", "--seed", "3")
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no row count in:\n%s", out)
		}
		n, _ := strconv.Atoi(m[1])
		counts = append(counts, n)
	}
	if counts[0] < 10000 || counts[1] != counts[0] {
		t.Errorf("generated %d then %d rows; want the same count, over 10,000 (100 requests a minute, two rows each, for an hour)", counts[0], counts[1])
	}
}
