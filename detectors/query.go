package detectors

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Slice values that are not values: NULL or empty, and the tail beyond a
// column's top K. No real value collides with them: a real value that
// starts with '(' or '"' is carried quoted (see sliceLabel).
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

// minReferenceDays is the fewest reference days a reference baseline
// decides with: one or two days cannot show the day-to-day spread, and a
// chance low day then makes an ordinary one look like drift.
const minReferenceDays = 3

func newWindows(d *configs.Detector, at time.Time) windows {
	at = at.UTC().Truncate(time.Second)
	end := at.Add(-d.EvalDelay.D())
	if d.Source == configs.SourceRollup {
		// The rollup counts whole minutes.
		end = end.Truncate(time.Minute)
	}
	w := windows{at: at, cur: span{end.Add(-d.Window.D()), end}}
	switch d.Baseline.Mode {
	case configs.BaselineSeasonal:
		w.seasonal = true
		for i := 1; i <= d.Baseline.Days; i++ {
			shift := time.Duration(i) * 24 * time.Hour
			w.base = append(w.base, span{w.cur.from.Add(-shift), w.cur.to.Add(-shift)})
		}
	case configs.BaselineReference:
		// The same window, whole days earlier, on each day whose window
		// lies inside the reference period and before the current one:
		// the seasonal figures of a period that does not move.
		w.seasonal = true
		from, to := d.Baseline.ReferenceSpan(at)
		if to.After(w.cur.from) {
			to = w.cur.from
		}
		days := int(w.cur.from.Sub(from) / (24 * time.Hour))
		for i := 1; i <= days; i++ {
			shift := time.Duration(i) * 24 * time.Hour
			sp := span{w.cur.from.Add(-shift), w.cur.to.Add(-shift)}
			if !sp.from.Before(from) && !sp.to.After(to) {
				w.base = append(w.base, sp)
			}
		}
		if len(w.base) < minReferenceDays {
			// Too few days to know the reference's day-to-day spread:
			// nothing is decided (every check is skipped) until the
			// period holds enough of them.
			w.base = nil
		}
	default:
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
	err  error
}

func (q *sqlText) add(fragment string, args ...any) *sqlText {
	q.b.WriteString(fragment)
	q.args = append(q.args, args...)
	return q
}

// addQuery appends a subquery's text and arguments, and its error.
func (q *sqlText) addQuery(sub *sqlText) *sqlText {
	q.add(sub.b.String(), sub.args...)
	if sub.err != nil {
		q.err = sub.err
	}
	return q
}

// addFrom appends FROM (sub) on lines of their own, indented by indent.
func (q *sqlText) addFrom(indent string, sub *sqlText) *sqlText {
	q.add("\n" + indent + "FROM (\n")
	q.addQuery(sub)
	return q.add("\n" + indent + ")")
}

func (q *sqlText) bind() (string, error) {
	if q.err != nil {
		return "", q.err
	}
	return store.Bind(q.b.String(), q.args...)
}

// rowDef is a per-row value of an aggregating SELECT that reads the
// table: an expression named by an alias.
type rowDef struct {
	name string
	expr *sqlText
}

func def(name, expr string, args ...any) rowDef {
	e := &sqlText{}
	e.add(expr, args...)
	return rowDef{name: name, expr: e}
}

// inline defines each per-row value inside level, the text of one
// aggregating SELECT that reads the table, where its name is first used:
// its first use becomes (expr AS name), later uses read the alias. The
// GROUP BY then sits at the same query level as the table, which is what
// lets a Distributed table (a ClickHouse cluster) aggregate on each shard
// and ship partial aggregates, where a per-row subquery under the GROUP BY
// made every shard ship its rows. Definitions are bound to literals first,
// so the placeholders of level keep their order; a later definition may
// use an earlier one's name (its first use then lies inside it). A value
// level never uses is dropped.
func inline(level *sqlText, defs ...rowDef) {
	for _, d := range defs {
		bound, err := d.expr.bind()
		if err != nil {
			level.err = fmt.Errorf("row value %s: %w", d.name, err)
			return
		}
		text := level.b.String()
		i := firstWord(text, d.name)
		if i < 0 {
			continue
		}
		level.b.Reset()
		level.b.WriteString(text[:i] + "(" + bound + " AS " + d.name + ")" + text[i+len(d.name):])
	}
}

// columns renders defs as select-list items "expr AS name, ...", for a
// per-row level that stays a subquery.
func columns(q *sqlText, defs []rowDef) {
	for i, d := range defs {
		if i > 0 {
			q.add(", ")
		}
		q.add(d.expr.b.String(), d.expr.args...)
		q.add(" AS " + d.name)
	}
}

// firstWord returns the offset of the first use of identifier w in text
// outside quotes, or -1.
func firstWord(text, w string) int {
	ident := func(c byte) bool {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	var quote byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case strings.HasPrefix(text[i:], w) && (i == 0 || !ident(text[i-1])) &&
			(i+len(w) == len(text) || !ident(text[i+len(w)])):
			return i
		}
	}
	return -1
}

// source knows the model's table and columns and renders the parts every
// detector query shares: the row filter, the window column, the slices.
type source struct {
	d     *configs.Detector
	m     *configs.Model
	table string
}

func newSource(det *Detector) source {
	return source{d: det.cfg, m: det.model, table: store.ParseTable(det.model.Table).Quoted()}
}

func (s source) col(name string) string { return store.MustIdent(name) }
func (s source) ts() string             { return s.col(s.m.Columns.TS) }

// filter renders the row filter of the given spans after FROM: the time
// ranges as PREWHERE (one range per span, so partition pruning and the
// primary key skip every gap, and the wide columns are read only for rows
// inside a window), the model and role (production only, or every role for
// detectors that use shadow rows) as WHERE. It ends inside the WHERE
// clause, so callers may append " AND ..." conditions.
func (s source) filter(q *sqlText, spans []span, allRoles bool) {
	s.ranges(q, spans)
	q.add("\n    WHERE ")
	s.rows(q, allRoles)
}

// prefilter is filter with the model and role conditions in the PREWHERE
// too, for a query that ARRAY JOINs: WHERE is applied after the ARRAY
// JOIN, PREWHERE before it. It ends inside the WHERE clause (WHERE 1).
func (s source) prefilter(q *sqlText, spans []span, allRoles bool) {
	s.ranges(q, spans)
	q.add(" AND ")
	s.rows(q, allRoles)
	q.add("\n    WHERE 1")
}

// ranges renders PREWHERE with the time ranges of spans.
func (s source) ranges(q *sqlText, spans []span) {
	q.add(" PREWHERE (")
	for i, sp := range spans {
		if i > 0 {
			q.add(" OR ")
		}
		q.add("("+s.ts()+" >= ? AND "+s.ts()+" < ?)", sp.from, sp.to)
	}
	q.add(")")
}

// rows renders the model and role conditions.
func (s source) rows(q *sqlText, allRoles bool) {
	q.add(s.col(s.m.Columns.Model)+" = ?", s.m.ModelValue)
	if s.m.Shadow.Mode == configs.ShadowRows {
		if allRoles {
			q.add(" AND "+s.col(s.m.Columns.Role)+" IN (?, ?)", s.m.Shadow.ProductionRole, s.m.Shadow.ShadowRole)
		} else {
			q.add(" AND "+s.col(s.m.Columns.Role)+" = ?", s.m.Shadow.ProductionRole)
		}
	}
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

// windowOf is window as a renderer, for the levels that take one.
func (s source) windowOf(w windows) func(*sqlText) {
	return func(q *sqlText) { s.window(q, w) }
}

// sliceValue renders a slice column's value as a string, NULL and empty
// as NullSlice, and a real value that starts with '(' with one more '('
// in front, so that no real value reads as NullSlice (sliceLabel undoes
// it).
func (s source) sliceValue(c string) string {
	v := fmt.Sprintf("ifNull(toString(%s), '')", s.col(c))
	return fmt.Sprintf("multiIf(%[1]s = '', '%[2]s', substring(%[1]s, 1, 1) = '(', concat('(', %[1]s), %[1]s)", v, NullSlice)
}

// sliceLabel turns a slice value as sliceValue renders it into the value
// findings carry: NullSlice stays (mlwatch's bucket); a real value that
// starts with '(' or '"' is quoted (strconv.Quote), so that it can be
// told from NullSlice and OtherSlice in data (JSON slice, fingerprints)
// and display (labels, summaries); every other value is itself. A
// single-'(' value other than NullSlice (a rollup fed by an older view)
// is taken as real.
func sliceLabel(sv string) string {
	switch {
	case sv == NullSlice:
		return sv
	case strings.HasPrefix(sv, "(("):
		sv = sv[1:]
	}
	if strings.HasPrefix(sv, "(") || strings.HasPrefix(sv, "\"") {
		return strconv.Quote(sv)
	}
	return sv
}

// expand renders the select-list items that multiply a row into one row
// per slice it belongs to: _si, 0 for the aggregate and i+1 for the i-th
// slice column, and sv, the row's value there (vals[i], an expression of
// the enclosing query; ” for the aggregate). Numbering the slices keeps
// arrays of tuples and the column names out of the per-row work. Values
// are not cut to the top K here: ranked does that over the aggregated
// result, so no second scan ranks them.
func expand(q *sqlText, vals []string) {
	if len(vals) == 0 {
		q.add("toUInt8(0) AS _si, '' AS sv")
		return
	}
	q.add(fmt.Sprintf("arrayJoin(range(%d)) AS _si, multiIf(_si = 0, ''", len(vals)+1))
	for i, v := range vals[:len(vals)-1] {
		q.add(fmt.Sprintf(", _si = %d, %s", i+1, v))
	}
	q.add(", " + vals[len(vals)-1] + ") AS sv")
}

// sliceName renders sc, the slice column of _si (” for the aggregate).
func sliceName(q *sqlText, cols []string) {
	q.add("arrayElement(?, _si + 1) AS sc", append([]string{""}, cols...))
}

// sliceSelect renders the SELECT list of a per-slice level: the slice's
// column (sc) and value (sv), the window w (an expression AS w, or w),
// each aggs[i] AS names[i], then the slice variables.
func sliceSelect(q *sqlText, slices []string, w string, names, aggs []string) {
	q.add("    SELECT ")
	sliceName(q, slices)
	q.add(", sv, " + w)
	for i, c := range names {
		q.add(", " + aggs[i] + " AS " + c)
	}
	q.add(", ")
	expand(q, sliceVars(len(slices)))
}

// sliceValues renders ", <value of column i> AS _c<i>" for each slice
// column, in the per-row level.
func (s source) sliceValues(q *sqlText, cols []string) {
	for i, c := range cols {
		q.add(fmt.Sprintf(", %s AS _c%d", s.sliceValue(c), i))
	}
}

// rankedLevel sums level's rows (per slice number _si, value sv, window
// w and, with feature, the feature) as aggs, names the slices, and keeps
// the top K (ranked) with the result columns cols.
func (s source) rankedLevel(level *sqlText, slices []string, feature bool, aggs string, cols []string, rank string) *sqlText {
	keys := "w"
	if feature {
		keys = "feature, w"
	}
	inner := &sqlText{}
	inner.add("    SELECT ")
	sliceName(inner, slices)
	inner.add(", sv, " + keys + ", " + aggs)
	inner.addFrom("    ", level)
	inner.add("\n    GROUP BY _si, sv, " + keys)
	return s.ranked(inner, feature, cols, rank)
}

// ranked wraps inner, a query of one row per slice (sc, sv[, feature]) and
// window w with the given further columns, and keeps for each slice column
// its top_k values by rank (an expression of inner's columns summed over
// every window): LIMIT BY over the small aggregated result instead of a
// second scan ranking the values. The tail is not lost: every column but
// the per-row extremes is additive, so the evaluation rebuilds OtherSlice
// as the aggregate less the kept values (see fold).
func (s source) ranked(inner *sqlText, feature bool, cols []string, rank string) *sqlText {
	q := &sqlText{}
	keys := "sc, sv"
	if feature {
		keys = "sc, sv, feature"
	}
	q.add("SELECT " + keys + ", _e.1 AS w")
	if feature {
		q.add(", _e.2 AS feature")
	}
	first := 2
	if feature {
		first = 3
	}
	for i, c := range cols {
		q.add(fmt.Sprintf(", _e.%d AS %s", first+i, c))
	}
	// One array of tuples: groupArray would skip a NULL column value and
	// misalign parallel arrays.
	q.add("\nFROM (\n  SELECT sc, sv, sum(" + rank + ") AS _rank, groupArray((w")
	if feature {
		q.add(", feature")
	}
	for _, c := range cols {
		q.add(", " + c)
	}
	q.add(")) AS _es")
	q.addFrom("  ", inner)
	q.add("\n  GROUP BY sc, sv\n  ORDER BY sc, _rank DESC, sv\n  LIMIT ? BY sc\n) ARRAY JOIN _es AS _e", s.d.TopK)
	return q.add("\nORDER BY " + keys + ", w")
}

// counted renders the common query of detectors whose figures are counts
// per slice and window: one aggregation per slice and window over the
// table (aggs, named sums; defs are the per-row values they use, see
// inline), and ranked keeps the top K. extra may add " AND ..." row
// conditions.
func (s source) counted(w windows, slices []string, defs []rowDef, aggs, sums []string, allRoles bool, extra func(*sqlText)) *sqlText {
	c := countedSpec{slices: slices, defs: defs, aggs: aggs, sums: sums, allRoles: allRoles, extra: extra}
	return s.countedOuter(c, s.countedLevel(c, s.windowOf(w), w.all(), false))
}

// countedSpec is what counted aggregates: see counted.
type countedSpec struct {
	slices     []string
	defs       []rowDef
	aggs, sums []string
	allRoles   bool
	extra      func(*sqlText)
}

// countedLevel is counted's aggregation over the rows of spans: per slice
// number _si, value sv and w (rendered by win: the window, or a time
// bucket for incremental.go), the sums named with a leading '_', and with
// rows the rows per group, _rows.
func (s source) countedLevel(c countedSpec, win func(*sqlText), spans []span, rows bool) *sqlText {
	level := &sqlText{}
	level.add("      SELECT _si, sv, ")
	win(level)
	level.add(" AS w")
	for i, col := range c.sums {
		level.add(", " + c.aggs[i] + " AS _" + col)
	}
	if rows {
		level.add(", count() AS _rows")
	}
	level.add(", ")
	expand(level, s.sliceExprs(c.slices))
	level.add("\n      FROM " + s.table + "\n     ")
	s.filter(level, spans, c.allRoles)
	if c.extra != nil {
		c.extra(level)
	}
	level.add("\n      GROUP BY _si, sv, w")
	inline(level, c.defs...)
	return level
}

// countedOuter names the slices of countedLevel's rows and keeps the top
// K.
func (s source) countedOuter(c countedSpec, level *sqlText) *sqlText {
	inner := &sqlText{}
	inner.add("    SELECT ")
	sliceName(inner, c.slices)
	inner.add(", sv, w")
	for _, col := range c.sums {
		inner.add(", _" + col + " AS " + col)
	}
	inner.addFrom("    ", level)
	return s.ranked(inner, false, c.sums, c.sums[0])
}

// countedPartial is countedLevel's partial form (incremental.go): keys
// _si and sv, the sums as additive columns.
func (s source) countedPartial(c countedSpec) partialSpec {
	sums := make([]string, len(c.sums))
	for i, col := range c.sums {
		sums[i] = "_" + col
	}
	return partialSpec{
		keys:     []pcol{{"_si", "UInt8"}, {"sv", "String"}},
		counted:  "_si = 0",
		sums:     sums,
		allRoles: c.allRoles,
		extra:    c.extra,
		level: func(win func(*sqlText), spans []span, rows bool) *sqlText {
			return s.countedLevel(c, win, spans, rows)
		},
		outer: func(level *sqlText) *sqlText { return s.countedOuter(c, level) },
	}
}

// sliceExprs are the slice values of the given columns as expressions of
// the table's row (see sliceValue), for expand at the level that reads it.
func (s source) sliceExprs(cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = s.sliceValue(c)
	}
	return out
}

// sliceVars are the names _c0.._c{n-1} of slice values carried as columns.
func sliceVars(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("_c%d", i)
	}
	return out
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
		k := [3]string{store.Str(row[isc]), sliceLabel(store.Str(row[isv])), ""}
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
	sortGroups(out)
	return out, nil
}

// sortGroups orders groups by slice column, value and feature.
func sortGroups(gs []*group) {
	sort.SliceStable(gs, func(i, j int) bool {
		a, b := gs[i], gs[j]
		if a.col != b.col {
			return a.col < b.col
		}
		if a.val != b.val {
			return a.val < b.val
		}
		return a.feature < b.feature
	})
}
