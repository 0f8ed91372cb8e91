package detectors

import (
	"fmt"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Minute rollups. A model with rollup.table gets two AggregatingMergeTree
// tables, each fed by a materialized view from the prediction table:
//
//   - TABLE: per model value, role (0 production, 1 shadow), minute and
//     slice (the aggregate ” and each of the model's slice columns with
//     its value, one row each: not per combination of values, which would
//     multiply): the row count, the blocked count, the count of invalid
//     decisions and the score histogram (sumMap of the exact float bins,
//     invalid scores in nullBin). A rollup whose view predates
//     bad_decisions (schema apply adds the column, not the new view) reads
//     0 there and counts decisions other than 0 as blocks, as it did.
//   - TABLE_features: per model value, minute and feature (production
//     rows; feature ” counts the rows): the element count, non-null and
//     zero counts, finite extremes and the value histogram.
//
// block_rate, volume and feature_health with source: rollup read these
// instead of the rows, so an evaluation reads windows × minutes × slice
// values whatever the traffic. The figures are the raw queries'
// (same bins, same counts), so findings are the same; windows start and
// end on whole minutes. Shadow pairing needs request ids, golden rows need
// arbitrary columns, freshness and staleness read a few rows: those stay
// on the prediction table.

// RollupDDL is a model's rollup: the tables to create (store.Apply) in
// Database, then the views that feed them (store.ApplyViews).
type RollupDDL struct {
	Database string
	Tables   []store.TableDef
	Views    []store.ViewDef

	// selects are the views' SELECTs cut where a time filter goes.
	selects []rollupSelect
}

// rollupSelect is a view's SELECT before and after the end of its WHERE.
type rollupSelect struct {
	to         store.Table
	head, tail *sqlText
	ts         string
}

// Backfill renders, for each rollup table, the INSERT ... SELECT that
// rolls up the rows of [from, to) already in the prediction table: a view
// sees only rows inserted after it exists. Each range must be rolled up
// once (a range run twice counts twice); ranges of a day at a time keep
// the server's memory small.
func (r *RollupDDL) Backfill(from, to time.Time) ([]string, error) {
	var out []string
	for _, sel := range r.selects {
		q := &sqlText{}
		q.add("INSERT INTO " + sel.to.Quoted() + "\n")
		q.add(sel.head.b.String(), sel.head.args...)
		q.add(" AND "+sel.ts+" >= ? AND "+sel.ts+" < ?", from, to)
		q.add(sel.tail.b.String(), sel.tail.args...)
		text, err := q.bind()
		if err != nil {
			return nil, fmt.Errorf("backfill %s: %w", sel.to, err)
		}
		out = append(out, text)
	}
	return out, nil
}

// rollupTables are the rollup's two tables; the database defaults to the
// prediction table's.
func rollupTables(m *configs.Model) (main, feats store.Table) {
	t := store.ParseTable(m.Rollup.Table)
	if t.Database == "" {
		t.Database = store.ParseTable(m.Table).Database
	}
	return t, store.Table{Database: t.Database, Name: t.Name + "_features"}
}

const histType = "AggregateFunction(sumMap, Array(UInt64), Array(UInt64))"

// Rollup renders the DDL of model m's rollup (m.Rollup must be set).
func Rollup(m *configs.Model) (*RollupDDL, error) {
	if m.Rollup == nil || m.Rollup.Table == "" {
		return nil, fmt.Errorf("model %s has no rollup table", m.Name)
	}
	if m.Shadow.Mode == configs.ShadowColumns {
		return nil, fmt.Errorf("model %s: rollups support shadow mode rows or none", m.Name)
	}
	main, feats := rollupTables(m)
	s := source{m: m, table: store.ParseTable(m.Table).Quoted()}
	c := m.Columns
	out := &RollupDDL{Database: main.Database}
	q := &sqlText{}

	// Rows: role, slice, counts and the score histogram.
	key := []string{"model_value", "role_code", "minute", "slice", "value"}
	out.Tables = append(out.Tables, store.TableDef{Name: main.Name, Columns: [][2]string{
		{"model_value", "String"}, {"role_code", "UInt8"}, {"minute", "DateTime"}, {"slice", "String"}, {"value", "String"},
		{"n", "AggregateFunction(count)"}, {"blocked", "AggregateFunction(sum, UInt64)"}, {"score_hist", histType},
		{"bad_decisions", "AggregateFunction(sum, UInt64)"},
	}, Engine: "AggregatingMergeTree PARTITION BY toYYYYMMDD(minute) ORDER BY (" + strings.Join(key, ", ") + ")"})
	// Expressions inline (18.16 loses a subquery's aliases in a view); the
	// slice tuple's alias lives inside the expression, so that only slice
	// and value are columns of the SELECT.
	role, dec, score := s.roleExprs(q)
	q.add("SELECT toString(" + s.col(c.Model) + ") AS model_value, toUInt8(" + role + ") AS role_code, toStartOfMinute(" + s.ts() + ") AS minute,\n  ")
	if len(m.Slices) == 0 {
		q.add("'' AS slice, '' AS value")
	} else {
		q.add("(arrayJoin([('', '')")
		for _, sl := range m.Slices {
			q.add(", (" + store.QuoteString(sl) + ", " + s.sliceValue(sl) + ")")
		}
		q.add("]) AS _s).1 AS slice, _s.2 AS value")
	}
	q.add(",\n  countState() AS n, sumState(toUInt64(" + dec + " = 1)) AS blocked, sumMapState([" + scoreBin(score) + "], [toUInt64(1)]) AS score_hist,\n")
	q.add(fmt.Sprintf("  sumState(toUInt64(%s = %d)) AS bad_decisions\n", dec, decInvalid))
	q.add("FROM " + s.table)
	if m.Shadow.Mode == configs.ShadowRows {
		q.add("\nWHERE "+s.col(c.Role)+" IN (?, ?)", m.Shadow.ProductionRole, m.Shadow.ShadowRole)
	} else {
		q.add("\nWHERE 1")
	}
	tail := (&sqlText{}).add("\nGROUP BY " + strings.Join(key, ", "))
	out.selects = append(out.selects, rollupSelect{to: main, head: q, tail: tail, ts: s.ts()})
	q = (&sqlText{}).add(q.b.String(), q.args...).add(tail.b.String())
	sel, err := q.bind()
	if err != nil {
		return nil, fmt.Errorf("rollup %s: %w", main, err)
	}
	out.Views = append(out.Views, store.ViewDef{Name: main.Name + "_mv", To: main, Select: sel})

	// Features of production rows.
	out.Tables = append(out.Tables, store.TableDef{Name: feats.Name, Columns: [][2]string{
		{"model_value", "String"}, {"minute", "DateTime"}, {"feature", "String"},
		{"n", "AggregateFunction(count)"}, {"nn", "AggregateFunction(sum, UInt64)"}, {"zeros", "AggregateFunction(sum, UInt64)"},
		{"vmin", "AggregateFunction(min, Float64)"}, {"vmax", "AggregateFunction(max, Float64)"}, {"hist", histType},
	}, Engine: "AggregatingMergeTree PARTITION BY toYYYYMMDD(minute) ORDER BY (model_value, minute, feature)"})
	f := &featureHealth{base: base[configs.FeatureHealthParams]{src: s}, names: m.Features.Names}
	q = &sqlText{}
	fin := "ifNull(isFinite(toFloat64(_v)), 0)"
	q.add("SELECT toString(" + s.col(c.Model) + ") AS model_value, toStartOfMinute(" + s.ts() + ") AS minute, _f AS feature,\n")
	q.add("  countState() AS n, sumState(toUInt64(" + fin + ")) AS nn, sumState(toUInt64(ifNull(_v = 0, 0))) AS zeros,\n")
	q.add("  minState(if(" + fin + ", toFloat64(assumeNotNull(_v)), inf)) AS vmin, maxState(if(" + fin + ", toFloat64(assumeNotNull(_v)), -inf)) AS vmax,\n")
	q.add("  sumMapState([" + bin("_v") + "], [toUInt64(1)]) AS hist\n")
	q.add("FROM " + s.table + "\nARRAY JOIN ")
	if m.Features.Layout == configs.LayoutColumns {
		vals := []string{"CAST(NULL AS Nullable(Float64))"}
		for _, n := range f.names {
			vals = append(vals, "toNullable(toFloat64("+store.MustIdent(n)+"))")
		}
		q.add("? AS _f, ["+strings.Join(vals, ", ")+"] AS _v", append([]string{""}, f.names...))
	} else {
		// Values resized to the names, as the raw query does: a row with
		// arrays of unequal length must not fail the insert.
		names := store.MustIdent(m.Features.NamesColumn)
		q.add("arrayConcat([''], " + names + ") AS _f, ")
		q.add("arrayConcat([CAST(NULL AS Nullable(Float64))], arrayResize(" + store.MustIdent(m.Features.ValuesColumn) + ", length(" + names + "), CAST(NULL AS Nullable(Float64)))) AS _v")
	}
	if m.Shadow.Mode == configs.ShadowRows {
		q.add("\nWHERE "+s.col(c.Role)+" = ?", m.Shadow.ProductionRole)
	} else {
		q.add("\nWHERE 1")
	}
	tail = (&sqlText{}).add("\nGROUP BY model_value, minute, feature")
	out.selects = append(out.selects, rollupSelect{to: feats, head: q, tail: tail, ts: s.ts()})
	q = (&sqlText{}).add(q.b.String(), q.args...).add(tail.b.String())
	if sel, err = q.bind(); err != nil {
		return nil, fmt.Errorf("rollup %s: %w", feats, err)
	}
	out.Views = append(out.Views, store.ViewDef{Name: feats.Name + "_mv", To: feats, Select: sel})
	return out, nil
}

// rollupFilter renders the rollup's row filter after FROM: the windows'
// minutes as PREWHERE, the model value (and role) as WHERE.
func (s source) rollupFilter(q *sqlText, spans []span, role string) {
	q.add(" PREWHERE (")
	for i, sp := range spans {
		if i > 0 {
			q.add(" OR ")
		}
		q.add("(minute >= ? AND minute < ?)", sp.from, sp.to)
	}
	q.add(")\n    WHERE model_value = ?", s.m.ModelValue)
	if role != "" {
		q.add(" AND " + role)
	}
}

// rollupWindow renders window column w over the rollup's minutes.
func (s source) rollupWindow(q *sqlText, w windows) {
	q.add("multiIf(")
	for i, sp := range w.all() {
		q.add("minute >= ? AND minute < ?, ", sp.from, sp.to)
		q.add(fmt.Sprintf("%d, ", i))
	}
	q.add("255)")
}
