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
clickhouse: {database: %DB%}
models:
  - name: keyed
    table: keyed
    model_value: fraud
    owners: {product: p, infra: p}
  - name: random
    table: random
    model_value: fraud
    owners: {product: p, infra: p}
  - name: local
    table: keyed_local
    owners: {product: p, infra: p}
detectors:
  - {name: s1, kind: shadow, model: keyed}
receivers:
  - name: p
    webhook: {url: "http://127.0.0.1:1/"}
`

// TestSplitPairsOnCluster: on the two-shard test cluster, a Distributed
// table whose rows were placed by request id has no split pairs; one
// where a quarter of the requests have their production row on shard 1
// and their shadow row on shard 2 reports exactly those, with a warning
// that names the sharding key; a local table is not checked.
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
	// before at. keyed: both rows of a request on shard number % 2.
	// random: the same, except requests with number % 4 = 3, whose
	// production row is on shard 1 and shadow row on shard 2.
	insert := func(node int, table, where string) {
		t.Helper()
		q := fmt.Sprintf("INSERT INTO %s (ts, request_id, model, model_version, role, score, decision, country, merchant_category, amount_usd, feature_names, feature_values) "+
			"SELECT toDateTime(%d), concat('r', toString(intDiv(number, 2))), 'fraud', 'v1', if(number %% 2 = 0, 'production', 'shadow'), 0.5, 0, 'FR', 'x', 1, [], [] "+
			"FROM (SELECT number FROM system.numbers LIMIT 800) WHERE %s", store.Table{Database: c.Database, Name: table + "_local"}.Quoted(), at.Add(-10*time.Minute).Unix(), where)
		if err := c.Nodes[node].Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	insert(0, "keyed", "intDiv(number, 2) % 2 = 0")
	insert(1, "keyed", "intDiv(number, 2) % 2 = 1")
	insert(0, "random", "(intDiv(number, 2) % 4 != 3 AND intDiv(number, 2) % 2 = 0) OR (intDiv(number, 2) % 4 = 3 AND number % 2 = 0)")
	insert(1, "random", "(intDiv(number, 2) % 4 != 3 AND intDiv(number, 2) % 2 = 1) OR (intDiv(number, 2) % 4 = 3 AND number % 2 = 1)")

	text := strings.ReplaceAll(splitYAML, "%DB%", c.Database)
	cfg, err := configs.Parse("split.yaml", []byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	got, err := CheckSplitPairs(ctx, c.Nodes[0], cfg, at)
	if err != nil {
		t.Fatal(err)
	}
	want := []SplitPairs{
		{Model: "keyed", Table: c.Database + ".keyed", Shadow: 400, Split: 0},
		{Model: "random", Table: c.Database + ".random", Shadow: 400, Split: 100},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("split pairs %+v, want %+v (the local table is not checked)", got, want)
	}
	w := SplitPairWarnings(ctx, c.Nodes[1], cfg, at)
	if len(w) != 1 || !strings.Contains(w[0], "model random: 100 of 400 shadow requests") || !strings.Contains(w[0], "cityHash64(request_id)") {
		t.Fatalf("warnings %q, want one for model random naming the sharding key", w)
	}
}
