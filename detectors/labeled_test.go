package detectors_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// labeledConfig parses a config whose one model, fraud, logs to
// database.predictions with its ground truth in the table labels (30 days
// to mature), sliced by slices; modelYAML adds lines to the model (indented
// as its keys), moreYAML top-level blocks (detectors). One webhook
// receiver owns everything.
func labeledConfig(t *testing.T, name, database, labels, slices, modelYAML, moreYAML string) *configs.Config {
	t.Helper()
	text := fmt.Sprintf(`
models:
  - name: fraud
    table: %s.predictions
    slices: [%s]
    labels: {table: %s, maturity: 30d}
    owners: {product: team, infra: team}
%s%s
receivers:
  - name: team
    webhook: {url: "http://127.0.0.1:9999/hook"}
`, database, slices, labels, modelYAML, moreYAML)
	cfg, err := configs.Parse(name, []byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// applyLabeled creates the prediction table and the labels tables named.
func applyLabeled(t *testing.T, e storetest.Engine, labels ...string) {
	t.Helper()
	defs := []store.TableDef{store.PredictionsDef("predictions")}
	for _, l := range labels {
		defs = append(defs, store.LabelsDef(l, "request_id", "label", "labeled_at"))
	}
	if err := store.Apply(context.Background(), e.DB, e.Database, defs); err != nil {
		t.Fatal(err)
	}
}

// queryCounter counts the test's queries that read its database and
// contain every one of the marks: one pushed-down aggregation per run.
type queryCounter struct {
	mu sync.Mutex
	n  int
}

func countQueries(t *testing.T, e storetest.Engine, marks ...string) *queryCounter {
	c := &queryCounter{}
	storetest.Listen(t, func(ev store.QueryEvent) {
		if !strings.Contains(ev.SQL, e.Database+".") && !strings.Contains(ev.SQL, "`"+e.Database+"`") {
			return
		}
		for _, m := range marks {
			if !strings.Contains(ev.SQL, m) {
				return
			}
		}
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	})
	return c
}

// take returns the count since the last take and starts again.
func (c *queryCounter) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = 0
	return n
}
