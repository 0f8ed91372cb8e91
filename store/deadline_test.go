package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// TestServerStopsQueryAtDeadline: a query slower than its context deadline
// is stopped by the server itself (code 159, max_execution_time from the
// deadline), not only abandoned by the client; the 18.16 server ignores a
// client's cancel, so an abandoned query would run on. clickhouse-go used
// to replace mlwatch's max_execution_time with the deadline plus 5 s.
func TestServerStopsQueryAtDeadline(t *testing.T) {
	e := storetest.ServerEngine(t)
	ctx := context.Background()
	db := store.MustIdent(e.Database)
	for _, q := range []string{
		"CREATE TABLE " + db + ".t (x UInt64) ENGINE = MergeTree ORDER BY x",
		"INSERT INTO " + db + ".t SELECT number FROM numbers(20000)",
		// 1 ms a row in blocks of 100: ~20 s to read.
		"CREATE VIEW " + db + ".slow AS SELECT * FROM " + db + ".t WHERE sleepEachRow(0.001) = 0 SETTINGS max_block_size = 100",
	} {
		if err := e.DB.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := e.DB.Query(qctx, "SELECT count() FROM "+db+".slow")
	took := time.Since(start)
	var se *store.Error
	if !errors.As(err, &se) || se.Code != 159 {
		t.Fatalf("after %s: error %v, want the server's own timeout (code 159): the server must stop the query at the deadline", took, err)
	}
	if !errors.Is(err, store.ErrTimeout) {
		t.Errorf("error %v is not ErrTimeout", err)
	}
	if took > 3500*time.Millisecond {
		t.Errorf("the query took %s; its deadline was 3s", took)
	}
	// The pooled connection is fine afterwards.
	if _, err := e.DB.Query(ctx, "SELECT 1"); err != nil {
		t.Errorf("next query: %v", err)
	}
}
