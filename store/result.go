package store

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Column names one result column and its ClickHouse type.
type Column struct {
	Name string
	Type string
}

// Stats are what one query cost, as reported by the engine.
type Stats struct {
	Duration   time.Duration
	RowsRead   uint64
	BytesRead  uint64
	ResultRows int
}

// Result is a whole, decoded query result. Values are normalised the same
// way for both engines: nil for NULL, int64 for signed and uint64 for
// unsigned integers, float64 for floats (Float32 widened exactly), string,
// time.Time in UTC for Date and DateTime, and []any for arrays and tuples.
type Result struct {
	Columns []Column
	Rows    [][]any
	Stats   Stats
}

// Index returns the position of the named column, or -1.
func (r *Result) Index(name string) int {
	for i, c := range r.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// Float converts a normalised value to float64; NULL is NaN.
func Float(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return math.NaN()
		}
		return f
	}
	return math.NaN()
}

// Int converts a normalised value to int64; NULL and non-numbers are 0.
func Int(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case uint64:
		if x > math.MaxInt64 {
			return math.MaxInt64
		}
		return int64(x)
	case float64:
		if math.IsNaN(x) {
			return 0
		}
		return int64(x)
	}
	return 0
}

// Str converts a normalised value to a string; NULL is "".
func Str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05")
	}
	return fmt.Sprint(v)
}

// Time converts a normalised value to a time; anything else is the zero time.
func Time(v any) time.Time {
	if t, ok := v.(time.Time); ok {
		return t
	}
	return time.Time{}
}

// Floats converts an array value to []float64 (NULL elements are NaN).
func Floats(v any) []float64 { return arrayOf(v, Float) }

// Strings converts an array value to []string.
func Strings(v any) []string { return arrayOf(v, Str) }

// arrayOf converts each element of an array value (empty for a non-array).
func arrayOf[T any](v any, conv func(any) T) []T {
	arr, _ := v.([]any)
	out := make([]T, len(arr))
	for i, x := range arr {
		out[i] = conv(x)
	}
	return out
}

// chType is a parsed ClickHouse type name.
type chType struct {
	base string   // Float32, String, Array, Nullable, Tuple, ...
	args []chType // inner types of Array, Nullable, Tuple, LowCardinality
	// zone is the time zone of DateTime('zone') and DateTime64(p, 'zone'),
	// in which the embedded engine writes their values.
	zone string
}

func parseType(s string) chType {
	s = strings.TrimSpace(s)
	open := strings.IndexByte(s, '(')
	if open < 0 || !strings.HasSuffix(s, ")") {
		return chType{base: s}
	}
	t := chType{base: s[:open]}
	switch t.base {
	case "Array", "Nullable", "LowCardinality", "Tuple":
		for _, part := range splitTopLevel(s[open+1 : len(s)-1]) {
			part = strings.TrimSpace(part)
			// Named tuple elements: "name Type".
			if t.base == "Tuple" {
				if sp := strings.IndexByte(part, ' '); sp > 0 && !strings.ContainsAny(part[:sp], "(") {
					part = part[sp+1:]
				}
			}
			t.args = append(t.args, parseType(part))
		}
	case "DateTime", "DateTime64":
		for _, part := range splitTopLevel(s[open+1 : len(s)-1]) {
			if part = strings.TrimSpace(part); len(part) >= 2 && part[0] == '\'' {
				t.zone = strings.Trim(part, "'")
			}
		}
	}
	return t
}

func splitTopLevel(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case '\'':
			i = skipQuoted(s, i) - 1
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

// unwrap strips Nullable and LowCardinality.
func (t chType) unwrap() chType {
	for (t.base == "Nullable" || t.base == "LowCardinality") && len(t.args) == 1 {
		t = t.args[0]
	}
	return t
}

// parseIntJSON parses an integer of ClickHouse type base from JSON (a
// number, or a quoted 64-bit one) with parse.
func parseIntJSON[T int64 | uint64](base string, v any, parse func(string) (T, error)) (any, error) {
	s := jsonScalar(v)
	n, err := parse(s)
	if err != nil {
		return nil, fmt.Errorf("parse %s %q: %w", base, s, err)
	}
	return n, nil
}

// fromJSON normalises one value of a JSONCompact row (decoded with
// UseNumber) according to its column type.
func fromJSON(t chType, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	t = t.unwrap()
	switch {
	case t.base == "Array" || t.base == "Tuple":
		arr, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("expected an array for %s, got %T", t.base, v)
		}
		out := make([]any, len(arr))
		for i, x := range arr {
			inner := chType{base: "String"}
			switch {
			case t.base == "Array" && len(t.args) == 1:
				inner = t.args[0]
			case t.base == "Tuple" && i < len(t.args):
				inner = t.args[i]
			}
			n, err := fromJSON(inner, x)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case strings.HasPrefix(t.base, "Float"), strings.HasPrefix(t.base, "Decimal"):
		bits := 64
		if t.base == "Float32" {
			bits = 32
		}
		return parseFloatJSON(v, bits)
	case strings.HasPrefix(t.base, "UInt"):
		return parseIntJSON(t.base, v, func(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) })
	case strings.HasPrefix(t.base, "Int"):
		return parseIntJSON(t.base, v, func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) })
	case t.base == "Bool":
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("expected a bool, got %T", v)
		}
		if b {
			return uint64(1), nil
		}
		return uint64(0), nil
	case t.base == "DateTime" || t.base == "DateTime64" || t.base == "Date" || t.base == "Date32":
		s := jsonScalar(v)
		layout := "2006-01-02 15:04:05.999999999" // the fraction is optional
		if t.base == "Date" || t.base == "Date32" {
			layout = "2006-01-02"
		}
		loc := time.UTC
		if t.zone != "" {
			z, err := time.LoadLocation(t.zone)
			if err != nil {
				return nil, fmt.Errorf("%s: time zone %q: %w", t.base, t.zone, err)
			}
			loc = z
		}
		ts, err := time.ParseInLocation(layout, s, loc)
		if err != nil {
			return nil, fmt.Errorf("parse %s %q: %w", t.base, s, err)
		}
		return ts.UTC(), nil
	case t.base == "Nothing":
		return nil, nil
	}
	return jsonScalar(v), nil
}

func jsonScalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func parseFloatJSON(v any, bits int) (any, error) {
	s := jsonScalar(v)
	switch strings.ToLower(s) {
	case "nan", "-nan":
		return math.NaN(), nil
	case "inf", "+inf":
		return math.Inf(1), nil
	case "-inf":
		return math.Inf(-1), nil
	}
	f, err := strconv.ParseFloat(s, bits)
	if err != nil {
		return nil, fmt.Errorf("parse float %q: %w", s, err)
	}
	return f, nil
}

var timeType = reflect.TypeOf(time.Time{})

// fromDriver normalises a value scanned by clickhouse-go.
func fromDriver(t chType, v reflect.Value) any {
	t = t.unwrap()
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Type() == timeType {
		return v.Interface().(time.Time).UTC()
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint()
	case reflect.Float32, reflect.Float64:
		return v.Float()
	case reflect.Bool:
		if v.Bool() {
			return uint64(1)
		}
		return uint64(0)
	case reflect.String:
		return v.String()
	case reflect.Slice, reflect.Array:
		if t.base == "String" || t.base == "FixedString" {
			if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
				return string(v.Bytes())
			}
		}
		out := make([]any, v.Len())
		for i := range out {
			inner := chType{}
			switch {
			case t.base == "Array" && len(t.args) == 1:
				inner = t.args[0]
			case t.base == "Tuple" && i < len(t.args):
				inner = t.args[i]
			}
			out[i] = fromDriver(inner, v.Index(i))
		}
		return out
	}
	if s, ok := v.Interface().(fmt.Stringer); ok {
		str := s.String()
		if f, err := strconv.ParseFloat(str, 64); err == nil {
			return f
		}
		return str
	}
	return fmt.Sprint(v.Interface())
}
