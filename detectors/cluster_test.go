package detectors_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
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
// partial aggregates. shadow and performance read the table in a
// per-request (or joined) subquery: through the Distributed table their
// shards ship rows; with the model's cluster they run on each shard
// (kindsOnShards, docs/scaling.md).
var pushedDown = map[string]bool{
	configs.KindBlockRate: true, configs.KindVolume: true, configs.KindExpectation: true, configs.KindFeatureHealth: true,
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
	// The example's performance detector reads fraud_labels: the labels
	// of the generated requests, on the single node (kindsOnShards puts
	// each shard's share in a local labels table).
	labels := store.LabelsDef("fraud_labels", "request_id", "label", "labeled_at")
	if err := store.Apply(ctx, node, c.Database, []store.TableDef{store.PredictionsDef("single"), labels}); err != nil {
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
	rate := genRate
	if r, err := strconv.ParseFloat(os.Getenv("MLWATCH_CLUSTER_BENCH_RATE"), 64); err == nil && r > 0 {
		rate = r // make bench-cluster: more rows, same checks
	}
	for d := 7; d >= 0; d-- {
		from := day14.Add(time.Duration(13-24*d) * time.Hour)
		if _, err := traffic.Generate(ctx, node, traffic.Options{Model: &single.Models[0], From: from, To: from.Add(2 * time.Hour),
			Rate: rate, Seed: uint64(21 + d), Incidents: []traffic.Incident{slice}, Concurrency: 2}); err != nil {
			t.Fatal(err)
		}
		if err := traffic.GenerateLabels(ctx, node, traffic.LabelOptions{Model: &single.Models[0], From: from, To: from.Add(2 * time.Hour),
			Incidents: []traffic.Incident{slice}}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("generated in %s", time.Since(start).Round(time.Millisecond))
	// Both rows of a request, and its label, on one shard, as the
	// Distributed tables' sharding key puts them (shard i takes hash % 2
	// = i); labels_dist reads all labels from any node.
	labelsDist := store.LabelsDef("labels_dist", "request_id", "label", "labeled_at")
	labelsDist.Engine = fmt.Sprintf("Distributed(%s, %s, labels_local, cityHash64(request_id))", store.MustIdent(c.Name), store.MustIdent(c.Database))
	for i, n := range c.Nodes {
		if err := store.Apply(ctx, n, c.Database, []store.TableDef{store.LabelsDef("labels_local", "request_id", "label", "labeled_at"), labelsDist}); err != nil {
			t.Fatal(err)
		}
		for src, dst := range map[string]string{"single": "predictions_local", "fraud_labels": "labels_local"} {
			from := store.Table{Database: c.Database, Name: src}.Quoted()
			if i > 0 {
				from = fmt.Sprintf("remote('%s', %s, %s)", c.Addrs[0], store.MustIdent(c.Database), store.MustIdent(src))
			}
			ins := fmt.Sprintf("INSERT INTO %s SELECT * FROM %s WHERE cityHash64(request_id) %% %d = %d",
				store.Table{Database: c.Database, Name: dst}.Quoted(), from, len(c.Nodes), i)
			if err := n.Exec(ctx, ins); err != nil {
				t.Fatal(err)
			}
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
	var oneNode, twoShards time.Duration
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
		t0 := time.Now()
		want, err := one.Evaluate(ctx, node, at)
		oneNode += time.Since(t0)
		if err != nil {
			t.Fatalf("%s single node: %v", dc.Name, err)
		}
		mu.Lock()
		current = dc.Kind
		mu.Unlock()
		t0 = time.Now()
		got, err := two.Evaluate(ctx, node, at)
		twoShards += time.Since(t0)
		if err != nil {
			t.Fatalf("%s distributed: %v\n%s", dc.Name, err, got.Query)
		}
		sameResults(t, dc.Name, want, got)
		sawFR = sawFR || strings.Contains(findingKeys(got), `block_rate {"country":"FR"}`)
	}
	t.Logf("cluster: cycle (every example detector) %s on one node, %s on the Distributed table over 2 shards", oneNode.Round(time.Millisecond), twoShards.Round(time.Millisecond))
	if !sawFR {
		t.Errorf("the FR block incident was not found on the cluster")
	}

	// What each shard returned for each pushed-down query.
	type shipped struct{ read, result, bytes uint64 }
	perKind := map[string][]shipped{}
	var list []string
	mu.Lock()
	for id := range ids {
		list = append(list, id)
	}
	mu.Unlock()
	for i, n := range c.Nodes {
		// A shard logs its part when it has sent it: the last one may
		// land a moment after the initiator's answer.
		var res *store.Result
		for try := 0; ; try++ {
			if err := n.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
				t.Fatal(err)
			}
			res, err = n.Query(ctx, "SELECT initial_query_id AS id, read_rows, result_rows, result_bytes FROM system.query_log WHERE type = 2 AND is_initial_query = 0 AND has(?, initial_query_id)", list)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rows) >= len(list) || try == 50 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		seen := map[string]bool{}
		for _, r := range res.Rows {
			id := store.Str(r[0])
			seen[id] = true
			perKind[ids[id]] = append(perKind[ids[id]], shipped{uint64(store.Int(r[1])), uint64(store.Int(r[2])), uint64(store.Int(r[3]))})
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
		var read, result, bytes uint64
		for _, s := range perKind[k] {
			read, result, bytes = read+s.read, result+s.result, bytes+s.bytes
			// A shard shipping its rows returns about what it read (the
			// windows' rows); partial aggregates are one row per slice
			// value, window (and score bin): far fewer, and on real
			// volumes a vanishing share (docs/scaling.md).
			if pushedDown[k] && s.read > 0 && s.result*3 > s.read {
				t.Errorf("%s: a shard returned %d rows of %d read: rows, not aggregates", k, s.result, s.read)
			}
		}
		t.Logf("cluster: %-14s shards read %9d rows, returned %7d rows (%5.2f%%), %9d bytes", k, read, result, 100*float64(result)/float64(max(read, 1)), bytes)
	}
	kindsOnShards(t, c, cfg, &single, at)
}

// kindsOnShards: with the model's cluster and local table in the config
// (models[].cluster, models[].local_table), the shadow detectors pair,
// and the performance detector joins the labels (a Distributed table
// over them, as each node names it), on each shard over its own connection and ship partial
// aggregates (as the shards' query_log says), with the single node's
// findings and figures; with PairOnInitiator (split pairs) they read the
// Distributed table again, with the same figures.
func kindsOnShards(t *testing.T, c *storetest.Cluster, cfg, single *configs.Config, at time.Time) {
	ctx := context.Background()
	sharded := *cfg
	sharded.Models = append([]configs.Model(nil), cfg.Models...)
	sharded.Models[0].Cluster, sharded.Models[0].LocalTable = c.Name, "predictions_local"
	shardLabels := *sharded.Models[0].Labels
	shardLabels.Table = "labels_dist"
	sharded.Models[0].Labels = &shardLabels
	var mu sync.Mutex
	var ids []string
	storetest.Listen(t, func(ev store.QueryEvent) {
		if strings.Contains(ev.SQL, "`"+c.Database+"`.`predictions_local`") {
			mu.Lock()
			ids = append(ids, ev.ID)
			mu.Unlock()
		}
	})
	n := 0
	for i := range cfg.Detectors {
		dc := &cfg.Detectors[i]
		if dc.Kind != configs.KindShadow && dc.Kind != configs.KindPerformance {
			continue
		}
		if dc.Kind == configs.KindPerformance {
			// Eight days of traffic, two hours a day: judged without
			// the maturity's delay (the generated labels, future ones
			// included, are all there), on fewer rows than the example
			// asks for.
			lean := *dc
			lean.MinSamples, lean.EvalDelay = 20, 0
			dc = &lean
		}
		n++
		one, err := detectors.New(single, dc)
		if err != nil {
			t.Fatal(err)
		}
		two, err := detectors.New(&sharded, dc)
		if err != nil {
			t.Fatal(err)
		}
		if !two.OnShards() {
			t.Fatalf("%s: a %s detector of a model with a cluster does not evaluate on the shards", dc.Name, dc.Kind)
		}
		t0 := time.Now()
		want, err := one.Evaluate(ctx, c.Nodes[0], at)
		if err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		// Through the other node: the shards come from its system.clusters.
		got, err := two.Evaluate(ctx, c.Nodes[1], at)
		t2 := time.Now()
		if err != nil {
			t.Fatalf("%s on the shards: %v\n%s", dc.Name, err, got.Query)
		}
		sameResults(t, dc.Name+" (on the shards)", want, got)
		if dc.Kind == configs.KindShadow && !strings.Contains(findingKeys(got), `{"country":"FR"}`) {
			t.Errorf("%s on the shards: no finding for FR, where production blocks what the shadow passes:\n%s", dc.Name, findingKeys(got))
		}
		if dc.Kind == configs.KindPerformance && checked(got) == 0 {
			t.Errorf("%s on the shards: no slice checked: the comparison with the single node tests nothing", dc.Name)
		}
		two.PairOnInitiator(true)
		if two.OnShards() {
			t.Fatalf("%s: PairOnInitiator did not stop the evaluation on the shards", dc.Name)
		}
		back, err := two.Evaluate(ctx, c.Nodes[1], at)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("cluster: %s took %s on one node, %s on the shards, %s through the Distributed table", dc.Name,
			t1.Sub(t0).Round(time.Millisecond), t2.Sub(t1).Round(time.Millisecond), time.Since(t2).Round(time.Millisecond))
		if !strings.Contains(back.Query, "`"+c.Database+"`.`predictions`") {
			t.Errorf("%s with PairOnInitiator: the query does not read the Distributed table:\n%s", dc.Name, back.Query)
		}
		sameResults(t, dc.Name+" (paired on the initiator)", want, back)
	}
	if n == 0 {
		t.Fatal("the example config has no shadow or performance detector")
	}
	mu.Lock()
	list := append([]string(nil), ids...)
	mu.Unlock()
	if len(list) != n*len(c.Nodes) {
		t.Fatalf("%d queries on the local table for %d shadow and performance detectors on %d shards", len(list), n, len(c.Nodes))
	}
	for i, node := range c.Nodes {
		if err := node.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
			t.Fatal(err)
		}
		res, err := node.Query(ctx, "SELECT read_rows, result_rows, result_bytes FROM system.query_log WHERE type = 2 AND has(?, query_id)", list)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rows) != n {
			t.Fatalf("shard %d: %d shard queries in system.query_log, want %d", i+1, len(res.Rows), n)
		}
		for _, r := range res.Rows {
			read, result := store.Int(r[0]), store.Int(r[1])
			// One row per request would be about half the rows read (a
			// production and a shadow row each); partial aggregates are
			// one row per slice value and window.
			if read == 0 || result*20 > read {
				t.Errorf("shard %d: a shard query returned %d rows of %d read: rows, not aggregates", i+1, result, read)
			}
			t.Logf("cluster: shadow or performance on the shards: shard %d read %9d rows, returned %7d rows (%5.2f%%), %9d bytes", i+1, read, result, 100*float64(result)/float64(max(read, 1)), store.Int(r[2]))
		}
	}
}

// checked counts the evaluations with a current window of rows.
func checked(r *detectors.Result) int {
	n := 0
	for _, e := range r.Evaluations {
		if e.NCurrent > 0 {
			n++
		}
	}
	return n
}

// sameResults fails the test unless got (distributed) has the findings
// and every evaluated figure of want (single node).
func sameResults(t *testing.T, name string, want, got *detectors.Result) {
	t.Helper()
	if a, b := findingKeys(want), findingKeys(got); a != b {
		t.Errorf("%s: findings differ\nsingle node:\n%s\ndistributed:\n%s", name, a, b)
	}
	if len(want.Evaluations) != len(got.Evaluations) {
		t.Errorf("%s: %d evaluations on one node, %d distributed", name, len(want.Evaluations), len(got.Evaluations))
		return
	}
	for j, w := range want.Evaluations {
		g := got.Evaluations[j]
		if w.Metric != g.Metric || detectors.SliceKey(w.Slice) != detectors.SliceKey(g.Slice) || w.Feature != g.Feature ||
			w.NCurrent != g.NCurrent || w.NBaseline != g.NBaseline || !near(w.Value, g.Value) || !near(w.Baseline, g.Baseline) || w.Firing != g.Firing ||
			!nearTol(w.ShadowValue, g.ShadowValue, 1e-6) || !nearTol(w.PValue, g.PValue, 1e-6) {
			t.Errorf("%s: evaluation %d differs:\nsingle node %+v\ndistributed %+v", name, j, w, g)
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
func near(a, b float64) bool { return nearTol(a, b, 1e-9) }

// nearTol is near with a relative tolerance: a correlation from sums of
// squares summed in another order loses more digits.
func nearTol(a, b, tol float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}
