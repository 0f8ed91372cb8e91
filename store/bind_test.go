package store

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestBind(t *testing.T) {
	ts := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		query string
		args  []any
		want  string
		err   string
	}{
		{"string", "SELECT ?", []any{"it's"}, `SELECT 'it\'s'`, ""},
		{"injection", "SELECT * FROM t WHERE c = ?", []any{"x' OR 1=1 --"}, `SELECT * FROM t WHERE c = 'x\' OR 1=1 --'`, ""},
		{"backslash", "SELECT ?", []any{`a\'b`}, `SELECT 'a\\\'b'`, ""},
		{"nul and newline", "SELECT ?", []any{"a\x00b\nc"}, `SELECT 'a\0b\nc'`, ""},
		{"placeholder in literal", "SELECT '?', ?, `?`", []any{1}, "SELECT '?', 1, `?`", ""},
		{"placeholder in comment", "SELECT ? -- what?\n", []any{2}, "SELECT 2 -- what?\n", ""},
		{"numbers", "SELECT ?, ?, ?, ?", []any{uint64(18446744073709551615), int8(-3), 0.1, float32(0.5)}, "SELECT 18446744073709551615, -3, 0.1, 0.5", ""},
		{"integer widths", "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?", []any{-1, int8(-128), int16(-16), int32(-32), int64(-9223372036854775808), uint(1), uint8(255), uint16(16), uint32(4294967295), uint64(64)},
			"SELECT -1, -128, -16, -32, -9223372036854775808, 1, 255, 16, 4294967295, 64", ""},
		{"negative float no comment", "SELECT 1 - ?", []any{-2.5}, "SELECT 1 - (-2.5)", ""},
		{"nan inf", "SELECT ?, ?, ?", []any{math.NaN(), math.Inf(1), math.Inf(-1)}, "SELECT nan, inf, -inf", ""},
		{"time", "SELECT ?", []any{ts}, "SELECT toDateTime(1795694400)", ""},
		{"arrays", "SELECT has(?, x), ?", []any{[]string{"a", "b'"}, []float64{1, 2.5}}, `SELECT has(['a', 'b\''], x), [1, 2.5]`, ""},
		{"ident", "SELECT ? FROM t", []any{Ident("we`ird")}, "SELECT `we\\`ird` FROM t", ""},
		{"null", "SELECT ?", []any{nil}, "SELECT NULL", ""},
		{"too few args", "SELECT ?, ?", []any{1}, "", "more placeholders"},
		{"too many args", "SELECT ?", []any{1, 2}, "", "1 placeholders for 2 arguments"},
		{"bad type", "SELECT ?", []any{struct{}{}}, "", "cannot bind"},
		{"time out of range", "SELECT ?", []any{time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)}, "", "outside the DateTime range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Bind(tc.query, tc.args...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Bind = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestValidateIdent(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"country", true}, {"plan tier", true}, {"spend`usd", true}, {"ünïcode", true},
		{"", false}, {"a\x00b", false}, {"tab\there", false}, {strings.Repeat("x", 256), false}, {"\xff", false},
	} {
		err := ValidateIdent(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateIdent(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		text string
		kind error
		msg  string
	}{
		{"Code: 60. DB::Exception: Table default.nosuch doesn't exist..", ErrUnknownTable, "table default.nosuch does not exist"},
		{"Code: 60. DB::Exception: Unknown table expression identifier 'nosuch' in scope SELECT 1 FROM nosuch. (UNKNOWN_TABLE)", ErrUnknownTable, "table nosuch does not exist"},
		{"Code: 47. DB::Exception: Unknown identifier: z, context: ...", ErrUnknownColumn, "unknown column z"},
		{"Code: 47. DB::Exception: Unknown expression identifier `z` in scope SELECT z. (UNKNOWN_IDENTIFIER)", ErrUnknownColumn, "unknown column z"},
		{"Code: 47. DB::Exception: Unknown expression or function identifier `score_p` in scope", ErrUnknownColumn, "unknown column score_p"},
		{"Code: 81. DB::Exception: Database nodb doesn't exist", ErrUnknownDatabase, "database nodb does not exist"},
		{"Code: 159. DB::Exception: Timeout exceeded: elapsed 1.0 seconds", ErrTimeout, ""},
		{"Code: 516. DB::Exception: default: Authentication failed", ErrAuth, "clickhouse rejected the user or password (code 516)"},
		{"Code: 62. DB::Exception: Syntax error", ErrSyntax, ""},
		{"Code: 16. DB::Exception: There's no column 'x' in table t", ErrUnknownColumn, "unknown column x"},
		{"Code: 16. DB::Exception: No such column y in table t", ErrUnknownColumn, "unknown column y"},
		{"Code: 60. DB::Exception: some other wording", ErrUnknownTable, "unknown table: Code: 60. DB::Exception: some other wording"},
		{"Code: 241. DB::Exception: Memory limit (for query) exceeded", ErrMemory, ""},
		{"Code: 210. DB::NetException: Connection refused", ErrUnavailable, ""},
		{"Code: 394. DB::Exception: Query was cancelled", ErrTimeout, ""},
		{"Code: 192. DB::Exception: Unknown user nobody", ErrAuth, "clickhouse rejected the user or password (code 192)"},
		{"Code: 1. DB::Exception: anything else", ErrBadQuery, "bad query: Code: 1. DB::Exception: anything else"},
	} {
		e := classifyText(tc.text)
		if e.Kind != tc.kind || (tc.msg != "" && e.Message != tc.msg) {
			t.Errorf("classify(%q) = %v / %q; want %v / %q", tc.text, e.Kind, e.Message, tc.kind, tc.msg)
		}
	}
}

func TestParseTable(t *testing.T) {
	for in, want := range map[string]Table{
		"t":     {Name: "t"},
		"db.t":  {Database: "db", Name: "t"},
		"db.t.": {Database: "db", Name: "t."},
		".t":    {Name: ".t"},
	} {
		if got := ParseTable(in); got != want {
			t.Errorf("ParseTable(%q) = %+v, want %+v", in, got, want)
		}
	}
	if got := ParseTable("t").In("db"); got != (Table{Database: "db", Name: "t"}) {
		t.Errorf("In: %+v", got)
	}
	if got := ParseTable("a.t").In("db"); got != (Table{Database: "a", Name: "t"}) {
		t.Errorf("In keeps the table's database: %+v", got)
	}
}
