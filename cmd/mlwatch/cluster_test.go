package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// TestClusterSchema: `schema apply --cluster` puts the prediction table
// and the rollup on both nodes of the test cluster (local tables, views
// over them, Distributed tables over those); rows generated through
// either node are all counted at once (synchronous distributed insert)
// and all rolled up; the rollup detector reading the Distributed rollup
// finds what the raw one finds; a rollup over a Distributed table
// without --cluster is refused; and with models[].cluster the shadow
// detector pairs on each shard (a query of each node's own on the local
// table) and finds the FR incident.
func TestClusterSchema(t *testing.T) {
	c := storetest.NewCluster(t)
	ctx := context.Background()
	cfg := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(cfg, []byte(rollupConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(node int) []string {
		return []string{"MLWATCH_CLICKHOUSE_ADDR=" + c.Addrs[node], "MLWATCH_CLICKHOUSE_DATABASE=" + c.Database}
	}
	out := mlwatchCmd(t, env(0), "schema", "apply", "--config", cfg, "--predictions", "--rollups", "--cluster", c.Name)
	if !strings.Contains(out, "on 2 nodes of cluster "+c.Name) {
		t.Fatalf("schema apply --cluster:\n%s", out)
	}
	if out, code := runMlwatch(t, env(1), "schema", "apply", "--config", cfg, "--rollups"); code != 1 || !strings.Contains(out, "is a Distributed table") {
		t.Fatalf("a rollup over the Distributed table without --cluster must be refused: exit %d\n%s", code, out)
	}

	at := time.Now().UTC().Truncate(time.Hour)
	generated := regexp.MustCompile(`generated (\d+) rows`)
	count := func(node int, table, expr string) int64 {
		t.Helper()
		where := ""
		if strings.Contains(table, "_1m") {
			where = " WHERE slice = ''" // the aggregate; each row counts once more per slice column
		}
		res, err := c.Nodes[node].Query(ctx, "SELECT toInt64("+expr+") FROM "+store.Table{Database: c.Database, Name: table}.Quoted()+where)
		if err != nil {
			t.Fatal(err)
		}
		return store.Int(res.Rows[0][0])
	}
	// Through node 1 the hours with the incident, through node 2 the hour
	// before: each node's generate must see its rows counted at once.
	var total int64
	for i, span := range [][2]time.Duration{{-2 * time.Hour, 0}, {-3 * time.Hour, -2 * time.Hour}} {
		inc := []string{}
		if i == 0 {
			inc = []string{"--incident", "slice_block:+1h:+2h:FR"}
		}
		out := mlwatchCmd(t, env(i), append([]string{"generate", "--config", cfg, "--from", at.Add(span[0]).Format(time.RFC3339),
			"--to", at.Add(span[1]).Format(time.RFC3339), "--rate", "300", "--seed", strconv.Itoa(7 + i)}, inc...)...)
		m := generated.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("generate through node %d:\n%s", i+1, out)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		total += n
		if got := count(i, "predictions", "count()"); got != total {
			t.Errorf("after generate through node %d: %d rows in the Distributed table, generate reported %d in all", i+1, got, total)
		}
	}
	for i := range c.Nodes {
		if n := count(i, "predictions_local", "count()"); n == 0 || n == total {
			t.Errorf("node %d holds %d of %d rows: not sharded", i+1, n, total)
		}
	}
	// Every row is rolled up on the node that holds it, whichever node it
	// was inserted through.
	if got := count(0, "predictions_1m", "countMerge(n)"); got != total {
		t.Errorf("the Distributed rollup counts %d rows, the prediction table holds %d", got, total)
	}
	for i := range c.Nodes {
		if a, b := count(i, "predictions_1m_local", "countMerge(n)"), count(i, "predictions_local", "count()"); a != b {
			t.Errorf("node %d: rollup counts %d rows, local table holds %d", i+1, a, b)
		}
	}
	out = mlwatchCmd(t, env(0), "eval", "--config", cfg, "--at", at.Format(time.RFC3339), "--format", "json")
	var rollupFR, rawFR bool
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"slice":{"country":"FR"}`) && strings.Contains(line, `"metric":"block_rate"`) {
			rollupFR = rollupFR || strings.Contains(line, `"detector":"block"`)
			rawFR = rawFR || strings.Contains(line, `"detector":"block-raw"`)
		}
	}
	if !rollupFR || !rawFR {
		t.Fatalf("both detectors must find FR on the cluster (rollup %v, raw %v):\n%s", rollupFR, rawFR, out)
	}
	shadowOnCluster(t, c, cfg, env(1), at)
}

// shadowOnCluster runs `mlwatch eval` with the model on the cluster
// (models[].cluster, local_table) and a shadow detector.
func shadowOnCluster(t *testing.T, c *storetest.Cluster, path string, env []string, at time.Time) {
	ctx := context.Background()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "    table: predictions\n", "    table: predictions\n    cluster: "+c.Name+"\n    local_table: predictions_local\n", 1)
	text = strings.Replace(text, "detectors:\n", "detectors:\n  - {name: shadow, kind: shadow, model: fraud, window: 1h, baseline: {mode: previous}}\n", 1)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Second)
	out := mlwatchCmd(t, env, "eval", "--config", path, "--at", at.Format(time.RFC3339), "--format", "json")
	found := false
	for _, line := range strings.Split(out, "\n") {
		found = found || strings.Contains(line, `"slice":{"country":"FR"}`) && strings.Contains(line, `"detector":"shadow"`)
	}
	if !found || strings.Contains(out, "split") {
		t.Fatalf("the shadow detector on the shards must find FR, without a split-pair warning:\n%s", out)
	}
	for i, n := range c.Nodes {
		if err := n.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
			t.Fatal(err)
		}
		// The config names the table without its database (the
		// connection's): so does the shard's query.
		res, err := n.Query(ctx, "SELECT count() FROM system.query_log WHERE type = 2 AND is_initial_query AND event_time >= ? "+
			"AND query LIKE '%FROM `predictions_local`%' AND query LIKE '%anyIf(_d, _p)%'", start.Truncate(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if store.Int(res.Rows[0][0]) == 0 {
			t.Errorf("node %d ran no shadow query of its own on its local table", i+1)
		}
	}
}
