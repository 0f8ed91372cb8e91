package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// InstallHint tells the user how to get the embedded engine.
const InstallHint = "run scripts/install-libchdb.sh (fetches libchdb.so into .chdb/) or set CHDB_LIB_PATH, or configure clickhouse.addr / MLWATCH_CLICKHOUSE_ADDR to use a server"

// ErrNoLibrary is returned when the embedded engine's library is absent.
var ErrNoLibrary = errors.New("embedded clickhouse library libchdb.so not found")

// chdbLib is the handful of C functions mlwatch calls, bound lazily.
type chdbLib struct {
	connect   func(argc int32, argv unsafe.Pointer) *uintptr
	closeConn func(conn *uintptr)
	query     func(conn uintptr, query string, format string) unsafe.Pointer
	buffer    func(res unsafe.Pointer) unsafe.Pointer
	length    func(res unsafe.Pointer) uint64
	errText   func(res unsafe.Pointer) string
	destroy   func(res unsafe.Pointer)
	rowsRead  func(res unsafe.Pointer) uint64
	bytesRead func(res unsafe.Pointer) uint64
}

var (
	libOnce sync.Once
	lib     *chdbLib
	libErr  error
)

// LibraryCandidates lists where the library is looked for, in order.
func LibraryCandidates(override string) []string {
	var c []string
	for _, p := range []string{override, os.Getenv("CHDB_LIB_PATH")} {
		if p != "" {
			c = append(c, p)
		}
	}
	// ./.chdb, then the same in each parent directory, so that tests run
	// inside a package folder and binaries run from a subfolder find the
	// repository's copy.
	if dir, err := os.Getwd(); err == nil {
		for {
			c = append(c, filepath.Join(dir, ".chdb", "libchdb.so"))
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return append(c, "/usr/local/lib/libchdb.so")
}

func findLibrary(override string) (string, error) {
	cands := LibraryCandidates(override)
	for _, p := range cands {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w (looked in %s): %s", ErrNoLibrary, strings.Join(cands, ", "), InstallHint)
}

func loadLibrary(override string) (*chdbLib, error) {
	libOnce.Do(func() {
		path, err := findLibrary(override)
		if err != nil {
			libErr = err
			return
		}
		h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			libErr = fmt.Errorf("load %s: %w: %s", path, err, InstallHint)
			return
		}
		l := &chdbLib{}
		for _, f := range []struct {
			fn   any
			name string
		}{
			{&l.connect, "chdb_connect"},
			{&l.closeConn, "chdb_close_conn"},
			{&l.query, "chdb_query"},
			{&l.buffer, "chdb_result_buffer"},
			{&l.length, "chdb_result_length"},
			{&l.errText, "chdb_result_error"},
			{&l.destroy, "chdb_destroy_query_result"},
			// The storage counters are what the query read from tables;
			// chdb_result_rows_read counts the result's rows.
			{&l.rowsRead, "chdb_result_storage_rows_read"},
			{&l.bytesRead, "chdb_result_storage_bytes_read"},
		} {
			sym, err := purego.Dlsym(h, f.name)
			if err != nil {
				libErr = fmt.Errorf("%s: symbol %s missing (need chDB 26.x): %w", path, f.name, err)
				return
			}
			purego.RegisterFunc(f.fn, sym)
		}
		lib = l
	})
	return lib, libErr
}

// embedded is the chDB engine. The engine is process-wide: one data path
// per process, calls serialised on one connection.
type embedded struct {
	mu   sync.Mutex
	lib  *chdbLib
	conn *uintptr
	path string
}

var (
	embeddedMu   sync.Mutex
	embeddedOpen *embedded
)

func openEmbedded(opt Options) (*embedded, error) {
	l, err := loadLibrary(opt.LibPath)
	if err != nil {
		return nil, err
	}
	path := opt.EmbeddedPath
	if path == "" {
		path = ".mlwatch/chdb"
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("embedded clickhouse: data path %s: %w", path, err)
	}
	embeddedMu.Lock()
	defer embeddedMu.Unlock()
	if embeddedOpen != nil {
		if embeddedOpen.path != abs {
			return nil, fmt.Errorf("embedded clickhouse is already open at %s in this process; it cannot also open %s", embeddedOpen.path, abs)
		}
		return nil, fmt.Errorf("embedded clickhouse at %s is already open in this process; share the store", abs)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("embedded clickhouse: data path: %w", err)
	}
	secs := int(opt.QueryTimeout.Seconds())
	if secs < 1 {
		secs = 1
	}
	args := []string{
		"clickhouse",
		"--path=" + abs,
		"--session_timezone=UTC",
		"--output_format_json_quote_denormals=1",
		"--output_format_json_quote_64bit_integers=0",
		fmt.Sprintf("--max_execution_time=%d", secs),
	}
	if opt.Database != "" && opt.Database != "default" {
		args = append(args, "--database="+opt.Database)
	}
	cargs := make([][]byte, len(args))
	argv := make([]unsafe.Pointer, len(args)+1)
	for i, a := range args {
		cargs[i] = append([]byte(a), 0)
		argv[i] = unsafe.Pointer(&cargs[i][0])
	}
	conn := l.connect(int32(len(args)), unsafe.Pointer(&argv[0]))
	if conn == nil || *conn == 0 {
		return nil, fmt.Errorf("embedded clickhouse: connect at %s failed (is another process using this data path?)", abs)
	}
	e := &embedded{lib: l, conn: conn, path: abs}
	embeddedOpen = e
	return e, nil
}

func (e *embedded) name() string { return "embedded" }

func (e *embedded) close() error {
	embeddedMu.Lock()
	defer embeddedMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn != nil {
		e.lib.closeConn(e.conn)
		e.conn = nil
	}
	if embeddedOpen == e {
		embeddedOpen = nil
	}
	return nil
}

// run executes one statement and returns its output bytes. The C call
// cannot be interrupted; a caller whose context ends gets its error at once
// while the call finishes (bounded by max_execution_time) in the background.
func (e *embedded) run(ctx context.Context, sql, format string) ([]byte, Stats, error) {
	if strings.IndexByte(sql, 0) >= 0 {
		return nil, Stats{}, errors.New("query contains a NUL byte")
	}
	type outcome struct {
		out []byte
		st  Stats
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.conn == nil {
			done <- outcome{err: errors.New("embedded clickhouse is closed")}
			return
		}
		res := e.lib.query(*e.conn, sql, format)
		if res == nil {
			done <- outcome{err: errors.New("embedded clickhouse returned no result")}
			return
		}
		defer e.lib.destroy(res)
		if msg := e.lib.errText(res); msg != "" {
			// A query that fails while running leaves the output it had
			// begun (its header) in the session, to be prepended to the
			// next result; one throwaway query drains it.
			if drain := e.lib.query(*e.conn, "SELECT 1", format); drain != nil {
				e.lib.destroy(drain)
			}
			done <- outcome{err: classifyText(msg)}
			return
		}
		n := e.lib.length(res)
		var out []byte
		if n > 0 {
			out = bytes.Clone(unsafe.Slice((*byte)(e.lib.buffer(res)), n))
		}
		done <- outcome{out: out, st: Stats{RowsRead: e.lib.rowsRead(res), BytesRead: e.lib.bytesRead(res)}}
	}()
	select {
	case o := <-done:
		return o.out, o.st, o.err
	case <-ctx.Done():
		return nil, Stats{}, &Error{Kind: ErrTimeout, Message: "embedded query: " + ctx.Err().Error()}
	}
}

func (e *embedded) query(ctx context.Context, _ string, sql string) (*Result, error) {
	out, st, err := e.run(ctx, sql, "JSONCompactEachRowWithNamesAndTypes")
	if err != nil {
		return nil, err
	}
	res, err := decodeJSONCompact(out)
	if err != nil {
		return nil, fmt.Errorf("embedded: decode result: %w", err)
	}
	st.ResultRows = len(res.Rows)
	res.Stats = st
	return res, nil
}

func (e *embedded) exec(ctx context.Context, _ string, sql string) (Stats, error) {
	_, st, err := e.run(ctx, sql, "TabSeparated")
	return st, err
}

func (e *embedded) insert(ctx context.Context, _ string, table Table, columns []string, rows [][]any) (Stats, error) {
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = MustIdent(c)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", table.Quoted(), strings.Join(quoted, ", "))
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j, v := range r {
			if j > 0 {
				b.WriteString(", ")
			}
			lit, err := Literal(v)
			if err != nil {
				return Stats{}, fmt.Errorf("insert into %s: row %d column %s: %w", table, i, columns[j], err)
			}
			b.WriteString(lit)
		}
		b.WriteByte(')')
	}
	return e.exec(ctx, "", b.String())
}

// decodeJSONCompact reads JSONCompactEachRowWithNamesAndTypes: a line of
// names, a line of types, then one array per row.
func decodeJSONCompact(out []byte) (*Result, error) {
	res := &Result{}
	if len(bytes.TrimSpace(out)) == 0 {
		return res, nil
	}
	dec := json.NewDecoder(bufio.NewReader(bytes.NewReader(out)))
	dec.UseNumber()
	var names, types []string
	if err := dec.Decode(&names); err != nil {
		return nil, fmt.Errorf("names: %w", err)
	}
	if err := dec.Decode(&types); err != nil {
		return nil, fmt.Errorf("types: %w", err)
	}
	if len(names) != len(types) {
		return nil, fmt.Errorf("%d names for %d types", len(names), len(types))
	}
	parsed := make([]chType, len(types))
	for i := range names {
		res.Columns = append(res.Columns, Column{Name: names[i], Type: types[i]})
		parsed[i] = parseType(types[i])
	}
	for {
		var raw []any
		err := dec.Decode(&raw)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", len(res.Rows), err)
		}
		if len(raw) != len(parsed) {
			return nil, fmt.Errorf("row %d: %d values for %d columns", len(res.Rows), len(raw), len(parsed))
		}
		row := make([]any, len(raw))
		for i, v := range raw {
			n, err := fromJSON(parsed[i], v)
			if err != nil {
				return nil, fmt.Errorf("row %d column %s: %w", len(res.Rows), names[i], err)
			}
			row[i] = n
		}
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}
