package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// server is the clickhouse-go/v2 engine: native protocol, one pool.
type server struct {
	conn    driver.Conn
	timeout time.Duration
	// slots holds one token per pooled connection. A query waits for a
	// slot as long as its own context allows; left to clickhouse-go, it
	// waited for a connection at most the dial timeout (5 s) and then
	// failed with "acquire conn timeout", whatever the run's deadline.
	slots chan struct{}
	// reads holds one token fewer than slots: SELECTs (detector queries,
	// seconds each) never take the last connection, which stays free for
	// writes of mlwatch's own state (milliseconds each). With 500
	// detectors due at once, state writes queued behind hundreds of
	// queries and ran out of their short timeout.
	reads chan struct{}
}

type priorityKey struct{}

// Priority marks the queries made with ctx as short reads of mlwatch's
// own state (silences, the outbox), which may use the connection kept
// free of detector queries, as writes do: the alert pipeline must not
// wait behind a burst of detector runs.
func Priority(ctx context.Context) context.Context {
	return context.WithValue(ctx, priorityKey{}, true)
}

func isPriority(ctx context.Context) bool {
	p, _ := ctx.Value(priorityKey{}).(bool)
	return p
}

// acquire takes a slot, or fails when ctx ends first.
func (s *server) acquire(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for a free connection (all %d busy): %w", cap(s.slots), ctx.Err())
	}
}

func (s *server) release() { <-s.slots }

// acquireRead takes a read token and then a slot.
func (s *server) acquireRead(ctx context.Context) error {
	select {
	case s.reads <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting for a free connection (all %d for queries busy): %w", cap(s.reads), ctx.Err())
	}
	if err := s.acquire(ctx); err != nil {
		<-s.reads
		return err
	}
	return nil
}

func (s *server) releaseRead() {
	s.release()
	<-s.reads
}

func openServer(ctx context.Context, opt Options) (*server, error) {
	o := &clickhouse.Options{
		Addr: []string{opt.Addr},
		Auth: clickhouse.Auth{
			Database: opt.Database,
			Username: opt.User,
			Password: opt.Password,
		},
		DialTimeout:     5 * time.Second,
		ReadTimeout:     opt.QueryTimeout + 5*time.Second,
		MaxOpenConns:    opt.MaxOpenConns,
		MaxIdleConns:    opt.MaxOpenConns,
		ConnMaxLifetime: time.Hour,
		Compression:     &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		ClientInfo: clickhouse.ClientInfo{Products: []struct {
			Name    string
			Version string
		}{{Name: "mlwatch", Version: "1"}}},
	}
	if opt.Secure {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if opt.CAFile != "" {
			pem, err := os.ReadFile(opt.CAFile)
			if err != nil {
				return nil, fmt.Errorf("clickhouse tls: read ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("clickhouse tls: ca_file %s holds no PEM certificate", opt.CAFile)
			}
			cfg.RootCAs = pool
		}
		if host, _, err := net.SplitHostPort(opt.Addr); err == nil {
			cfg.ServerName = host
		}
		if opt.ServerName != "" {
			cfg.ServerName = opt.ServerName
		}
		o.TLS = cfg
	}
	conn, err := clickhouse.Open(o)
	if err != nil {
		return nil, fmt.Errorf("clickhouse %s: %w", opt.Addr, err)
	}
	s := &server{conn: conn, timeout: opt.QueryTimeout, slots: make(chan struct{}, opt.MaxOpenConns),
		reads: make(chan struct{}, max(1, opt.MaxOpenConns-1))}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("clickhouse %s: %w", opt.Addr, s.translate(err))
	}
	return s, nil
}

func (s *server) name() string { return "server" }

// withoutDeadline is a context with its parent's values and cancellation
// but no deadline.
type withoutDeadline struct{ context.Context }

func (withoutDeadline) Deadline() (time.Time, bool) { return time.Time{}, false }

func (s *server) close() error { return s.conn.Close() }

// queryContext attaches the query ID, the server-side deadline and a
// progress counter. The server keeps running a cancelled query unless
// max_execution_time stops it, so both are always set; the deadline is
// hidden from clickhouse-go, which would otherwise replace that setting
// with the deadline plus five seconds (the server then ran that long after
// the run had given up). Cancellation still reaches the driver.
func (s *server) queryContext(ctx context.Context, id string, st *Stats) context.Context {
	return s.driverContext(withoutDeadline{ctx}, ctx, id, st)
}

// insertContext is queryContext for batch inserts, which keep the deadline
// on their socket (their own max_execution_time hardly matters).
func (s *server) insertContext(ctx context.Context, id string, st *Stats) context.Context {
	return s.driverContext(ctx, ctx, id, st)
}

func (s *server) driverContext(driver, ctx context.Context, id string, st *Stats) context.Context {
	secs := int(s.timeout / time.Second)
	if dl, ok := ctx.Deadline(); ok {
		if left := int(time.Until(dl).Seconds()); left < secs {
			secs = left
		}
	}
	if secs < 1 {
		secs = 1
	}
	var mu sync.Mutex
	return clickhouse.Context(driver,
		clickhouse.WithQueryID(id),
		// insert_distributed_sync: an INSERT into a Distributed table
		// returns once the shards hold the rows, so what mlwatch reports
		// written (generate, the outbox) is there; no effect elsewhere.
		clickhouse.WithSettings(clickhouse.Settings{"max_execution_time": secs, "insert_distributed_sync": 1}),
		clickhouse.WithProgress(func(p *clickhouse.Progress) {
			mu.Lock()
			st.RowsRead += p.Rows
			st.BytesRead += p.Bytes
			mu.Unlock()
		}),
	)
}

func (s *server) query(ctx context.Context, id, sql string) (*Result, error) {
	if isPriority(ctx) {
		if err := s.acquire(ctx); err != nil {
			return nil, s.translate(err)
		}
		defer s.release()
	} else {
		if err := s.acquireRead(ctx); err != nil {
			return nil, s.translate(err)
		}
		defer s.releaseRead()
	}
	res := &Result{}
	qctx := s.queryContext(ctx, id, &res.Stats)
	rows, err := s.conn.Query(qctx, sql)
	if err != nil {
		return nil, s.translate(err)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	parsed := make([]chType, len(types))
	dest := make([]any, len(types))
	for i, ct := range types {
		res.Columns = append(res.Columns, Column{Name: ct.Name(), Type: ct.DatabaseTypeName()})
		parsed[i] = parseType(ct.DatabaseTypeName())
		dest[i] = reflect.New(ct.ScanType()).Interface()
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		row := make([]any, len(dest))
		for i, d := range dest {
			row[i] = fromDriver(parsed[i], reflect.ValueOf(d))
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, s.translate(err)
	}
	res.Stats.ResultRows = len(res.Rows)
	return res, nil
}

func (s *server) exec(ctx context.Context, id, sql string) (Stats, error) {
	var st Stats
	if err := s.acquire(ctx); err != nil {
		return st, s.translate(err)
	}
	defer s.release()
	err := s.conn.Exec(s.queryContext(ctx, id, &st), sql)
	return st, s.translate(err)
}

func (s *server) insert(ctx context.Context, id string, table Table, columns []string, rows [][]any) (Stats, error) {
	var st Stats
	if err := s.acquire(ctx); err != nil {
		return st, s.translate(err)
	}
	defer s.release()
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = MustIdent(c)
	}
	qctx := s.insertContext(ctx, id, &st)
	batch, err := s.conn.PrepareBatch(qctx, fmt.Sprintf("INSERT INTO %s (%s)", table.Quoted(), strings.Join(quoted, ", ")))
	if err != nil {
		return st, s.translate(err)
	}
	for i, r := range rows {
		if err := batch.Append(r...); err != nil {
			_ = batch.Abort()
			return st, fmt.Errorf("insert into %s: row %d: %w", table, i, err)
		}
	}
	return st, s.translate(batch.Send())
}

// translate maps driver errors to *Error with a message that says what to fix.
func (s *server) translate(err error) error {
	if err == nil {
		return nil
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return classify(int(ex.Code), fmt.Sprintf("Code: %d. %s", ex.Code, ex.Message))
	}
	var nerr net.Error
	if errors.As(err, &nerr) || strings.Contains(err.Error(), "connection refused") ||
		strings.Contains(err.Error(), "broken pipe") || strings.Contains(err.Error(), "EOF") {
		if nerr != nil && nerr.Timeout() {
			return &Error{Kind: ErrTimeout, Message: "clickhouse did not answer in time: " + err.Error(), Server: err.Error()}
		}
		return &Error{Kind: ErrUnavailable, Message: "clickhouse unavailable: " + err.Error(), Server: err.Error()}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &Error{Kind: ErrTimeout, Message: "query cancelled: " + err.Error(), Server: err.Error()}
	}
	return err
}
