package store_test

import (
	"context"
	"errors"
	"strings"
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

// TestQueriesWaitForAFreeConnection: with every pooled connection busy, a
// query waits for one as long as its own deadline allows (clickhouse-go
// alone gave up after its 5 s dial timeout with "acquire conn timeout",
// which failed most detector runs of a busy daemon), and one whose
// deadline passes first fails as a timeout that says why.
func TestQueriesWaitForAFreeConnection(t *testing.T) {
	e := storetest.ServerEngine(t)
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Addr: storetest.ServerAddr(), MaxOpenConns: 1, QueryTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	slow := store.MustIdent(e.Database) + ".slow"
	for _, q := range []string{
		"CREATE TABLE " + store.MustIdent(e.Database) + ".t (x UInt64) ENGINE = MergeTree ORDER BY x",
		"INSERT INTO " + store.MustIdent(e.Database) + ".t SELECT number FROM numbers(7500)",
		"CREATE VIEW " + slow + " AS SELECT * FROM " + store.MustIdent(e.Database) + ".t WHERE sleepEachRow(0.001) = 0 SETTINGS max_block_size = 100",
	} {
		if err := e.DB.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := db.Query(ctx, "SELECT count() FROM "+slow) // ~7.5 s on the only connection
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)

	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = db.Query(short, "SELECT 1")
	if !errors.Is(err, store.ErrTimeout) || !strings.Contains(err.Error(), "waiting for a free connection") {
		t.Errorf("a query whose deadline passes while every connection is busy: %v", err)
	}
	long, cancel2 := context.WithTimeout(ctx, 20*time.Second)
	defer cancel2()
	start := time.Now()
	if _, err := db.Query(long, "SELECT 1"); err != nil {
		t.Errorf("a query with time to wait for the busy connection failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if err := <-done; err != nil {
		t.Errorf("the slow query: %v", err)
	}
}

// TestWritesDoNotWaitBehindQueries: queries never take the last pooled
// connection, so a write of mlwatch's own state (or a read marked
// store.Priority) goes through at once while every other connection runs a
// slow detector query and more queries wait.
func TestWritesDoNotWaitBehindQueries(t *testing.T) {
	e := storetest.ServerEngine(t)
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Addr: storetest.ServerAddr(), MaxOpenConns: 2, QueryTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dbName := store.MustIdent(e.Database)
	slow := dbName + ".slow"
	for _, q := range []string{
		"CREATE TABLE " + dbName + ".t (x UInt64) ENGINE = MergeTree ORDER BY x",
		"CREATE TABLE " + dbName + ".w (x UInt64) ENGINE = MergeTree ORDER BY x",
		"INSERT INTO " + dbName + ".t SELECT number FROM numbers(7500)",
		"CREATE VIEW " + slow + " AS SELECT * FROM " + dbName + ".t WHERE sleepEachRow(0.001) = 0 SETTINGS max_block_size = 100",
	} {
		if err := e.DB.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := db.Query(ctx, "SELECT count() FROM "+slow) // ~7.5 s
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	// A second query waits: the one connection left is for writes.
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := db.Query(short, "SELECT 1"); !errors.Is(err, store.ErrTimeout) || !strings.Contains(err.Error(), "waiting for a free connection") {
		t.Errorf("a second query while the slow one runs: %v, want it to wait (and time out here)", err)
	}
	// A write does not wait. Its deadline is generous for a busy machine,
	// yet far below the slow query's 7.5 s.
	wctx, cancel2 := context.WithTimeout(ctx, 4*time.Second)
	defer cancel2()
	if err := db.Insert(wctx, store.Table{Database: e.Database, Name: "w"}, []string{"x"}, [][]any{{uint64(1)}}); err != nil {
		t.Errorf("a state write while every query connection is busy: %v", err)
	}
	// So does a read of mlwatch's own state marked as such.
	pctx, cancel3 := context.WithTimeout(store.Priority(ctx), 4*time.Second)
	defer cancel3()
	if _, err := db.Query(pctx, "SELECT count() FROM "+dbName+".w"); err != nil {
		t.Errorf("a priority state read while every query connection is busy: %v", err)
	}
	select {
	case err := <-done:
		t.Errorf("the slow query ended (%v) before the write was checked: the test proves nothing", err)
	default:
	}
	if err := <-done; err != nil {
		t.Errorf("the slow query: %v", err)
	}
}
