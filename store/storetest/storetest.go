// Package storetest gives tests both ClickHouse engines: the private test
// server (scripts/clickhouse-server.sh, 127.0.0.1:19000 unless
// MLWATCH_TEST_CLICKHOUSE_ADDR says otherwise) and the embedded engine. A
// missing engine fails the test; it never skips.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/store"
)

// Engine is one engine with a fresh database of the test's own.
type Engine struct {
	Name     string // "server" or "embedded"
	DB       *store.DB
	Database string
}

// ServerAddr is the test server's native address.
func ServerAddr() string {
	if a := os.Getenv("MLWATCH_TEST_CLICKHOUSE_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:19000"
}

var (
	embOnce sync.Once
	emb     *store.DB
	embErr  error
	srvOnce sync.Once
	srv     *store.DB
	srvErr  error
)

// Hooks registered on the shared stores fan out to the current test's
// listeners; see Listen.
var (
	hookMu    sync.Mutex
	listeners = map[int]store.Hook{}
	nextID    int
)

func fanout(ev store.QueryEvent) {
	hookMu.Lock()
	hs := make([]store.Hook, 0, len(listeners))
	for _, h := range listeners {
		hs = append(hs, h)
	}
	hookMu.Unlock()
	for _, h := range hs {
		h(ev)
	}
}

// Listen calls h for every query on the shared stores until the test ends.
func Listen(t testing.TB, h store.Hook) {
	hookMu.Lock()
	id := nextID
	nextID++
	listeners[id] = h
	hookMu.Unlock()
	t.Cleanup(func() {
		hookMu.Lock()
		delete(listeners, id)
		hookMu.Unlock()
	})
}

// QueryTimeout bounds each query of the shared test stores. It guards
// against a hang, not a slow machine: generating a test data set while
// other packages' tests share the server took past the 120 s it once was
// (TestGenerated/server). Tests check outcomes; go test's -timeout is the
// outer bound.
const QueryTimeout = 10 * time.Minute

// Embedded returns the process's shared embedded store (one per test binary).
func Embedded(t testing.TB) *store.DB {
	t.Helper()
	embOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mlwatch-chdb-")
		if err != nil {
			embErr = err
			return
		}
		emb, embErr = store.Open(context.Background(), store.Options{
			EmbeddedPath: filepath.Join(dir, "data"),
			QueryTimeout: QueryTimeout,
			Hooks:        []store.Hook{fanout},
		})
	})
	if embErr != nil {
		t.Fatalf("embedded clickhouse: %v", embErr)
	}
	return emb
}

// Server returns the shared store of the test server.
func Server(t testing.TB) *store.DB {
	t.Helper()
	srvOnce.Do(func() {
		srv, srvErr = store.Open(context.Background(), store.Options{
			Addr:         ServerAddr(),
			QueryTimeout: QueryTimeout,
			Hooks:        []store.Hook{fanout},
		})
	})
	if srvErr != nil {
		t.Fatalf("test clickhouse server at %s: %v (start it with scripts/clickhouse-server.sh start, or run make test)", ServerAddr(), srvErr)
	}
	return srv
}

// Engines returns both engines, each with a fresh database dropped when
// the test ends.
func Engines(t testing.TB) []Engine {
	t.Helper()
	return []Engine{fresh(t, "server", Server(t)), fresh(t, "embedded", Embedded(t))}
}

func fresh(t testing.TB, name string, db *store.DB) Engine {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	database := "test_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	if err := db.Exec(ctx, "CREATE DATABASE "+store.MustIdent(database)); err != nil {
		t.Fatalf("%s: create database: %v", name, err)
	}
	t.Cleanup(func() {
		if os.Getenv("MLWATCH_TEST_KEEP") != "" {
			return
		}
		_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS "+store.MustIdent(database))
	})
	return Engine{Name: name, DB: db, Database: database}
}

// ServerEngine returns the test server with a fresh database of the test's
// own, for tests that start mlwatch processes against it.
func ServerEngine(t testing.TB) Engine {
	t.Helper()
	return fresh(t, "server", Server(t))
}
