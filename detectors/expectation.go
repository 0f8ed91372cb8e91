package detectors

import (
	"fmt"
	"strings"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// expectation checks golden requests, as data tests do: the rows that the
// configured structured matchers select (no SQL from config) must have a
// block rate within [min_rate, max_rate]. A breach, significant by an
// exact binomial test against the bound, is model_behavior.
type expectation struct {
	base[configs.ExpectationParams]
}

// MetricExpected is the matched rows' block rate.
const MetricExpected = "expected_block_rate"

func newExpectation(d *Detector) (kind, error) {
	p := d.cfg.Expectation
	if p == nil || len(p.Match) == 0 || (p.MinRate == nil && p.MaxRate == nil) {
		return nil, fmt.Errorf("expectation needs match and min_rate or max_rate")
	}
	for _, m := range p.Match {
		switch m.Op {
		case configs.OpEq, configs.OpNe, configs.OpPrefix, configs.OpIn:
		default:
			return nil, fmt.Errorf("unknown match op %q", m.Op)
		}
	}
	b, err := newBase(d, configs.KindExpectation, p)
	return &expectation{b}, err
}

// match renders the matchers as bound conditions on toString(column).
func (e *expectation) match(q *sqlText) {
	for _, m := range e.p.Match {
		c := "toString(" + store.MustIdent(m.Column) + ")"
		switch m.Op {
		case configs.OpEq:
			q.add(" AND "+c+" = ?", m.Value)
		case configs.OpNe:
			q.add(" AND "+c+" != ?", m.Value)
		case configs.OpPrefix:
			q.add(" AND startsWith("+c+", ?)", m.Value)
		case configs.OpIn:
			q.add(" AND has(?, "+c+")", m.Values)
		}
	}
}

// describe renders the matchers for a summary.
func (e *expectation) describe() string {
	parts := make([]string, len(e.p.Match))
	for i, m := range e.p.Match {
		switch m.Op {
		case configs.OpIn:
			parts[i] = fmt.Sprintf("%s in [%s]", m.Column, strings.Join(m.Values, ", "))
		case configs.OpPrefix:
			parts[i] = fmt.Sprintf("%s prefix %q", m.Column, m.Value)
		case configs.OpNe:
			parts[i] = fmt.Sprintf("%s != %q", m.Column, m.Value)
		default:
			parts[i] = fmt.Sprintf("%s = %q", m.Column, m.Value)
		}
	}
	return strings.Join(parts, ", ")
}

// The expectation has no baseline: only the current window is read.
func (e *expectation) query(w windows) *sqlText {
	w.base = nil
	// A decision other than 0 and 1 is neither a block nor a pass: it
	// stays out of the rate (block_rate reports it).
	c := e.spec()
	return e.src.counted(w, c.slices, c.defs, c.aggs, c.sums, false, c.extra)
}

// spec is what the expectation counts: valid and blocked decisions of
// the matched rows.
func (e *expectation) spec() countedSpec {
	dec := def("_dec", decision(e.src.col(e.src.m.Columns.Decision)))
	return countedSpec{slices: e.d.slices(), defs: []rowDef{dec}, aggs: []string{fmt.Sprintf("countIf(_dec < %d)", decInvalid), "countIf(_dec = 1)"},
		sums: []string{"n", "x"}, extra: e.match}
}

// partial is the expectation's query in partial form (incremental.go).
func (e *expectation) partial() partialSpec {
	p := e.src.countedPartial(e.spec())
	p.windows = func(w windows) windows {
		w.base = nil
		return w
	}
	return p
}

func (e *expectation) evaluate(res *store.Result, r *run) error {
	groups, c, err := readGroups(res, "", foldSpec{sums: []string{"n", "x"}}, e.d.cfg.TopK, "n", "x")
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		r.skip(map[string]string{}, "")
	}
	for _, g := range groups {
		cur := Prop{g.num(0, c[1]), g.num(0, c[0])}
		if !e.d.enough(cur.N) {
			r.skip(sliceOf(g.col, g.val), "")
			continue
		}
		rate := cur.Rate()
		check := func(bound float64, below bool) {
			h := rateBound(MetricExpected, sliceOf(g.col, g.val), cur, bound, !below)
			side := "above the maximum"
			if below {
				side = "below the minimum"
			}
			where := ""
			if g.col != "" {
				where = " in " + label(g.col, g.val)
			}
			h.summary = fmt.Sprintf("golden rows (%s)%s block rate %s is %s %s (%s of %s blocked, %s)",
				e.describe(), where, pct(rate), side, pct(bound), count(cur.X), count(cur.N), pval(h.PValue))
			r.add(h)
		}
		if e.p.MinRate != nil {
			check(*e.p.MinRate, true)
		}
		if e.p.MaxRate != nil {
			check(*e.p.MaxRate, false)
		}
	}
	return nil
}

func (e *expectation) spans(w windows) []span { return []span{w.cur} }
