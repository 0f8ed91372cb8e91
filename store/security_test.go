package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// TestHostileIdentifiersAndValues: on both engines, every hostile name of
// the committed fuzz corpus works as a table and a column name and comes
// back as itself; every hostile value is bound, stored and read back
// byte for byte; and a canary table survives all of it.
func TestHostileIdentifiersAndValues(t *testing.T) {
	names := append(seedCorpus(t, "FuzzQuoteIdent"), hostileNames...)
	values := append(seedCorpus(t, "FuzzQuoteString"), hostileValues...)
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			ctx := context.Background()
			canary := store.Table{Database: eng.Database, Name: "canary"}
			if err := eng.DB.Exec(ctx, "CREATE TABLE "+canary.Quoted()+" (x UInt8) ENGINE = MergeTree ORDER BY x"); err != nil {
				t.Fatal(err)
			}
			for i, name := range names {
				q, err := store.QuoteIdent(name)
				if err != nil {
					t.Fatalf("seed %q is not a valid identifier: %v", name, err)
				}
				res, err := eng.DB.Query(ctx, "SELECT 1 AS "+q)
				if err != nil {
					t.Fatalf("SELECT 1 AS %s: %v", q, err)
				}
				if got := res.Columns[0].Name; got != name {
					t.Errorf("column %s reads back as %q, want %q", q, got, name)
				}
				tbl := store.Table{Database: eng.Database, Name: fmt.Sprintf("%s_%d", name, i)}
				if len(tbl.Name) > 200 {
					continue // file-name limits of the engines, not quoting
				}
				if err := eng.DB.Exec(ctx, "CREATE TABLE "+tbl.Quoted()+" ("+q+" String) ENGINE = MergeTree ORDER BY tuple()"); err != nil {
					t.Fatalf("create table %s: %v", tbl.Quoted(), err)
				}
				if err := eng.DB.Exec(ctx, "INSERT INTO "+tbl.Quoted()+" ("+q+") SELECT ?", name); err != nil {
					t.Fatalf("insert into %s: %v", tbl.Quoted(), err)
				}
				res, err = eng.DB.Query(ctx, "SELECT "+q+" FROM "+tbl.Quoted()+" WHERE "+q+" = ?", name)
				if err != nil || len(res.Rows) != 1 || store.Str(res.Rows[0][0]) != name {
					t.Errorf("%s.%s: %v %v", tbl.Quoted(), q, res, err)
				}
				res, err = eng.DB.Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND name = ?", eng.Database, tbl.Name)
				if err != nil || len(res.Rows) != 1 {
					t.Errorf("table %q not found by its name: %v %v", tbl.Name, res, err)
				}
			}
			for _, v := range values {
				res, err := eng.DB.Query(ctx, "SELECT ? AS v, length(?) AS n", v, v)
				if err != nil {
					t.Fatalf("SELECT %q: %v", v, err)
				}
				if got := store.Str(res.Rows[0][0]); got != v || store.Int(res.Rows[0][1]) != int64(len(v)) {
					t.Errorf("value %q reads back as %q (%d bytes)", v, got, store.Int(res.Rows[0][1]))
				}
			}
			res, err := eng.DB.Query(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'canary'", eng.Database)
			if err != nil || store.Int(res.Rows[0][0]) != 1 {
				t.Fatalf("the canary table is gone: %v %v", res, err)
			}
		})
	}
}
