package detectors_test

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

// pushedDown are the kinds whose query aggregates at the level that
// reads the table, so that each shard of a Distributed table ships
// partial aggregates. feature_health, shadow and performance still read
// the table in a per-row (or per-request) subquery: their shards ship
// rows (docs/scaling.md).
var pushedDown = map[string]bool{
	configs.KindBlockRate: true, configs.KindVolume: true, configs.KindExpectation: true,
	configs.KindFreshness: true, configs.KindStaleness: true,
}

// TestClusterMatchesSingleNode runs the example detectors against a
// Distributed table over the two-shard test cluster and against one
// node's MergeTree table holding the same rows: the findings and every
// evaluated figure must agree, and each shard must have returned partial
// aggregates, not its rows, for the kinds that aggregate where the data is.
func TestClusterMatchesSingleNode(t *testing.T) {
	c := storetest.NewCluster(t)
	ctx := context.Background()
	node := c.Nodes[0]
	if err := store.Apply(ctx, node, c.Database, []store.TableDef{store.PredictionsDef("single")}); err != nil {
		t.Fatal(err)
	}
	dist := store.PredictionsDef("predictions")
	dist.Engine = fmt.Sprintf("Distributed(%s, %s, predictions_local, cityHash64(request_id))", store.MustIdent(c.Name), store.MustIdent(c.Database))
	for _, n := range c.Nodes {
		if err := store.Apply(ctx, n, c.Database, []store.TableDef{store.PredictionsDef("predictions_local"), dist}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := exampleConfig(t, c.Database, "")
	single := *cfg
	single.Models = append([]configs.Model(nil), cfg.Models...)
	single.Models[0].Table = c.Database + ".single"
	slice, err := traffic.ParseIncident("slice_block:+14h:+15h:FR", day14)
	if err != nil {
		t.Fatal(err)
	}
	// Lean: the evaluated hour and the one before it on the incident day
	// and the seven days before (the seasonal baselines).
	start := time.Now()
	for d := 7; d >= 0; d-- {
		from := day14.Add(time.Duration(13-24*d) * time.Hour)
		if _, err := traffic.Generate(ctx, node, traffic.Options{Model: &single.Models[0], From: from, To: from.Add(2 * time.Hour),
			Rate: genRate, Seed: uint64(21 + d), Incidents: []traffic.Incident{slice}, Concurrency: 2}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("generated in %s", time.Since(start).Round(time.Millisecond))
	// Both rows of a request on one shard, as the Distributed table's
	// sharding key puts them (shard i takes hash % 2 = i).
	from := store.Table{Database: c.Database, Name: "single"}.Quoted()
	for i, n := range c.Nodes {
		src := from
		if i > 0 {
			src = fmt.Sprintf("remote('%s', %s, single)", c.Addrs[0], store.MustIdent(c.Database))
		}
		ins := fmt.Sprintf("INSERT INTO %s SELECT * FROM %s WHERE cityHash64(request_id) %% %d = %d",
			store.Table{Database: c.Database, Name: "predictions_local"}.Quoted(), src, len(c.Nodes), i)
		if err := n.Exec(ctx, ins); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	ids := map[string]string{} // query id -> kind
	var current string
	storetest.Listen(t, func(ev store.QueryEvent) {
		if strings.Contains(ev.SQL, "`"+c.Database+"`.`predictions`") {
			mu.Lock()
			ids[ev.ID] = current
			mu.Unlock()
		}
	})
	at := day14.Add(15 * time.Hour)
	start = time.Now()
	defer func() { t.Logf("evaluated in %s", time.Since(start).Round(time.Millisecond)) }()
	sawFR := false
	for i := range cfg.Detectors {
		dc := &cfg.Detectors[i]
		one, err := detectors.New(&single, dc)
		if err != nil {
			t.Fatal(err)
		}
		two, err := detectors.New(cfg, dc)
		if err != nil {
			t.Fatal(err)
		}
		want, err := one.Evaluate(ctx, node, at)
		if err != nil {
			t.Fatalf("%s single node: %v", dc.Name, err)
		}
		mu.Lock()
		current = dc.Kind
		mu.Unlock()
		got, err := two.Evaluate(ctx, node, at)
		if err != nil {
			t.Fatalf("%s distributed: %v\n%s", dc.Name, err, got.Query)
		}
		if a, b := findingKeys(want), findingKeys(got); a != b {
			t.Errorf("%s: findings differ\nsingle node:\n%s\ndistributed:\n%s", dc.Name, a, b)
		}
		sawFR = sawFR || strings.Contains(findingKeys(got), `block_rate {"country":"FR"}`)
		if len(want.Evaluations) != len(got.Evaluations) {
			t.Errorf("%s: %d evaluations on one node, %d distributed", dc.Name, len(want.Evaluations), len(got.Evaluations))
			continue
		}
		for j, w := range want.Evaluations {
			g := got.Evaluations[j]
			if w.Metric != g.Metric || detectors.SliceKey(w.Slice) != detectors.SliceKey(g.Slice) || w.Feature != g.Feature ||
				w.NCurrent != g.NCurrent || w.NBaseline != g.NBaseline || !near(w.Value, g.Value) || !near(w.Baseline, g.Baseline) || w.Firing != g.Firing {
				t.Errorf("%s: evaluation %d differs:\nsingle node %+v\ndistributed %+v", dc.Name, j, w, g)
			}
		}
	}
	if !sawFR {
		t.Errorf("the FR block incident was not found on the cluster")
	}

	// What each shard returned for each pushed-down query.
	type shipped struct{ read, result uint64 }
	perKind := map[string][]shipped{}
	for i, n := range c.Nodes {
		if err := n.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
			t.Fatal(err)
		}
		var list []string
		mu.Lock()
		for id := range ids {
			list = append(list, id)
		}
		mu.Unlock()
		res, err := n.Query(ctx, "SELECT initial_query_id AS id, read_rows, result_rows FROM system.query_log WHERE type = 2 AND is_initial_query = 0 AND has(?, initial_query_id)", list)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, r := range res.Rows {
			id := store.Str(r[0])
			seen[id] = true
			perKind[ids[id]] = append(perKind[ids[id]], shipped{uint64(store.Int(r[1])), uint64(store.Int(r[2]))})
		}
		for id, kind := range ids {
			if !seen[id] {
				t.Errorf("shard %d: no secondary query for the %s query %s in system.query_log", i+1, kind, id)
			}
		}
	}
	kinds := make([]string, 0, len(perKind))
	for k := range perKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		for _, s := range perKind[k] {
			t.Logf("%s: a shard read %d rows, returned %d", k, s.read, s.result)
			// A shard shipping its rows returns about what it read (the
			// windows' rows); partial aggregates are one row per slice
			// value, window (and score bin): far fewer, and on real
			// volumes a vanishing share (docs/scaling.md).
			if pushedDown[k] && s.read > 0 && s.result*3 > s.read {
				t.Errorf("%s: a shard returned %d rows of %d read: rows, not aggregates", k, s.result, s.read)
			}
		}
	}
}

func findingKeys(r *detectors.Result) string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, fmt.Sprintf("%s %s %s %s %s %.9g", f.Class, f.Metric, detectors.SliceKey(f.Slice), f.Feature, f.Severity, f.Value))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// near compares figures summed in another order (floats) or NaN.
func near(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}
