package monitor

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

const splitYAML = `
clickhouse: {addr: "%ADDR%", database: %DB%}
models:
  - name: keyed
    table: "%DB%.keyed"
    cluster: %CLUSTER%
    local_table: keyed_local
    model_value: fraud
    owners: {product: p, infra: p}
  - name: random
    table: "%DB%.random"
    cluster: %CLUSTER%
    local_table: random_local
    model_value: fraud
    owners: {product: p, infra: p}
  - name: unsharded
    table: "%DB%.random"
    model_value: fraud
    owners: {product: p, infra: p}
  - name: local
    table: keyed_local
    owners: {product: p, infra: p}
detectors:
  - {name: s1, kind: shadow, model: keyed, window: 1h, baseline: {mode: previous}, min_samples: 10}
  - {name: s2, kind: shadow, model: random, window: 1h, baseline: {mode: previous}, min_samples: 10}
  - {name: s3, kind: shadow, model: unsharded}
receivers:
  - name: p
    webhook: {url: "http://127.0.0.1:1/"}
`

// TestSplitPairsOnCluster: on the two-shard test cluster, a Distributed
// table whose rows were placed by request id has no split pairs; one
// where a quarter of the requests have their production row on shard 1
// and their shadow row on shard 2 reports exactly those, with a warning
// that names the sharding key; a local table is not checked. The
// shadow detectors of a model on a cluster with split pairs pair on the
// initiator (Monitor.PairOnInitiator), across reloads; the others
// evaluate on the shards. A local table missing on the shards is
// reported by CheckColumns.
func TestSplitPairsOnCluster(t *testing.T) {
	c := storetest.NewCluster(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, name := range []string{"keyed", "random"} {
		dist := store.PredictionsDef(name)
		dist.Engine = fmt.Sprintf("Distributed(%s, %s, %s_local, cityHash64(request_id))", store.MustIdent(c.Name), store.MustIdent(c.Database), name)
		for _, n := range c.Nodes {
			if err := store.Apply(ctx, n, c.Database, []store.TableDef{store.PredictionsDef(name + "_local"), dist}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// 400 requests, each with a production and a shadow row, ten minutes
	// before at, and 400 others an hour earlier (the baseline of s1 and
	// s2). keyed: both rows of a request on shard number % 2. random: the
	// same, except requests with number % 4 = 3, whose production row is
	// on shard 1 and shadow row on shard 2.
	insert := func(node int, table, where string) {
		t.Helper()
		for _, h := range []struct {
			prefix string
			ts     time.Time
		}{{"r", at.Add(-10 * time.Minute)}, {"b", at.Add(-70 * time.Minute)}} {
			q := fmt.Sprintf("INSERT INTO %s (ts, request_id, model, model_version, role, score, decision, country, merchant_category, amount_usd, feature_names, feature_values) "+
				"SELECT toDateTime(%d), concat('%s', toString(intDiv(number, 2))), 'fraud', 'v1', if(number %% 2 = 0, 'production', 'shadow'), 0.5, 0, 'FR', 'x', 1, [], [] "+
				"FROM (SELECT number FROM system.numbers LIMIT 800) WHERE %s", store.Table{Database: c.Database, Name: table + "_local"}.Quoted(), h.ts.Unix(), h.prefix, where)
			if err := c.Nodes[node].Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	insert(0, "keyed", "intDiv(number, 2) % 2 = 0")
	insert(1, "keyed", "intDiv(number, 2) % 2 = 1")
	insert(0, "random", "(intDiv(number, 2) % 4 != 3 AND intDiv(number, 2) % 2 = 0) OR (intDiv(number, 2) % 4 = 3 AND number % 2 = 0)")
	insert(1, "random", "(intDiv(number, 2) % 4 != 3 AND intDiv(number, 2) % 2 = 1) OR (intDiv(number, 2) % 4 = 3 AND number % 2 = 1)")

	text := strings.NewReplacer("%DB%", c.Database, "%ADDR%", c.Addrs[0], "%CLUSTER%", c.Name).Replace(splitYAML)
	cfg, err := configs.Parse("split.yaml", []byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckColumns(ctx, c.Nodes[0], cfg); err != nil {
		t.Fatalf("columns and local tables: %v", err)
	}
	bad, err := configs.Parse("split.yaml", []byte(strings.Replace(text, "local_table: random_local", "local_table: rnd_local", 1)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	err = CheckColumns(ctx, c.Nodes[1], bad)
	if want := fmt.Sprintf("model random: local_table %s.rnd_local does not exist on shard 1 (%s), 2 (%s) of cluster %s", c.Database, c.Addrs[0], c.Addrs[1], c.Name); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("a missing local table: %v, want %q", err, want)
	}
	// A performance detector joins the labels on each shard: the labels
	// table must be there too.
	labelled := strings.NewReplacer("    local_table: keyed_local\n", "    local_table: keyed_local\n    labels: {table: lbl}\n",
		"receivers:\n", "  - {name: perf, kind: performance, model: keyed}\nreceivers:\n").Replace(text)
	bad, err = configs.Parse("split.yaml", []byte(labelled), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	err = CheckColumns(ctx, c.Nodes[1], bad)
	if want := fmt.Sprintf("model keyed: labels.table %s.lbl does not exist on shard 1 (%s), 2 (%s) of cluster %s", c.Database, c.Addrs[0], c.Addrs[1], c.Name); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("a labels table missing on the shards: %v, want %q", err, want)
	}
	got, err := CheckSplitPairs(ctx, c.Nodes[0], cfg, at)
	if err != nil {
		t.Fatal(err)
	}
	want := []SplitPairs{
		{Model: "keyed", Table: c.Database + ".keyed", Shadow: 400, Split: 0},
		{Model: "random", Table: c.Database + ".random", Shadow: 400, Split: 100},
		{Model: "unsharded", Table: c.Database + ".random", Shadow: 400, Split: 100},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("split pairs %+v, want %+v (the local table is not checked)", got, want)
	}
	w, initiator := SplitPairWarnings(ctx, c.Nodes[1], cfg, at)
	if len(w) != 2 || !strings.Contains(w[0], "model random: 100 of 400 shadow requests") || !strings.Contains(w[0], "cityHash64(request_id)") ||
		!strings.Contains(w[0], "not on the shards of cluster "+c.Name) || !strings.Contains(w[1], "model unsharded: 100 of 400") {
		t.Fatalf("warnings %q, want one for model random naming the sharding key and the fallback, one for model unsharded", w)
	}
	if fmt.Sprint(initiator) != "map[random:true]" {
		t.Fatalf("models pairing on the initiator: %v, want random only (unsharded has no cluster)", initiator)
	}
	mon, err := New(Options{Config: cfg, Store: c.Nodes[0]})
	if err != nil {
		t.Fatal(err)
	}
	onShards := func() string {
		var out []string
		for _, name := range mon.Names() {
			d, _ := mon.detector(name)
			out = append(out, fmt.Sprintf("%s:%v", name, d.OnShards()))
		}
		return strings.Join(out, " ")
	}
	if got := onShards(); got != "s1:true s2:true s3:false" {
		t.Fatalf("on the shards before the check: %s", got)
	}
	mon.PairOnInitiator(initiator)
	if got := onShards(); got != "s1:true s2:false s3:false" {
		t.Fatalf("on the shards after the check: %s, want s2 (split pairs) on the initiator", got)
	}
	if err := mon.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if got := onShards(); got != "s1:true s2:false s3:false" {
		t.Fatalf("on the shards after a reload: %s, want s2 still on the initiator", got)
	}
	// Why: on the shards a split request is a lone production row on one
	// and a lone shadow row on the other. Pairs counted (n of the
	// disagreement figures) on the shards and on the initiator: the same
	// for s1, 300 of 400 for s2.
	at2 := at.Add(5 * time.Minute)
	for _, tc := range []struct {
		name           string
		shards, single uint64
	}{{"s1", 400, 400}, {"s2", 300, 400}} {
		d, _ := mon.detector(tc.name)
		pairs := func(initiator bool) uint64 {
			d.PairOnInitiator(initiator)
			res, err := d.Evaluate(ctx, c.Nodes[0], at2)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range res.Evaluations {
				if e.Metric == "disagreement_production_blocks" {
					return e.NCurrent
				}
			}
			t.Fatalf("%s: no disagreement figure: %+v", tc.name, res.Evaluations)
			return 0
		}
		if s, i := pairs(false), pairs(true); s != tc.shards || i != tc.single {
			t.Errorf("%s: %d pairs counted on the shards, %d on the initiator; want %d and %d", tc.name, s, i, tc.shards, tc.single)
		}
	}
}
