package detectors

import (
	"fmt"
	"testing"

	"github.com/mlwatch/mlwatch/store"
)

// TestMergeShards: the shards' rows are summed per (sc, sv, w), NULL is
// no value, and each slice column keeps its top K values by rank summed
// over windows and shards (ties by value), as ranked does in SQL; a value
// that leads on one shard but not overall is cut.
func TestMergeShards(t *testing.T) {
	cols := []store.Column{{Name: "sc", Type: "String"}, {Name: "sv", Type: "String"}, {Name: "w", Type: "UInt8"},
		{Name: "n", Type: "UInt64"}, {Name: "s", Type: "Nullable(Float64)"}, {Name: "rows", Type: "UInt64"}}
	row := func(sc, sv string, w, n uint64, s any, rows uint64) []any { return []any{sc, sv, w, n, s, rows} }
	a := &store.Result{Columns: cols, Rows: [][]any{
		row("", "", 0, 10, 1.5, 20), row("", "", 1, 5, nil, 8),
		row("country", "FR", 0, 4, 0.5, 9), row("country", "DE", 0, 3, nil, 7), row("country", "ES", 0, 3, 0.25, 50),
	}, Stats: store.Stats{RowsRead: 100}}
	b := &store.Result{Columns: cols, Rows: [][]any{
		row("", "", 0, 1, 2.0, 3), row("", "", 1, 2, 0.5, 4),
		row("country", "FR", 1, 6, nil, 50), row("country", "DE", 0, 1, 1.0, 52), row("country", "IT", 0, 1, nil, 1),
	}, Stats: store.Stats{RowsRead: 50}}
	got, err := mergeShards([]*store.Result{a, b}, []string{"n", "s", "rows"}, "rows", 2)
	if err != nil {
		t.Fatal(err)
	}
	// Ranks: DE 59 and FR 59 (tie: DE first), ES 50 and IT 1 are cut.
	want := fmt.Sprint([][]any{
		row("", "", 0, 11, 3.5, 23), row("", "", 1, 7, 0.5, 12),
		row("country", "DE", 0, 4, 1.0, 59), row("country", "FR", 0, 4, 0.5, 9), row("country", "FR", 1, 6, nil, 50),
	})
	if fmt.Sprint(got.Rows) != want {
		t.Errorf("merged\n%v\nwant\n%v", got.Rows, want)
	}
	if got.Stats.RowsRead != 150 || got.Stats.ResultRows != 5 {
		t.Errorf("stats %+v, want 150 rows read, 5 returned", got.Stats)
	}
	bad := &store.Result{Columns: cols[:3]}
	if _, err := mergeShards([]*store.Result{a, bad}, []string{"n", "s", "rows"}, "rows", 2); err == nil {
		t.Error("shards with different columns merged without error")
	}
}
