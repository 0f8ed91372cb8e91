package store_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mlwatch/mlwatch/store"
)

// hostileNames are names an attacker (or an unlucky schema) puts where
// mlwatch expects identifiers; they seed the fuzz targets and the engine
// round-trip tests.
var hostileNames = []string{
	"country",
	"x`; DROP TABLE canary; --",
	"y' OR 1=1 --",
	"z\\`) --",
	"trailing\\",
	"``",
	"名前 'q' \"d\"",
	"?", "$1", "--", "/*", "*/",
	"a\\nb",
	"naïve 数 🙂",
	"\u202eevil",
}

// hostileValues are values (model names, roles, matcher values, slice
// values in data) that must come back from ClickHouse exactly as bound.
var hostileValues = append([]string{
	"v'); DROP TABLE canary; --",
	"w\\' OR '1'='1",
	"tab\there\nnewline\r",
	"nul\x00byte",
	"back\\slash\\",
	"",
	"\x7f\x01\x1b[31m",
}, hostileNames...)

// unquoteIdent reads a back-quoted identifier as ClickHouse's lexer does
// (backslash escapes, doubled back-quote) and returns it with the number
// of bytes consumed.
func unquoteIdent(q string) (string, int, bool) {
	return unquote(q, '`')
}

// unquote reads a quoted token as ClickHouse does: the escapes \b \f \n
// \r \t \0 \a \v \xHH, a backslash before any other byte is that byte,
// and a doubled quote is one quote.
func unquote(q string, quote byte) (string, int, bool) {
	if len(q) == 0 || q[0] != quote {
		return "", 0, false
	}
	var b strings.Builder
	for i := 1; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\\':
			if i+1 >= len(q) {
				return "", 0, false
			}
			i++
			switch e := q[i]; e {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '0':
				b.WriteByte(0)
			case 'a':
				b.WriteByte('\a')
			case 'v':
				b.WriteByte('\v')
			case 'x':
				if i+2 >= len(q) {
					return "", 0, false
				}
				v, err := strconv.ParseUint(q[i+1:i+3], 16, 8)
				if err != nil {
					return "", 0, false
				}
				b.WriteByte(byte(v))
				i += 2
			default:
				b.WriteByte(e)
			}
		case c == quote:
			if i+1 < len(q) && q[i+1] == quote {
				b.WriteByte(quote)
				i++
				continue
			}
			return b.String(), i + 1, true
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}

// FuzzQuoteIdent: every name QuoteIdent accepts is rendered as one
// back-quoted token that ClickHouse reads back as exactly that name, that
// Bind copies through untouched (no placeholder found inside), and that
// holds no control byte; every name it refuses breaks ValidateIdent's
// rules.
func FuzzQuoteIdent(f *testing.F) {
	for _, n := range hostileNames {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, name string) {
		q, err := store.QuoteIdent(name)
		if err != nil {
			if name != "" && len(name) <= 255 && utf8.ValidString(name) && !hasControl(name) {
				t.Fatalf("QuoteIdent refused a valid name %q: %v", name, err)
			}
			return
		}
		got, n, ok := unquoteIdent(q)
		if !ok || n != len(q) || got != name {
			t.Fatalf("QuoteIdent(%q) = %s reads back as %q (%d of %d bytes)", name, q, got, n, len(q))
		}
		if hasControl(q) {
			t.Fatalf("QuoteIdent(%q) = %q holds a control byte", name, q)
		}
		sql, err := store.Bind("SELECT "+q+" FROM t WHERE x = ?", "v")
		if err != nil || sql != "SELECT "+q+" FROM t WHERE x = 'v'" {
			t.Fatalf("Bind around %s: %q, %v", q, sql, err)
		}
	})
}

// FuzzQuoteString: every string is rendered as one single-quoted literal
// that ClickHouse reads back as exactly that string, with no raw control
// byte (a NUL would cut the embedded engine's C string), and Bind puts it
// in place of its placeholder only.
func FuzzQuoteString(f *testing.F) {
	for _, v := range hostileValues {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := store.QuoteString(s)
		got, n, ok := unquote(q, '\'')
		if !ok || n != len(q) || got != s {
			t.Fatalf("QuoteString(%q) = %s reads back as %q (%d of %d bytes)", s, q, got, n, len(q))
		}
		if hasControl(q) {
			t.Fatalf("QuoteString(%q) = %q holds a control byte", s, q)
		}
		sql, err := store.Bind("SELECT ?, '?', `?` -- ?\n, ?", s, s)
		if want := "SELECT " + q + ", '?', `?` -- ?\n, " + q; err != nil || sql != want {
			t.Fatalf("Bind(%q): %q, %v; want %q", s, sql, err, want)
		}
	})
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// seedCorpus reads the committed seed corpus of a fuzz target (string
// arguments only).
func seedCorpus(t *testing.T, target string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no committed seed corpus for %s: %v", target, err)
	}
	var out []string
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "string("); ok {
				v, err := strconv.Unquote(strings.TrimSuffix(rest, ")"))
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				out = append(out, v)
			}
		}
		f.Close()
	}
	return out
}
