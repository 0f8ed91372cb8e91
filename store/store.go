// Package store is mlwatch's one way into ClickHouse: a server reached over
// the native protocol (clickhouse-go/v2) or the embedded engine (chDB),
// behind the same three methods, the same client-side binding and the same
// result decoding, so one query string serves both.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Store is what detectors and alerts need from ClickHouse.
type Store interface {
	// Query runs a SELECT and returns its whole (small, aggregated) result.
	Query(ctx context.Context, query string, args ...any) (*Result, error)
	// Exec runs a statement that returns no rows (DDL, INSERT ... SELECT).
	Exec(ctx context.Context, query string, args ...any) error
	// Insert writes rows into the named columns of a table.
	Insert(ctx context.Context, table Table, columns []string, rows [][]any) error
}

// QueryEvent describes one finished query, for hooks.
type QueryEvent struct {
	ID     string
	Engine string // "server" or "embedded"
	Op     string // "query", "exec" or "insert"
	SQL    string
	Stats  Stats
	Err    error
}

// Hook is called after every query, successful or not.
type Hook func(QueryEvent)

// engine is one ClickHouse implementation; DB adds binding, hooks, logging.
type engine interface {
	name() string
	query(ctx context.Context, id, sql string) (*Result, error)
	exec(ctx context.Context, id, sql string) (Stats, error)
	insert(ctx context.Context, id string, table Table, columns []string, rows [][]any) (Stats, error)
	close() error
}

// DB is the Store of both engines.
type DB struct {
	opt     Options
	shards  shardConns
	eng     engine
	log     *zap.Logger
	timeout time.Duration
	hooks   []Hook
	queries atomic.Uint64
	failed  atomic.Uint64
}

// Options configure Open.
type Options struct {
	// Addr is host:port of a server's native port; empty selects the
	// embedded engine.
	Addr     string
	Database string
	User     string
	Password string
	Secure   bool   // TLS to the server
	CAFile   string // CA bundle for TLS; system roots when empty
	// ServerName is the name the server's TLS certificate is checked
	// against; default: Addr's host.
	ServerName string

	// EmbeddedPath is the embedded engine's data directory.
	EmbeddedPath string
	// LibPath overrides where libchdb.so is looked for.
	LibPath string

	// QueryTimeout bounds every query on both sides: the context deadline
	// and the server's max_execution_time. Default 60s.
	QueryTimeout time.Duration
	// MaxOpenConns bounds the server pool. Default 8.
	MaxOpenConns int

	Logger *zap.Logger
	Hooks  []Hook
}

// Open connects to the configured engine. The embedded library is loaded
// here, on first use, so a binary without it still runs everything else.
func Open(ctx context.Context, opt Options) (*DB, error) {
	if opt.QueryTimeout <= 0 {
		opt.QueryTimeout = 60 * time.Second
	}
	if opt.MaxOpenConns <= 0 {
		opt.MaxOpenConns = 8
	}
	if opt.Logger == nil {
		opt.Logger = zap.NewNop()
	}
	var (
		eng engine
		err error
	)
	if opt.Addr != "" {
		eng, err = openServer(ctx, opt)
	} else {
		eng, err = openEmbedded(opt)
	}
	if err != nil {
		return nil, err
	}
	return &DB{opt: opt, eng: eng, log: opt.Logger, timeout: opt.QueryTimeout, hooks: opt.Hooks}, nil
}

// Engine names the engine in use: "server" or "embedded".
func (db *DB) Engine() string { return db.eng.name() }

// Counts returns how many queries ran and how many failed since Open.
func (db *DB) Counts() (queries, failed uint64) { return db.queries.Load(), db.failed.Load() }

// AddHook registers a hook for every later query. Not safe to call while
// queries run; wire hooks before use.
func (db *DB) AddHook(h Hook) { db.hooks = append(db.hooks, h) }

// Close releases the pool or the embedded connection, and the
// connections to the shards of a cluster (Shards).
func (db *DB) Close() error {
	db.shards.close()
	return db.eng.close()
}

// Query implements Store.
func (db *DB) Query(ctx context.Context, query string, args ...any) (*Result, error) {
	sql, err := Bind(query, args...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	id := newQueryID()
	start := time.Now()
	res, err := db.eng.query(ctx, id, sql)
	var st Stats
	if res != nil {
		st = res.Stats
	}
	st.Duration = time.Since(start)
	err = db.finish(ctx, QueryEvent{ID: id, Op: "query", SQL: sql, Stats: st, Err: err})
	if err != nil {
		return nil, err
	}
	res.Stats = st
	return res, nil
}

// Exec implements Store.
func (db *DB) Exec(ctx context.Context, query string, args ...any) error {
	sql, err := Bind(query, args...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	id := newQueryID()
	start := time.Now()
	st, err := db.eng.exec(ctx, id, sql)
	st.Duration = time.Since(start)
	return db.finish(ctx, QueryEvent{ID: id, Op: "exec", SQL: sql, Stats: st, Err: err})
}

// Insert implements Store.
func (db *DB) Insert(ctx context.Context, table Table, columns []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	for i, r := range rows {
		if len(r) != len(columns) {
			return fmt.Errorf("insert into %s: row %d has %d values for %d columns", table, i, len(r), len(columns))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	id := newQueryID()
	start := time.Now()
	st, err := db.eng.insert(ctx, id, table, columns, rows)
	st.Duration = time.Since(start)
	st.ResultRows = len(rows)
	sql := fmt.Sprintf("INSERT INTO %s (%s) -- %d rows", table.Quoted(), strings.Join(columns, ", "), len(rows))
	return db.finish(ctx, QueryEvent{ID: id, Op: "insert", SQL: sql, Stats: st, Err: err})
}

// finish counts, logs and hooks one query, and shapes its error.
func (db *DB) finish(ctx context.Context, ev QueryEvent) error {
	ev.Engine = db.eng.name()
	db.queries.Add(1)
	if ev.Err != nil {
		db.failed.Add(1)
		if ctx.Err() != nil && !errors.Is(ev.Err, ErrTimeout) {
			ev.Err = &Error{Kind: ErrTimeout, Message: fmt.Sprintf("query %s: %v after %s", ev.ID, ctx.Err(), ev.Stats.Duration.Round(time.Millisecond)), Server: ev.Err.Error()}
		}
	}
	db.log.Debug("query",
		zap.String("id", ev.ID),
		zap.String("engine", ev.Engine),
		zap.String("op", ev.Op),
		zap.Duration("duration", ev.Stats.Duration),
		zap.Uint64("rows_read", ev.Stats.RowsRead),
		zap.Uint64("bytes_read", ev.Stats.BytesRead),
		zap.Int("result_rows", ev.Stats.ResultRows),
		zap.String("sql", ev.SQL),
		zap.Error(ev.Err))
	for _, h := range db.hooks {
		h(ev)
	}
	return ev.Err
}

func newQueryID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "mlwatch-" + hex.EncodeToString(b[:])
}
