package detectors

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Slice values that are not values: NULL or empty, and the tail beyond a
// column's top K. Parenthesised so that no real value collides with them.
const (
	NullSlice  = "(null)"
	OtherSlice = "(other)"
)

// nullBin is the histogram bin of NULL, NaN and infinite values.
const nullBin = 65535

// span is a half-open time range [from, to).
type span struct{ from, to time.Time }

// windows are one evaluation's current window and its baseline windows.
// In the query, column w is 0 for the current window and i+1 for base[i]:
// with a seasonal baseline base[i] is the same window i+1 days earlier.
type windows struct {
	at       time.Time
	cur      span
	base     []span
	seasonal bool
}

func newWindows(d *configs.Detector, at time.Time) windows {
	at = at.UTC().Truncate(time.Second)
	end := at.Add(-d.EvalDelay.D())
	w := windows{at: at, cur: span{end.Add(-d.Window.D()), end}}
	if d.Baseline.Mode == configs.BaselineSeasonal {
		w.seasonal = true
		for i := 1; i <= d.Baseline.Days; i++ {
			shift := time.Duration(i) * 24 * time.Hour
			w.base = append(w.base, span{w.cur.from.Add(-shift), w.cur.to.Add(-shift)})
		}
	} else {
		w.base = []span{{w.cur.from.Add(-d.Baseline.Span.D()), w.cur.from}}
	}
	return w
}

// all returns every window, current first.
func (w windows) all() []span { return append([]span{w.cur}, w.base...) }

// sqlText accumulates query text and its arguments in placeholder order.
type sqlText struct {
	b    strings.Builder
	args []any
}

func (q *sqlText) add(fragment string, args ...any) *sqlText {
	q.b.WriteString(fragment)
	q.args = append(q.args, args...)
	return q
}

func (q *sqlText) bind() (string, error) { return store.Bind(q.b.String(), q.args...) }

// source knows the model's table and columns and renders the parts every
// detector query shares: the row filter, the window column, the slices.
type source struct {
	d     *configs.Detector
	m     *configs.Model
	table string
}

func newSource(det *Detector) source {
	return source{d: det.cfg, m: det.model, table: tableOf(det.model.Table).Quoted()}
}

func tableOf(name string) store.Table {
	if i := strings.IndexByte(name, '.'); i > 0 {
		return store.Table{Database: name[:i], Name: name[i+1:]}
	}
	return store.Table{Name: name}
}

func (s source) col(name string) string { return store.MustIdent(name) }
func (s source) ts() string             { return s.col(s.m.Columns.TS) }

// where renders the filter of rows in the given spans: the model, the role
// (production only, or every role for detectors that use shadow rows) and
// one time range per span, so the primary key prunes every gap.
func (s source) where(q *sqlText, spans []span, allRoles bool) {
	q.add(s.col(s.m.Columns.Model)+" = ?", s.m.ModelValue)
	if s.m.Shadow.Mode == configs.ShadowRows {
		if allRoles {
			q.add(" AND "+s.col(s.m.Columns.Role)+" IN (?, ?)", s.m.Shadow.ProductionRole, s.m.Shadow.ShadowRole)
		} else {
			q.add(" AND "+s.col(s.m.Columns.Role)+" = ?", s.m.Shadow.ProductionRole)
		}
	}
	q.add(" AND (")
	for i, sp := range spans {
		if i > 0 {
			q.add(" OR ")
		}
		q.add("("+s.ts()+" >= ? AND "+s.ts()+" < ?)", sp.from, sp.to)
	}
	q.add(")")
}

// window renders the expression of column w (see windows).
func (s source) window(q *sqlText, w windows) {
	q.add("multiIf(")
	for i, sp := range w.all() {
		q.add(s.ts()+" >= ? AND "+s.ts()+" < ?, ", sp.from, sp.to)
		q.add(fmt.Sprintf("%d, ", i))
	}
	q.add("255)")
}

// sliceValue renders a slice column's value as a string, NULL and empty
// as NullSlice.
func (s source) sliceValue(c string) string {
	return fmt.Sprintf("ifNull(nullIf(toString(%s), ''), '%s')", s.col(c), NullSlice)
}

// slices renders the expression of a tuple (slice column, value) that
// arrayJoin turns into one row per slice the row belongs to: the aggregate
// (”, ”) and each slice column, a value outside the column's top K (by
// rows over every window) being OtherSlice. allRoles is the where filter's.
func (s source) slices(q *sqlText, cols []string, w windows, allRoles bool) {
	vals := make([]string, len(cols))
	for i, c := range cols {
		vals[i] = s.sliceValue(c)
	}
	s.slicesOf(q, cols, vals, w, allRoles)
}

// slicesOf is slices with each column's value given as an expression of
// the enclosing query (e.g. a production row's value carried through a
// GROUP BY request_id); the top K still ranks the table's rows.
func (s source) slicesOf(q *sqlText, cols, vals []string, w windows, allRoles bool) {
	if len(cols) == 0 {
		// arrayJoin of one constant tuple costs as much as the rest of a
		// query; the aggregate alone needs none.
		q.add("('', '')")
		return
	}
	q.add("arrayJoin([('', '')")
	for i, c := range cols {
		q.add(fmt.Sprintf(", ('%s', if(%s IN (SELECT _v FROM (SELECT %s AS _v, count() AS _n FROM %s WHERE ", escape(c), vals[i], s.sliceValue(c), s.table))
		s.where(q, w.all(), allRoles)
		q.add(fmt.Sprintf(" GROUP BY _v ORDER BY _n DESC, _v LIMIT ?)), %s, '%s'))", vals[i], OtherSlice), s.d.TopK)
	}
	q.add("])")
}

// escape quotes a name for use inside a single-quoted SQL string.
func escape(s string) string {
	return strings.TrimSuffix(strings.TrimPrefix(store.QuoteString(s), "'"), "'")
}

// bin renders the histogram bin of a numeric expression: the top 15 bits
// of its float64 (sign, exponent and 3 mantissa bits: bins 9% wide at any
// scale, exact integers on every engine), nullBin for NULL, NaN and ±Inf.
func bin(expr string) string {
	return fmt.Sprintf("if(ifNull(isFinite(toFloat64(%[1]s)), 0), bitShiftRight(reinterpretAsUInt64(reinterpretAsString(toFloat64(assumeNotNull(%[1]s)) + 0.)), 49), %d)", expr, nullBin)
}

// sliceOf turns the (column, value) of a result row into a slice map.
func sliceOf(col, val string) map[string]string {
	if col == "" {
		return map[string]string{}
	}
	return map[string]string{col: val}
}

// group is one slice (and feature) of a result with its row per window.
type group struct {
	col, val, feature string
	byW               map[int][]any
}

// groupRows collects a result's rows by (sc, sv[, feature]) and window w,
// the aggregate first, then by column, value and feature.
func groupRows(res *store.Result, featureCol string) ([]*group, error) {
	isc, isv, iw := res.Index("sc"), res.Index("sv"), res.Index("w")
	if isc < 0 || isv < 0 || iw < 0 {
		return nil, fmt.Errorf("result lacks sc, sv or w columns")
	}
	ifeat := -1
	if featureCol != "" {
		if ifeat = res.Index(featureCol); ifeat < 0 {
			return nil, fmt.Errorf("result lacks column %s", featureCol)
		}
	}
	byKey := map[[3]string]*group{}
	var out []*group
	for _, row := range res.Rows {
		k := [3]string{store.Str(row[isc]), store.Str(row[isv]), ""}
		if ifeat >= 0 {
			k[2] = store.Str(row[ifeat])
		}
		g := byKey[k]
		if g == nil {
			g = &group{col: k[0], val: k[1], feature: k[2], byW: map[int][]any{}}
			byKey[k] = g
			out = append(out, g)
		}
		g.byW[int(store.Int(row[iw]))] = row
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.col != b.col {
			return a.col < b.col
		}
		if a.val != b.val {
			return a.val < b.val
		}
		return a.feature < b.feature
	})
	return out, nil
}
