package detectors

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/mlwatch/mlwatch/store"
)

// col is a result column's position; get returns its value in a window.
type col int

func cols(res *store.Result, names ...string) ([]col, error) {
	out := make([]col, len(names))
	for i, n := range names {
		j := res.Index(n)
		if j < 0 {
			return nil, fmt.Errorf("result lacks column %s", n)
		}
		out[i] = col(j)
	}
	return out, nil
}

// num is the number in column c of window w (0 when the window has no row).
func (g *group) num(w int, c col) float64 {
	row, ok := g.byW[w]
	if !ok {
		return 0
	}
	f := store.Float(row[c])
	if math.IsNaN(f) {
		return 0
	}
	return f
}

// has reports whether column c of window w holds a value (not NULL).
func (g *group) has(w int, c col) bool {
	row, ok := g.byW[w]
	return ok && row[c] != nil
}

// base sums column c over the baseline windows 1..nb.
func (g *group) base(nb int, c col) float64 {
	var s float64
	for w := 1; w <= nb; w++ {
		s += g.num(w, c)
	}
	return s
}

// days returns the per-window proportions x/n of the baseline windows.
func (g *group) days(nb int, x, n col) []Prop {
	out := make([]Prop, nb)
	for w := 1; w <= nb; w++ {
		out[w-1] = Prop{g.num(w, x), g.num(w, n)}
	}
	return out
}

// hist reads window w's histogram from parallel arrays of bins and counts,
// leaving out nullBin.
func (g *group) hist(w int, bins, counts col) Hist {
	h := g.allBins(w, bins, counts)
	delete(h, nullBin)
	return h
}

// nulls is the count of window w's histogram in nullBin: the rows whose
// value was NULL, NaN, infinite or (scores) out of range.
func (g *group) nulls(w int, bins, counts col) float64 {
	return g.allBins(w, bins, counts)[nullBin]
}

// allBins reads window w's histogram, nullBin included.
func (g *group) allBins(w int, bins, counts col) Hist {
	h := Hist{}
	row, ok := g.byW[w]
	if !ok {
		return h
	}
	bs, _ := row[bins].([]any)
	cs, _ := row[counts].([]any)
	for i := range bs {
		if i >= len(cs) {
			break
		}
		h[uint64(store.Int(bs[i]))] += store.Float(cs[i])
	}
	return h
}

// Hist is a sparse histogram of float64 values by bin (see bin in
// query.go: the top 15 bits of the float, so bins order like values).
type Hist map[uint64]float64

// binValue is a value inside bin b (the edge nearest zero), for ordering.
func binValue(b uint64) float64 { return math.Float64frombits(b << 49) }

// Add adds o's counts into h.
func (h Hist) Add(o Hist) {
	for b, c := range o {
		h[b] += c
	}
}

// Total is the sum of the counts.
func (h Hist) Total() float64 {
	var s float64
	for _, c := range h {
		s += c
	}
	return s
}

// Max is the largest share of one bin (0 for an empty histogram).
func (h Hist) Max() float64 {
	t := h.Total()
	if t == 0 {
		return 0
	}
	var m float64
	for _, c := range h {
		m = math.Max(m, c)
	}
	return m / t
}

// Deciles returns the upper edges of up to ten groups of the histogram's
// bins holding about a tenth of its mass each: PSI's "bins cut at
// baseline deciles", with tied values (a bin holding more than a tenth)
// kept whole, as qcut does with duplicates dropped. Values above the last
// edge fall in the last group.
func (h Hist) Deciles() []float64 {
	keys := h.sorted()
	total := h.Total()
	var edges []float64
	var cum float64
	next := 1
	for i, b := range keys {
		cum += h[b]
		if next < 10 && cum >= total*float64(next)/10 && i < len(keys)-1 {
			edges = append(edges, binValue(b))
			for next < 10 && cum >= total*float64(next)/10 {
				next++
			}
		}
	}
	return edges
}

func (h Hist) sorted() []uint64 {
	keys := make([]uint64, 0, len(h))
	for b := range h {
		keys = append(keys, b)
	}
	sort.Slice(keys, func(i, j int) bool { return binValue(keys[i]) < binValue(keys[j]) })
	return keys
}

// Group sums the histogram into the len(edges)+1 groups the edges cut.
func (h Hist) Group(edges []float64) []float64 {
	out := make([]float64, len(edges)+1)
	for b, c := range h {
		out[sort.SearchFloat64s(edges, binValue(b))] += c
	}
	return out
}

// drift is the PSI of a current histogram against a baseline (pooled over
// days) over the baseline's deciles, with Jensen–Shannon, the excess PSI
// of the baseline days among themselves (day-to-day drift, subtracted
// before deciding) and the χ² p-value of what remains.
type drift struct {
	psi, js, excess, p float64
	bins               int
}

func histDrift(cur Hist, days []Hist) drift {
	base := Hist{}
	for _, d := range days {
		base.Add(d)
	}
	nan := math.NaN()
	out := drift{psi: nan, js: nan, p: nan}
	edges := base.Deciles()
	if len(edges) == 0 || cur.Total() == 0 {
		return out
	}
	out.bins = len(edges) + 1
	c, b := cur.Group(edges), base.Group(edges)
	out.psi, out.js = PSI(c, b), JS(c, b)
	// Day-to-day drift: each baseline day against the other days.
	var sum float64
	k := 0
	for _, d := range days {
		nd := d.Total()
		rest := base.Total() - nd
		if nd == 0 || rest == 0 || len(days) < 2 {
			continue
		}
		r := Hist{}
		r.Add(base)
		for bn, cn := range d {
			r[bn] -= cn
		}
		sum += PSI(d.Group(edges), r.Group(edges)) - PSINoise(nd, rest, out.bins)
		k++
	}
	if k > 0 {
		out.excess = math.Max(0, sum/float64(k))
	}
	out.p = PSITest(out.psi-out.excess, cur.Total(), base.Total(), out.bins)
	return out
}

// Formatting for summaries.

// pct renders a rate as a percentage with one decimal (two below 0.1%).
func pct(x float64) string {
	switch {
	case math.IsNaN(x):
		return "n/a"
	case x != 0 && math.Abs(x) < 0.001:
		return strconv.FormatFloat(100*x, 'f', 2, 64) + "%"
	}
	return strconv.FormatFloat(100*x, 'f', 1, 64) + "%"
}

// count renders a count with thousands separators: 61,008.
func count(x float64) string {
	s := strconv.FormatFloat(math.Round(x), 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// label names a slice in a summary: "overall", "FR", "country (null)",
// and a real value that sliceLabel quoted with its column:
// `country "(null)"`.
func label(col, val string) string {
	switch {
	case col == "":
		return "overall"
	case strings.HasPrefix(val, "("), strings.HasPrefix(val, "\""):
		return col + " " + val
	}
	return val
}

// fnum renders a figure with up to three significant decimals.
func fnum(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return strconv.FormatFloat(x, 'g', 3, 64)
}

// pval renders a p-value for a summary.
func pval(p float64) string {
	switch {
	case math.IsNaN(p):
		return ""
	case p < 1e-6:
		return "p<1e-6"
	}
	return "p=" + strconv.FormatFloat(p, 'g', 2, 64)
}

// details builds a details map without NaN figures (JSON has no NaN).
func details(kv ...any) map[string]float64 {
	out := map[string]float64{}
	for i := 0; i+1 < len(kv); i += 2 {
		f, _ := kv[i+1].(float64)
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			out[kv[i].(string)] = f
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// foldSpec names a result's additive columns, from which fold rebuilds the
// OtherSlice of a slice column cut to its top K: plain sums, and
// histograms as (bins, counts) column pairs.
type foldSpec struct {
	sums  []string
	hists [][2]string
}

// readGroups reads a kind's result: its rows grouped by slice (and by
// feature when featureCol is set) and window, the slices past topK folded
// as spec says, and the indices of the named columns.
func readGroups(res *store.Result, featureCol string, spec foldSpec, topK int, names ...string) ([]*group, []col, error) {
	groups, err := groupRows(res, featureCol)
	if err != nil {
		return nil, nil, err
	}
	if groups, err = fold(res, groups, spec, topK); err != nil {
		return nil, nil, err
	}
	c, err := cols(res, names...)
	return groups, c, err
}

// fold adds, for each slice column whose values ranked cut to the top K,
// the OtherSlice group: in every window (and for every feature) the
// aggregate's figures less the kept values' figures. Columns that are not
// additive (per-row extremes) stay nil in it. A column with fewer than
// topK values was not cut, and one whose kept values add up to the
// aggregate gets no OtherSlice either.
func fold(res *store.Result, groups []*group, spec foldSpec, topK int) ([]*group, error) {
	sums, err := cols(res, spec.sums...)
	if err != nil {
		return nil, err
	}
	type hcol struct{ bins, counts col }
	var hists []hcol
	for _, h := range spec.hists {
		c, err := cols(res, h[0], h[1])
		if err != nil {
			return nil, err
		}
		hists = append(hists, hcol{c[0], c[1]})
	}
	isc, isv, iw, ifeat := res.Index("sc"), res.Index("sv"), res.Index("w"), res.Index("feature")
	aggs := map[string]*group{}
	kept := map[[2]string][]*group{}
	var order [][2]string
	values := map[string]map[string]bool{}
	for _, g := range groups {
		if g.col == "" {
			aggs[g.feature] = g
			continue
		}
		if values[g.col] == nil {
			values[g.col] = map[string]bool{}
		}
		values[g.col][g.val] = true
		k := [2]string{g.col, g.feature}
		if kept[k] == nil {
			order = append(order, k)
		}
		kept[k] = append(kept[k], g)
	}
	out := groups
	for _, k := range order {
		agg := aggs[k[1]]
		if agg == nil || len(values[k[0]]) < topK {
			continue
		}
		other := &group{col: k[0], val: OtherSlice, feature: k[1], byW: map[int][]any{}}
		for w := range agg.byW {
			row := make([]any, len(res.Columns))
			row[isc], row[isv], row[iw] = k[0], OtherSlice, uint64(w)
			if ifeat >= 0 {
				row[ifeat] = k[1]
			}
			left := false
			for _, c := range sums {
				v := agg.num(w, c)
				for _, g := range kept[k] {
					v -= g.num(w, c)
				}
				if math.Abs(v) < 0.5 {
					v = math.Round(v)
				}
				left = left || v != 0
				row[c] = v
			}
			for _, h := range hists {
				rest := agg.allBins(w, h.bins, h.counts)
				for _, g := range kept[k] {
					for b, c := range g.allBins(w, h.bins, h.counts) {
						rest[b] -= c
					}
				}
				var bs, cs []any
				for _, b := range rest.sorted() {
					if rest[b] > 0 {
						bs, cs = append(bs, b), append(cs, rest[b])
					}
				}
				row[h.bins], row[h.counts] = bs, cs
			}
			if left {
				other.byW[w] = row
			}
		}
		if len(other.byW) > 0 {
			out = append(out, other)
		}
	}
	sortGroups(out)
	return out, nil
}
