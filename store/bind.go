package store

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Ident is an identifier (table, column, database) to be quoted into a
// query; passing one to Bind splices it quoted, never raw.
type Ident string

// Bind replaces each ? placeholder outside quotes and comments with the
// literal of the matching argument. Binding happens in mlwatch, not in a
// driver, so the server and the embedded engine see the same query text.
func Bind(query string, args ...any) (string, error) {
	var b strings.Builder
	b.Grow(len(query) + 16*len(args))
	next := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch c {
		case '\'', '"', '`':
			end := skipQuoted(query, i)
			b.WriteString(query[i:end])
			i = end - 1
		case '-':
			if i+1 < len(query) && query[i+1] == '-' {
				end := strings.IndexByte(query[i:], '\n')
				if end < 0 {
					end = len(query) - i
				}
				b.WriteString(query[i : i+end])
				i += end - 1
				continue
			}
			b.WriteByte(c)
		case '?':
			if next >= len(args) {
				return "", fmt.Errorf("bind: query has more placeholders than the %d arguments", len(args))
			}
			lit, err := Literal(args[next])
			if err != nil {
				return "", fmt.Errorf("bind: argument %d: %w", next+1, err)
			}
			b.WriteString(lit)
			next++
		default:
			b.WriteByte(c)
		}
	}
	if next != len(args) {
		return "", fmt.Errorf("bind: query has %d placeholders for %d arguments", next, len(args))
	}
	return b.String(), nil
}

// skipQuoted returns the index just past the quoted token starting at i.
func skipQuoted(q string, i int) int {
	quote := q[i]
	for j := i + 1; j < len(q); j++ {
		switch q[j] {
		case '\\':
			j++
		case quote:
			if j+1 < len(q) && q[j+1] == quote {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(q)
}

// Literal renders a Go value as a ClickHouse literal that both engines
// parse the same way.
func Literal(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "NULL", nil
	case Ident:
		return QuoteIdent(string(x))
	case string:
		return QuoteString(x), nil
	case []byte:
		return QuoteString(string(x)), nil
	case bool:
		if x {
			return "1", nil
		}
		return "0", nil
	case int, int8, int16, int32, int64:
		return strconv.FormatInt(reflect.ValueOf(x).Int(), 10), nil
	case uint, uint8, uint16, uint32, uint64:
		return strconv.FormatUint(reflect.ValueOf(x).Uint(), 10), nil
	case float32:
		return floatLiteral(float64(x), 32), nil
	case float64:
		return floatLiteral(x, 64), nil
	case time.Time:
		sec := x.Unix()
		if sec < 0 || sec > math.MaxUint32 {
			return "", fmt.Errorf("time %s is outside the DateTime range", x.UTC().Format(time.RFC3339))
		}
		return "toDateTime(" + strconv.FormatInt(sec, 10) + ")", nil
	case []string:
		return arrayLiteral(len(x), func(i int) (string, error) { return QuoteString(x[i]), nil })
	case []float64:
		return arrayLiteral(len(x), func(i int) (string, error) { return floatLiteral(x[i], 64), nil })
	case []int64:
		return arrayLiteral(len(x), func(i int) (string, error) { return strconv.FormatInt(x[i], 10), nil })
	case []uint64:
		return arrayLiteral(len(x), func(i int) (string, error) { return strconv.FormatUint(x[i], 10), nil })
	case []int:
		return arrayLiteral(len(x), func(i int) (string, error) { return strconv.Itoa(x[i]), nil })
	case []any:
		return arrayLiteral(len(x), func(i int) (string, error) { return Literal(x[i]) })
	}
	// Pointers (nil is NULL) and other slices, e.g. []*float64 for an
	// Array(Nullable(Float64)) column.
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return "NULL", nil
		}
		return Literal(rv.Elem().Interface())
	case reflect.Slice, reflect.Array:
		return arrayLiteral(rv.Len(), func(i int) (string, error) { return Literal(rv.Index(i).Interface()) })
	}
	return "", fmt.Errorf("cannot bind a value of type %T", v)
}

func floatLiteral(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, bits)
	if f < 0 {
		// Parenthesised so that "x - ?" never renders as "x --1" (a comment).
		return "(" + s + ")"
	}
	return s
}

func arrayLiteral(n int, item func(int) (string, error)) (string, error) {
	var b strings.Builder
	b.WriteByte('[')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		s, err := item(i)
		if err != nil {
			return "", fmt.Errorf("element %d: %w", i, err)
		}
		b.WriteString(s)
	}
	b.WriteByte(']')
	return b.String(), nil
}

// QuoteString renders s as a single-quoted ClickHouse string literal.
// Backslashes, quotes and control bytes are escaped, so no value can end the
// literal early, and a NUL byte cannot cut the C string the embedded engine
// receives.
func QuoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 || c == 0x7f {
				fmt.Fprintf(&b, `\x%02X`, c)
				continue
			}
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// ErrBadIdent is returned for identifiers that cannot be used as a table,
// database or column name.
var ErrBadIdent = errors.New("invalid identifier")

// ValidateIdent checks a name from config before it reaches SQL: non-empty,
// valid UTF-8, at most 255 bytes, no control characters.
func ValidateIdent(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrBadIdent)
	case len(name) > 255:
		return fmt.Errorf("%w: name longer than 255 bytes", ErrBadIdent)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrBadIdent, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %q contains a control character", ErrBadIdent, name)
		}
	}
	return nil
}

// QuoteIdent validates name and renders it as a back-quoted identifier.
func QuoteIdent(name string) (string, error) {
	if err := ValidateIdent(name); err != nil {
		return "", err
	}
	return quoteIdent(name), nil
}

// MustIdent quotes a name that was validated earlier (at config load) or is
// a constant of mlwatch's own; an invalid name panics, as a programming
// error would.
func MustIdent(name string) string {
	q, err := QuoteIdent(name)
	if err != nil {
		panic(err)
	}
	return q
}

func quoteIdent(name string) string {
	var b strings.Builder
	b.Grow(len(name) + 2)
	b.WriteByte('`')
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '`':
			b.WriteString("\\`")
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteByte(name[i])
		}
	}
	b.WriteByte('`')
	return b.String()
}

// Table is a possibly database-qualified table name.
type Table struct {
	Database string
	Name     string
}

// ParseTable reads a table as the config writes it, "name" or
// "database.name" (split at the first dot).
func ParseTable(name string) Table {
	if i := strings.IndexByte(name, '.'); i > 0 {
		return Table{Database: name[:i], Name: name[i+1:]}
	}
	return Table{Name: name}
}

// In returns the table in database db when it names none.
func (t Table) In(db string) Table {
	if t.Database == "" {
		t.Database = db
	}
	return t
}

// Quoted renders the table as `db`.`name`, or `name` when no database is set.
func (t Table) Quoted() string {
	if t.Database == "" {
		return MustIdent(t.Name)
	}
	return MustIdent(t.Database) + "." + MustIdent(t.Name)
}

// String is the unquoted dotted form, for messages.
func (t Table) String() string {
	if t.Database == "" {
		return t.Name
	}
	return t.Database + "." + t.Name
}
