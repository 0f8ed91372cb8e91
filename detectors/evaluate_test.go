package detectors

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Pure evaluation: hand-made query results in, findings out. The queries
// themselves run against both engines in integration_test.go and
// query_test.go.

const testConfig = `
models:
  - name: fraud
    table: predictions
    slices: [country]
    owners: {product: p, infra: i}
  - name: plain
    table: predictions
    shadow: {mode: none}
    owners: {product: p, infra: i}
receivers:
  - {name: p, webhook: {url: "http://127.0.0.1:1/"}}
  - {name: i, webhook: {url: "http://127.0.0.1:1/"}}
detectors:
`

// testDetector builds a detector from one YAML list item under detectors:.
func testDetector(t *testing.T, item string) *Detector {
	t.Helper()
	cfg, err := configs.Parse("test.yaml", []byte(testConfig+item), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	d, err := New(cfg, &cfg.Detectors[0])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var testAt = time.Date(2026, 11, 16, 15, 0, 0, 0, time.UTC)

// decide evaluates a hand-made result as Evaluate would.
func decide(t *testing.T, d *Detector, res *store.Result) *Result {
	t.Helper()
	w := newWindows(d.cfg, testAt)
	r := &run{d: d, w: w}
	if err := d.impl.evaluate(res, r); err != nil {
		t.Fatal(err)
	}
	out := &Result{}
	r.finish(out)
	return out
}

func result(names []string, rows ...[]any) *store.Result {
	res := &store.Result{}
	for _, n := range names {
		res.Columns = append(res.Columns, store.Column{Name: n})
	}
	res.Rows = rows
	return res
}

// binOf is the query's histogram bin of a value.
func binOf(x float64) uint64 { return math.Float64bits(x+0) >> 49 }

// hist renders counts of values as the query's parallel arrays.
func hist(counts map[float64]float64) (bins, cnts []any) {
	agg := map[uint64]float64{}
	for v, c := range counts {
		agg[binOf(v)] += c
	}
	for b, c := range agg {
		bins = append(bins, b)
		cnts = append(cnts, uint64(c))
	}
	return bins, cnts
}

// brWin is one window of a block_rate slice: requests, blocked, shadow
// requests, shadow blocked; scores all in one bin unless hi is set (the
// share of scores in a high bin); bd more production rows with an invalid
// decision, and bs production rows with an invalid score (nullBin).
type brWin struct{ n, x, sn, sx, hi, bd, bs float64 }

func brRows(sc, sv string, wins ...brWin) [][]any {
	var rows [][]any
	for w, b := range wins {
		bins, bn := hist(map[float64]float64{0.01: b.n + b.bd - b.bs - b.n*b.hi, 0.7: b.n * b.hi, 0.02: 1})
		if b.bs > 0 {
			bins, bn = append(bins, uint64(nullBin)), append(bn, uint64(b.bs))
		}
		sbins, bsn := hist(map[float64]float64{0.01: b.sn, 0.7: 0, 0.02: 1})
		rows = append(rows, []any{sc, sv, uint64(w), uint64(b.n), uint64(b.x), uint64(b.sn), uint64(b.sx), bins, bn, sbins, bsn, uint64(b.bd), uint64(0)})
	}
	return rows
}

var brCols = append([]string{"sc", "sv", "w"}, blockRateCols...)

// week is a current window followed by seven baseline days.
func week(cur brWin, day func(i int) brWin) []brWin {
	out := []brWin{cur}
	for i := 0; i < 7; i++ {
		out = append(out, day(i))
	}
	return out
}

func steady(n, x float64) func(int) brWin {
	return func(int) brWin { return brWin{n: n, x: x, sn: n, sx: x} }
}

func TestBlockRateEvaluate(t *testing.T) {
	const det = `
  - name: br
    kind: block_rate
    model: fraud
    block_rate: {max_rate: 0.2, score_psi: false}
`
	frDays := func(i int) brWin {
		n := 8716.0
		if i == 6 {
			n = 8712
		}
		x := 52.0
		if i >= 5 {
			x = 53
		}
		return brWin{n: n, x: x, sn: n, sx: x}
	}
	agg := brRows("", "", week(brWin{n: 12000, x: 120, sn: 12000, sx: 120}, steady(12000, 120))...)
	tests := []struct {
		name    string
		rows    [][]any
		want    []string // class:metric:slice of each finding, in order
		summary string   // a finding summary that must appear
		skipped int
		// unchecked lists the slice values the run must name as unchecked.
		unchecked []string
	}{
		{
			name:    "slice block in production only",
			rows:    append(agg, brRows("country", "FR", week(brWin{n: 903, x: 440, sn: 903, sx: 4}, frDays)...)...),
			want:    []string{"model_behavior:block_rate:FR"},
			summary: "FR block rate 48.7% vs 0.6% baseline (n=903 vs 61,008), production only; shadow 0.4%",
		},
		{
			name:    "shadow moved too",
			rows:    append(agg, brRows("country", "BR", week(brWin{n: 903, x: 190, sn: 903, sx: 170}, frDays)...)...),
			want:    []string{"population_shift:block_rate:BR"},
			summary: "BR block rate 21.0% vs 0.6% baseline (n=903 vs 61,008); shadow moved too: 18.8% vs 0.6%",
		},
		{
			// FR's extra blocks lift the aggregate and each merchant
			// category by their share of FR's traffic: one alert, on FR.
			name: "one slice explains the aggregate and the other column",
			rows: concat(
				brRows("", "", week(brWin{n: 12000, x: 556, sn: 12000, sx: 120}, steady(12000, 120))...),
				brRows("country", "FR", week(brWin{n: 903, x: 440, sn: 903, sx: 4}, frDays)...),
				brRows("merchant_category", "retail", week(brWin{n: 3000, x: 139, sn: 3000, sx: 30}, steady(3000, 30))...),
				brRows("merchant_category", "grocery", week(brWin{n: 3000, x: 139, sn: 3000, sx: 30}, steady(3000, 30))...),
			),
			want:    []string{"model_behavior:block_rate:FR"},
			summary: "production only; shadow 0.4%; also moves overall and merchant_category grocery and retail",
		},
		{
			// FR's traffic leans to digital goods (the riskiest category,
			// blocked first): that category takes 1.7 times its share of
			// FR's extra blocks. Still FR's move, not a second page.
			name: "a cause spread unevenly over the other column",
			rows: concat(
				brRows("", "", week(brWin{n: 12000, x: 556, sn: 12000, sx: 120}, steady(12000, 120))...),
				brRows("country", "FR", week(brWin{n: 903, x: 440, sn: 903, sx: 4}, frDays)...),
				brRows("merchant_category", "digital_goods", week(brWin{n: 1000, x: 72, sn: 1000, sx: 10}, steady(1000, 10))...),
			),
			want:    []string{"model_behavior:block_rate:FR"},
			summary: "also moves overall and merchant_category digital_goods",
		},
		{
			// Electronics blocks half its traffic; CH, a low-risk country
			// that blocks almost nothing, moves further relatively than
			// electronics does, but by its share of electronics' extra
			// blocks: still electronics' move.
			name: "a category block explains a low-risk country",
			rows: concat(
				brRows("", "", week(brWin{n: 12000, x: 706, sn: 12000, sx: 120}, steady(12000, 120))...),
				brRows("merchant_category", "electronics", week(brWin{n: 1200, x: 600, sn: 1200, sx: 14}, steady(1200, 14))...),
				brRows("country", "CH", week(brWin{n: 272, x: 14, sn: 272, sx: 0}, steady(272, 0))...),
			),
			want:    []string{"model_behavior:block_rate:electronics"},
			summary: "also moves overall and country CH",
		},
		{
			// Digital goods has an incident of its own besides FR's: far
			// more extra blocks than FR's traffic there can hold. Both
			// fire; so does the aggregate, which neither explains alone.
			name: "a second cause in the other column still fires",
			rows: concat(
				brRows("", "", week(brWin{n: 12000, x: 756, sn: 12000, sx: 120}, steady(12000, 120))...),
				brRows("country", "FR", week(brWin{n: 903, x: 440, sn: 903, sx: 4}, frDays)...),
				brRows("merchant_category", "digital_goods", week(brWin{n: 1000, x: 240, sn: 1000, sx: 10}, steady(1000, 10))...),
			),
			want: []string{"model_behavior:block_rate:", "model_behavior:block_rate:FR", "model_behavior:block_rate:digital_goods"},
		},
		{
			// FR's spill makes digital goods move more (relatively) than BR's
			// own smaller surge; digital goods is FR's, so it cannot explain
			// BR away in turn: FR and BR fire, nothing else.
			name: "an explained slice explains nothing",
			rows: concat(
				brRows("", "", week(brWin{n: 10000, x: 620, sn: 10000, sx: 100}, steady(10000, 100))...),
				brRows("country", "FR", week(brWin{n: 1000, x: 510, sn: 1000, sx: 10}, steady(1000, 10))...),
				brRows("country", "BR", week(brWin{n: 700, x: 27, sn: 700, sx: 7}, steady(700, 7))...),
				brRows("merchant_category", "digital_goods", week(brWin{n: 1000, x: 110, sn: 1000, sx: 10}, steady(1000, 10))...),
			),
			want: []string{"model_behavior:block_rate:BR", "model_behavior:block_rate:FR"},
		},
		{
			// Everything triples: the aggregate says it once; a slice that
			// moved far more than the aggregate still fires on its own.
			name: "a broad move keeps the aggregate",
			rows: concat(
				brRows("", "", week(brWin{n: 12000, x: 400, sn: 12000, sx: 120}, steady(12000, 120))...),
				brRows("country", "DE", week(brWin{n: 3000, x: 90, sn: 3000, sx: 30}, steady(3000, 30))...),
				brRows("country", "US", week(brWin{n: 3000, x: 95, sn: 3000, sx: 30}, steady(3000, 30))...),
				brRows("merchant_category", "retail", week(brWin{n: 3000, x: 92, sn: 3000, sx: 30}, steady(3000, 30))...),
				brRows("country", "BR", week(brWin{n: 1000, x: 150, sn: 1000, sx: 10}, steady(1000, 10))...),
			),
			want: []string{"model_behavior:block_rate:", "model_behavior:block_rate:BR"},
		},
		{
			// A rollout triples every slice's blocks; AR, a small risky
			// country, reads 6.7% (20 blocks of 300) where three times its
			// 1% gives 3% and twice the aggregate's move 5%: beyond the
			// plain bound, but not significantly (about 15 expected). It is
			// the rollout's move, small or not.
			name: "a small slice's noise on a broad move is the move",
			rows: concat(
				brRows("", "", week(brWin{n: 12000, x: 360, sn: 12000, sx: 120}, steady(12000, 120))...),
				brRows("country", "DE", week(brWin{n: 3000, x: 90, sn: 3000, sx: 30}, steady(3000, 30))...),
				brRows("country", "AR", week(brWin{n: 300, x: 20, sn: 300, sx: 3}, steady(300, 3))...),
			),
			want:    []string{"model_behavior:block_rate:"},
			summary: "also moves country AR and DE",
		},
		{
			// The same rollout while AR blocks 15% (45 of 300): far beyond
			// what the broad move lets it, an incident of its own.
			name: "a small slice far beyond a broad move stays",
			rows: concat(
				brRows("", "", week(brWin{n: 12000, x: 385, sn: 12000, sx: 120}, steady(12000, 120))...),
				brRows("country", "DE", week(brWin{n: 3000, x: 90, sn: 3000, sx: 30}, steady(3000, 30))...),
				brRows("country", "AR", week(brWin{n: 300, x: 45, sn: 300, sx: 3}, steady(300, 3))...),
			),
			want: []string{"model_behavior:block_rate:", "model_behavior:block_rate:AR"},
		},
		{
			// A broad rise while one country's blocks fall: it moved
			// against the root and stays.
			name: "a slice moving against a broad move stays",
			rows: concat(
				brRows("", "", week(brWin{n: 12000, x: 360, sn: 12000, sx: 120}, steady(12000, 120))...),
				brRows("country", "DE", week(brWin{n: 3000, x: 100, sn: 3000, sx: 30}, steady(3000, 30))...),
				brRows("country", "US", week(brWin{n: 3000, x: 2, sn: 3000, sx: 60}, steady(3000, 60))...),
			),
			want: []string{"model_behavior:block_rate:", "model_behavior:block_rate:US"},
		},
		{
			// At night FR logs too few rows to be tested alone, yet its
			// incident moves the aggregate: the aggregate fires and says
			// where most of its extra blocks are.
			name: "the aggregate names a slice too small to test",
			rows: concat(
				brRows("", "", week(brWin{n: 12000, x: 220, sn: 12000, sx: 120}, steady(12000, 120))...),
				brRows("country", "FR", week(brWin{n: 150, x: 76, sn: 150, sx: 1}, steady(150, 1))...),
				brRows("country", "DE", week(brWin{n: 150, x: 3, sn: 150, sx: 1}, steady(150, 1))...),
			),
			want:      []string{"model_behavior:block_rate:"},
			summary:   "most of it in FR (+75 of +100 extra; 150 rows, too few to test alone)",
			skipped:   2,
			unchecked: []string{"DE", "FR"},
		},
		{
			// The same at night, with FR's spill lifting retail: retail is
			// the aggregate's move too, not a page of its own.
			name: "a slice too small to test still explains the other column",
			rows: concat(
				brRows("", "", week(brWin{n: 12000, x: 220, sn: 12000, sx: 120}, steady(12000, 120))...),
				brRows("country", "FR", week(brWin{n: 150, x: 76, sn: 150, sx: 1}, steady(150, 1))...),
				brRows("merchant_category", "retail", week(brWin{n: 3000, x: 70, sn: 3000, sx: 30}, steady(3000, 30))...),
			),
			want:    []string{"model_behavior:block_rate:"},
			summary: "also moves merchant_category retail; most of it in FR (+75 of +100 extra",
			skipped: 1,
		},
		{
			// A retail incident of its own, far beyond FR's share: it stays.
			name: "a slice too small to test explains only its share",
			rows: concat(
				brRows("", "", week(brWin{n: 12000, x: 320, sn: 12000, sx: 120}, steady(12000, 120))...),
				brRows("country", "FR", week(brWin{n: 150, x: 76, sn: 150, sx: 1}, steady(150, 1))...),
				brRows("merchant_category", "retail", week(brWin{n: 3000, x: 170, sn: 3000, sx: 30}, steady(3000, 30))...),
			),
			want:    []string{"model_behavior:block_rate:", "model_behavior:block_rate:retail"},
			skipped: 1,
		},
		{
			name:      "slice below min_samples",
			rows:      append(agg, brRows("country", "NZ", week(brWin{n: 150, x: 75, sn: 150, sx: 1}, steady(150, 1))...)...),
			skipped:   1,
			unchecked: []string{"NZ"},
		},
		{
			name: "ordinary wobble",
			rows: append(agg, brRows("country", "DE", week(brWin{n: 2000, x: 26, sn: 2000, sx: 20}, steady(2000, 20))...)...),
		},
		{
			name: "wobbly baseline days widen the test",
			rows: append(agg, brRows("country", "US", week(brWin{n: 2000, x: 90, sn: 2000, sx: 90}, func(i int) brWin {
				x := []float64{10, 60, 15, 70, 20, 65, 40}[i]
				return brWin{n: 2000, x: x, sn: 2000, sx: x}
			})...)...),
		},
		{
			name: "same rise against steady days pages",
			rows: append(agg, brRows("country", "US", week(brWin{n: 2000, x: 90, sn: 2000, sx: 20}, steady(2000, 40))...)...),
			want: []string{"model_behavior:block_rate:US"},
		},
		{
			name:    "aggregate above max_rate",
			rows:    brRows("", "", week(brWin{n: 12000, x: 3000, sn: 12000, sx: 3000}, steady(12000, 2900))...),
			want:    []string{"model_behavior:block_rate_bound:"},
			summary: "overall block rate 25.0% is above the maximum 20.0%",
		},
		{
			name:    "empty windows",
			rows:    nil,
			skipped: 1, // the max_rate bound, for lack of samples
		},
		{
			name:    "NULL slice value is a slice",
			rows:    append(agg, brRows("country", NullSlice, week(brWin{n: 903, x: 440, sn: 903, sx: 4}, frDays)...)...),
			want:    []string{"model_behavior:block_rate:(null)"},
			summary: "country (null) block rate 48.7%",
		},
	}
	d := testDetector(t, det)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := decide(t, d, result(brCols, tc.rows...))
			checkFindings(t, out, tc.want, tc.summary)
			if tc.skipped > 0 && out.Skipped != tc.skipped {
				t.Errorf("skipped %d, want %d", out.Skipped, tc.skipped)
			}
			if tc.unchecked != nil {
				var got []string
				for _, u := range out.Unchecked {
					got = append(got, firstValue(u.Slice))
				}
				if strings.Join(got, ",") != strings.Join(tc.unchecked, ",") {
					t.Errorf("unchecked %v, want %v", got, tc.unchecked)
				}
			}
		})
	}
}

func checkFindings(t *testing.T, out *Result, want []string, summary string) {
	t.Helper()
	var got []string
	for _, f := range out.Findings {
		got = append(got, string(f.Class)+":"+f.Metric+":"+firstValue(f.Slice)+featureSuffix(f.Feature))
		if f.Severity != Classes[f.Class].Severity {
			t.Errorf("severity %s for class %s", f.Severity, f.Class)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("findings %v, want %v", got, want)
		for _, f := range out.Findings {
			t.Logf("  %s (p=%g)", f.Summary, f.PValue)
		}
	}
	if summary != "" {
		found := false
		for _, f := range out.Findings {
			found = found || strings.Contains(f.Summary, summary)
		}
		if !found {
			t.Errorf("no finding summary contains %q", summary)
			for _, f := range out.Findings {
				t.Logf("  %s", f.Summary)
			}
		}
	}
	for _, e := range out.Evaluations {
		if e.Firing {
			continue
		}
		for _, f := range out.Findings {
			if f.Metric == e.Metric && f.Feature == e.Feature && SliceKey(f.Slice) == SliceKey(e.Slice) {
				t.Errorf("finding %s without a firing evaluation", f.Metric)
			}
		}
	}
}

func firstValue(m map[string]string) string {
	for _, v := range m {
		return v
	}
	return ""
}

func featureSuffix(f string) string {
	if f == "" {
		return ""
	}
	return ":" + f
}

func TestScorePSI(t *testing.T) {
	d := testDetector(t, `
  - name: br
    kind: block_rate
    model: fraud
    slices: []
`)
	base := func(int) brWin { return brWin{n: 10000, x: 100, sn: 10000, sx: 100, hi: 0.05} }
	t.Run("scores drift in production only", func(t *testing.T) {
		out := decide(t, d, result(brCols, brRows("", "", week(brWin{n: 10000, x: 100, sn: 10000, sx: 100, hi: 0.6}, base)...)...))
		checkFindings(t, out, []string{"model_behavior:score_psi:"}, "score distribution PSI")
	})
	t.Run("stable scores", func(t *testing.T) {
		out := decide(t, d, result(brCols, brRows("", "", week(brWin{n: 10000, x: 100, sn: 10000, sx: 100, hi: 0.05}, base)...)...))
		checkFindings(t, out, nil, "")
	})
}

var fhCols = []string{"sc", "sv", "feature", "w", "rows", "nn", "fills", "mn", "mx", "bins", "cnts", "blk", "nblk", "fblk"}

// fhWin is one window of one feature: rows (of the slice), non-null
// values by value, the fill count, blocked rows and blocked rows among
// those where the feature is NULL.
type fhWin struct {
	rows       float64
	values     map[float64]float64
	fills      float64
	blk, nullB float64
}

func fhRows(feature string, wins []fhWin) [][]any {
	var out [][]any
	for w, f := range wins {
		out = append(out, []any{"", "", "", uint64(w), uint64(f.rows), uint64(0), uint64(0), nil, nil, []any{}, []any{}, uint64(f.blk), uint64(0), uint64(0)})
		var nn float64
		mn, mx := math.Inf(1), math.Inf(-1)
		for v, c := range f.values {
			nn += c
			if c > 0 {
				mn, mx = math.Min(mn, v), math.Max(mx, v)
			}
		}
		bins, cnts := hist(f.values)
		var mnv, mxv any
		if nn > 0 {
			mnv, mxv = mn, mx
		}
		out = append(out, []any{"", "", feature, uint64(w), uint64(0), uint64(nn), uint64(f.fills), mnv, mxv, bins, cnts, uint64(0), uint64(f.nullB), uint64(0)})
	}
	return out
}

// spread returns n values spread over ten distinct values.
func spread(n float64, offset float64) map[float64]float64 {
	m := map[float64]float64{}
	for i := 1; i <= 10; i++ {
		m[float64(i)+offset] = n / 10
	}
	return m
}

func fhWeek(cur fhWin) []fhWin {
	out := []fhWin{cur}
	for i := 0; i < 7; i++ {
		out = append(out, fhWin{rows: 10000, values: spread(9950, 0), fills: 0})
	}
	return out
}

func TestFeatureHealthEvaluate(t *testing.T) {
	d := testDetector(t, `
  - name: fh
    kind: feature_health
    model: fraud
    slices: []
`)
	withFill := spread(1000, 0)
	withFill[0] = 8950
	tests := []struct {
		name    string
		cur     fhWin
		want    []string
		summary string
	}{
		{"healthy", fhWin{rows: 10000, values: spread(9950, 0)}, nil, ""},
		{"null spike", fhWin{rows: 10000, values: spread(1000, 0)}, []string{"feature_pipeline:null_rate::f"}, "feature f null rate 90.0% vs 0.5% baseline"},
		{"all null", fhWin{rows: 10000, values: map[float64]float64{}}, []string{"feature_pipeline:all_null::f"}, "NULL in every row"},
		{"fill is reported once, not as drift", fhWin{rows: 10000, values: withFill, fills: 8950}, []string{"feature_pipeline:fill_rate::f"}, "equals the default 0 in 89.9% of values"},
		{"frozen", fhWin{rows: 10000, values: map[float64]float64{3: 9950}}, []string{"feature_pipeline:frozen::f"}, "frozen at 3"},
		{"drift of healthy values is population_shift", fhWin{rows: 10000, values: spread(9950, 20)}, []string{"population_shift:feature_psi::f"}, "distribution PSI"},
		{"below min_samples", fhWin{rows: 150, values: map[float64]float64{}}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := decide(t, d, result(fhCols, fhRows("f", fhWeek(tc.cur))...))
			checkFindings(t, out, tc.want, tc.summary)
		})
	}
	// The block rate among the rows where the feature is NULL against the
	// rest says whether the spike moves decisions (a cascade) or not.
	for _, tc := range []struct {
		name       string
		blk, nullB float64
		moved      float64
	}{
		// 9,000 NULL rows and 1,000 others: 1% blocked on both sides.
		{"null rows blocked like the rest", 100, 90, 0},
		// 20% of the NULL rows blocked, 1% of the rest.
		{"null rows blocked more (a cascade)", 1810, 1800, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := decide(t, d, result(fhCols, fhRows("f", fhWeek(fhWin{rows: 10000, values: spread(1000, 0), blk: tc.blk, nullB: tc.nullB}))...))
			checkFindings(t, out, []string{"feature_pipeline:null_rate::f"}, "")
			got, ok := out.Findings[0].Details[DetailAffectedMoved]
			if !ok || got != tc.moved {
				t.Errorf("%s = %v (set %v), want %v; details %v", DetailAffectedMoved, got, ok, tc.moved, out.Findings[0].Details)
			}
		})
	}
}

func TestVolumeEvaluate(t *testing.T) {
	d := testDetector(t, `
  - name: vol
    kind: volume
    model: fraud
    slices: []
`)
	rows := func(cur float64, days ...float64) [][]any {
		out := [][]any{{"", "", uint64(0), uint64(cur)}}
		if cur == 0 {
			out = nil // an empty window has no row at all
		}
		for i, x := range days {
			out = append(out, []any{"", "", uint64(i + 1), uint64(x)})
		}
		return out
	}
	week := []float64{10000, 9400, 10600, 9800, 10200, 8500, 8600}
	tests := []struct {
		name string
		rows [][]any
		want []string
	}{
		{"outage", rows(0, week...), []string{"pipeline_outage:volume:"}},
		{"weekend wobble", rows(8300, week...), nil},
		{"drop", rows(3000, week...), []string{"pipeline_outage:volume:"}},
		{"spike", rows(40000, week...), []string{"pipeline_outage:volume:"}},
		{"tiny baseline is skipped", rows(0, 10, 12, 9, 11, 10, 8, 9), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := decide(t, d, result([]string{"sc", "sv", "w", "n"}, tc.rows...))
			checkFindings(t, out, tc.want, "")
		})
	}
}

// Volume per country: a total outage is one alert at the aggregate; a
// country's own outage is that country's.
func TestVolumeEvaluateSlices(t *testing.T) {
	d := testDetector(t, `
  - name: vol
    kind: volume
    model: fraud
    slices: [country]
`)
	slice := func(sc, sv string, cur float64, days ...float64) [][]any {
		var out [][]any
		if cur > 0 {
			out = append(out, []any{sc, sv, uint64(0), uint64(cur)})
		}
		for i, x := range days {
			out = append(out, []any{sc, sv, uint64(i + 1), uint64(x)})
		}
		return out
	}
	week := func(scale float64) []float64 {
		out := []float64{10000, 9400, 10600, 9800, 10200, 8500, 8600}
		for i := range out {
			out[i] *= scale
		}
		return out
	}
	tests := []struct {
		name    string
		rows    [][]any
		want    []string
		summary string
	}{
		{
			name: "total outage",
			rows: concat(slice("", "", 0, week(1)...), slice("country", "US", 0, week(0.4)...),
				slice("country", "FR", 0, week(0.1)...), slice("country", "DE", 0, week(0.1)...)),
			want:    []string{"pipeline_outage:volume:"},
			summary: "overall request volume dropped to 0 vs 9,586 expected (0.0% of baseline, below 50.0%); also moves country DE, FR and US",
		},
		{
			name: "one country's outage",
			rows: concat(slice("", "", 9000, week(1)...), slice("country", "US", 3900, week(0.4)...),
				slice("country", "FR", 0, week(0.1)...), slice("country", "DE", 950, week(0.1)...)),
			want: []string{"pipeline_outage:volume:FR"},
		},
		{
			// Most of the traffic is US's: its outage is the aggregate's,
			// said once, naming US.
			name: "a large country's outage moves the aggregate too",
			rows: concat(slice("", "", 2500, week(1)...), slice("country", "US", 0, week(0.7)...),
				slice("country", "FR", 1000, week(0.1)...), slice("country", "DE", 950, week(0.1)...)),
			want:    []string{"pipeline_outage:volume:"},
			summary: "26.1% of baseline, below 50.0%); also moves country US",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := decide(t, d, result([]string{"sc", "sv", "w", "n"}, tc.rows...))
			checkFindings(t, out, tc.want, tc.summary)
		})
	}
}

func TestShadowEvaluate(t *testing.T) {
	d := testDetector(t, `
  - name: sh
    kind: shadow
    model: fraud
    slices: []
    shadow: {min_correlation: 0.5}
`)
	cols := append([]string{"sc", "sv", "w"}, shadowCols...)
	// Sums for n pairs with scores perfectly (r=1) or not correlated, and
	// up unpaired requests that have only their production row.
	row := func(w int, n, pb, sb, r, up float64) []any {
		// a and b take values 0/1 half the time; r sets how often they agree.
		agree := n * (1 + r) / 2
		return []any{"", "", uint64(w), uint64(n), uint64(pb), uint64(sb), uint64(up), uint64(n), n / 2, n / 2, n / 2, n / 2, agree / 2, uint64(up),
			uint64(0), uint64(2*n + up), uint64(0), uint64(0)}
	}
	build := func(curPB, curSB, curR float64) [][]any {
		out := [][]any{row(0, 7000, curPB, curSB, curR, 0)}
		for w := 1; w <= 7; w++ {
			out = append(out, row(w, 7000, 10, 20, 0.95, 0))
		}
		return out
	}
	// sampled: a shadow that scores a tenth of the requests; cur is the
	// current window's paired share.
	sampled := func(cur float64) [][]any {
		out := [][]any{row(0, 7000*cur, 0, 0, 0.95, 7000*(1-cur))}
		for w := 1; w <= 7; w++ {
			out = append(out, row(w, 700+float64(w*10), 1, 2, 0.95, 6300))
		}
		return out
	}
	t.Run("quiet", func(t *testing.T) {
		checkFindings(t, decide(t, d, result(cols, build(12, 18, 0.95)...)), nil, "")
	})
	t.Run("shadow blocks what production passes", func(t *testing.T) {
		out := decide(t, d, result(cols, build(12, 1400, 0.1)...))
		checkFindings(t, out, []string{"model_divergence:disagreement_shadow_blocks:", "model_divergence:score_correlation:"}, "shadow blocks, production passes on 20.0% of requests vs 0.3% baseline")
	})
	t.Run("shadow rows stop", func(t *testing.T) {
		rows := build(0, 0, 0.95)
		rows[0] = row(0, 0, 0, 0, 0, 7000)
		out := decide(t, d, result(cols, rows...))
		checkFindings(t, out, []string{"monitoring_failure:paired_share:"},
			"overall: 0.0% of requests have both their production and shadow rows vs 100.0% baseline (n=7,000 vs 49,000 requests): shadow rows are missing")
	})
	t.Run("a sampled shadow wobbles", func(t *testing.T) {
		checkFindings(t, decide(t, d, result(cols, sampled(0.085)...)), nil, "")
	})
	t.Run("a sampled shadow stops", func(t *testing.T) {
		checkFindings(t, decide(t, d, result(cols, sampled(0.01)...)), []string{"monitoring_failure:paired_share:"}, "1.0% of requests have both")
	})
}

func TestExpectationEvaluate(t *testing.T) {
	d := testDetector(t, `
  - name: canaries
    kind: expectation
    model: fraud
    slices: []
    min_samples: 20
    expectation:
      match: [{column: request_id, op: prefix, value: "canary-"}]
      min_rate: 0.9
`)
	cols := []string{"sc", "sv", "w", "n", "x"}
	tests := []struct {
		name string
		n, x uint64
		want []string
	}{
		{"as expected", 24, 23, nil},
		{"a few misses are not significant", 24, 21, nil},
		{"model stopped blocking canaries", 24, 10, []string{"model_behavior:expected_block_rate:"}},
		{"too few golden rows", 10, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := decide(t, d, result(cols, []any{"", "", uint64(0), tc.n, tc.x}))
			checkFindings(t, out, tc.want, "")
		})
	}
}

func TestFreshnessAndStaleness(t *testing.T) {
	fr := testDetector(t, `
  - name: fresh
    kind: freshness
    model: fraud
    freshness: {max_lag: 15m}
`)
	cols := []string{"newest", "n"}
	checkFindings(t, decide(t, fr, result(cols, []any{testAt.Add(-2 * time.Minute), uint64(100)})), nil, "")
	checkFindings(t, decide(t, fr, result(cols, []any{testAt.Add(-20 * time.Minute), uint64(100)})), []string{"pipeline_outage:lag_seconds:"}, "20m old")
	checkFindings(t, decide(t, fr, result(cols, []any{time.Unix(0, 0).UTC(), uint64(0)})), []string{"pipeline_outage:lag_seconds:"}, `no rows for model value "fraud" (column model) in the 30m`)

	st := testDetector(t, `
  - name: stale
    kind: staleness
    model: fraud
    staleness: {max_age: 30d}
`)
	scols := []string{"version", "first", "deployed", "n", "old"}
	old := testAt.Add(-31 * 24 * time.Hour)
	checkFindings(t, decide(t, st, result(scols,
		[]any{"v1", old, time.Unix(0, 0).UTC(), uint64(500), uint64(400)})), []string{"model_staleness:version_age_seconds:"}, "v1")
	checkFindings(t, decide(t, st, result(scols,
		[]any{"v1", old, time.Unix(0, 0).UTC(), uint64(500), uint64(400)},
		[]any{"v2", testAt.Add(-3 * time.Hour), time.Unix(0, 0).UTC(), uint64(50), uint64(0)})), nil, "")
}

// The tail beyond top_k is rebuilt as the aggregate less the kept values,
// in every window and histogram bin; a column with fewer than top_k values
// was not cut and gets no (other).
func TestFoldOther(t *testing.T) {
	agg := brRows("", "", brWin{n: 1000, x: 100, sn: 1000, sx: 90}, brWin{n: 900, x: 9, sn: 900, sx: 9})
	fr := brRows("country", "FR", brWin{n: 600, x: 60, sn: 600, sx: 50}, brWin{n: 500, x: 5, sn: 500, sx: 5})
	de := brRows("country", "DE", brWin{n: 300, x: 30, sn: 300, sx: 30}, brWin{n: 300, x: 3, sn: 300, sx: 3})
	rows := append(append(agg, fr...), de...)
	for _, tc := range []struct {
		topK      int
		wantOther bool
	}{{2, true}, {3, false}} {
		res := result(brCols, rows...)
		groups, err := groupRows(res, "")
		if err != nil {
			t.Fatal(err)
		}
		groups, err = fold(res, groups, blockRateFold, tc.topK)
		if err != nil {
			t.Fatal(err)
		}
		var other *group
		for _, g := range groups {
			if g.val == OtherSlice {
				other = g
			}
		}
		if (other != nil) != tc.wantOther {
			t.Fatalf("top_k %d: (other) present %v, want %v", tc.topK, other != nil, tc.wantOther)
		}
		if other == nil {
			continue
		}
		c, _ := cols(res, blockRateCols...)
		if n, x, sx := other.num(0, c[0]), other.num(0, c[1]), other.num(0, c[3]); n != 100 || x != 10 || sx != 10 {
			t.Errorf("(other) current window n=%v x=%v sx=%v, want 100 10 10", n, x, sx)
		}
		if n := other.num(1, c[0]); n != 100 {
			t.Errorf("(other) baseline n=%v, want 100", n)
		}
		if h := other.hist(0, c[4], c[5]); h.Total() != 100 {
			t.Errorf("(other) histogram holds %v, want 100: %v", h.Total(), h)
		}
	}
}

func concat(parts ...[][]any) [][]any {
	var out [][]any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Invalid rows: counted on their own, out of the model's figures, and a
// rise of their share is the logging's (feature_pipeline), said once on
// the aggregate.
func TestValidityEvaluate(t *testing.T) {
	d := testDetector(t, `
  - name: br
    kind: block_rate
    model: fraud
    block_rate: {score_psi: true}
`)
	// A steady week of 12,000 rows an hour, 1% blocked; FR 3,000 of them.
	steadyAgg := steady(12000, 120)
	steadyFR := steady(3000, 30)
	tests := []struct {
		name      string
		agg, fr   brWin
		aggDays   func(int) brWin
		want      []string
		summary   string
		metric    string  // the validity evaluation to check, if any
		value     float64 // its value (hand-computed)
		unchecked bool    // the aggregate's block rate went unchecked
	}{{
		name: "quiet", agg: brWin{n: 12000, x: 120, sn: 12000, sx: 120}, fr: brWin{n: 3000, x: 30, sn: 3000, sx: 30},
		want: nil,
	}, {
		// 600 rows with decision 2 (or 255, NULL), all FR's, beside the
		// usual 12,000: 600/12,600 of production rows, 600/24,600 of all
		// rows with the shadow's. FR's block rate (30 of 3,000 valid) is
		// steady: no model_behavior.
		name: "invalid decisions in FR", agg: brWin{n: 12000, x: 120, sn: 12000, sx: 120, bd: 600}, fr: brWin{n: 3000, x: 30, sn: 3000, sx: 30, bd: 600},
		want:    []string{"feature_pipeline:invalid_decision_share:"},
		summary: "logging broke: 2.4% of rows have a decision outside {0, 1} (was 0.0%; n=24,600 vs 168,000 rows); most of them in country=FR (100.0%)",
		metric:  MetricInvalidDecision, value: 600.0 / 24600,
	}, {
		// Every decision invalid: the block rate has no valid row left and
		// is skipped (its alerts hold); the validity check, whose sample is
		// every row, still fires.
		name: "every decision invalid", agg: brWin{n: 0, x: 0, sn: 12000, sx: 120, bd: 12000}, fr: brWin{n: 0, x: 0, sn: 3000, sx: 30, bd: 3000},
		want:    []string{"feature_pipeline:invalid_decision_share:"},
		summary: "logging broke: 50.0% of rows have a decision outside {0, 1} (was 0.0%; n=24,000 vs 168,000 rows); they are left",
		metric:  MetricInvalidDecision, value: 12000.0 / 24000, unchecked: true,
	}, {
		// 3,000 production scores out of [0, 1]: out of the PSI (which
		// sees the same distribution as before), a feature_pipeline rise.
		name: "invalid scores", agg: brWin{n: 12000, x: 120, sn: 12000, sx: 120, bs: 3000}, fr: brWin{n: 3000, x: 30, sn: 3000, sx: 30},
		want:    []string{"feature_pipeline:invalid_score_share:"},
		summary: "12.5% of rows have a score that is NULL, NaN, infinite or outside [0, 1] (was 0.0%",
		metric:  MetricInvalidScore, value: 3000.0 / 24000,
	}, {
		// A share of invalid decisions that wobbles between 2.3% and 2.8%
		// of rows from day to day: 2.8% now is no rise.
		name: "a steady share of invalid decisions", agg: brWin{n: 12000, x: 120, sn: 12000, sx: 120, bd: 680}, fr: brWin{n: 3000, x: 30, sn: 3000, sx: 30},
		aggDays: func(i int) brWin { return brWin{n: 12000, x: 120, sn: 12000, sx: 120, bd: float64(560 + 20*i)} },
		want:    nil,
		metric:  MetricInvalidDecision, value: 680.0 / 24680,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			days := tc.aggDays
			if days == nil {
				days = steadyAgg
			}
			rows := concat(brRows("", "", week(tc.agg, days)...), brRows("country", "FR", week(tc.fr, steadyFR)...))
			out := decide(t, d, result(brCols, rows...))
			checkFindings(t, out, tc.want, tc.summary)
			for _, f := range out.Findings {
				if f.Class == ClassModelBehavior {
					t.Errorf("invalid rows paged product: %s", f.Summary)
				}
			}
			found := false
			for _, e := range out.Evaluations {
				if e.Metric == MetricInvalidDecision || e.Metric == MetricInvalidScore {
					if e.Metric != tc.metric || len(e.Slice) != 0 {
						t.Errorf("unexpected validity evaluation %s %v", e.Metric, e.Slice)
						continue
					}
					found = true
					if !near(e.Value, tc.value, 1e-12) {
						t.Errorf("%s = %v, want %v", e.Metric, e.Value, tc.value)
					}
				}
			}
			if found != (tc.metric != "") {
				t.Errorf("validity evaluation %q present %v", tc.metric, found)
			}
			un := false
			for _, u := range out.Unchecked {
				un = un || len(u.Slice) == 0
			}
			if un != tc.unchecked {
				t.Errorf("aggregate unchecked %v, want %v", un, tc.unchecked)
			}
		})
	}
}

// Request ids: empty ones and duplicated ones are counted as rows and
// kept out of the pairs; their rise is the shadow detector's
// feature_pipeline finding, and it is not also a pairing collapse.
func TestShadowValidityEvaluate(t *testing.T) {
	d := testDetector(t, `
  - name: sh
    kind: shadow
    model: fraud
    slices: []
`)
	cols := append([]string{"sc", "sv", "w"}, shadowCols...)
	// n valid pairs (none disagreeing), empty and dup rows beside them.
	row := func(w int, n, er, dr float64) []any {
		return []any{"", "", uint64(w), uint64(n), uint64(10), uint64(20), uint64(0), uint64(n), n / 2, n / 2, n / 2, n / 2, n / 2, uint64(0),
			uint64(0), uint64(2*n + er + dr), uint64(er), uint64(dr)}
	}
	build := func(n, er, dr float64) [][]any {
		out := [][]any{row(0, n, er, dr)}
		for w := 1; w <= 7; w++ {
			out = append(out, row(w, 7000, 0, 0))
		}
		return out
	}
	t.Run("quiet", func(t *testing.T) {
		checkFindings(t, decide(t, d, result(cols, build(7000, 0, 0)...)), nil, "")
	})
	t.Run("empty ids", func(t *testing.T) {
		checkFindings(t, decide(t, d, result(cols, build(4900, 4200, 0)...)), []string{"feature_pipeline:empty_request_id_share:"},
			"logging broke: 30.0% of rows have an empty request id (no shadow row can pair with them) (was 0.0%; n=14,000 vs 98,000 rows)")
	})
	t.Run("every id empty", func(t *testing.T) {
		out := decide(t, d, result(cols, build(0, 14000, 0)...))
		checkFindings(t, out, []string{"feature_pipeline:empty_request_id_share:"}, "100.0% of rows have an empty request id")
		if len(out.Unchecked) == 0 {
			t.Errorf("the disagreement of no pairs should be unchecked, not cleared")
		}
	})
	t.Run("duplicated ids", func(t *testing.T) {
		checkFindings(t, decide(t, d, result(cols, build(7000, 0, 2700)...)), []string{"feature_pipeline:duplicate_request_id_share:"},
			"16.2% of rows share their request id with another row of the same role")
	})
}

// Slice values as the query renders them become the values findings
// carry: mlwatch's own buckets as they are, a real value that could be
// read as one quoted, every other value itself.
func TestSliceLabel(t *testing.T) {
	for _, tc := range []struct{ sv, want, label string }{
		{"FR", "FR", "FR"},
		{"", "", "overall"},
		{NullSlice, "(null)", "country (null)"},
		{"((null)", `"(null)"`, `country "(null)"`},
		{"((other)", `"(other)"`, `country "(other)"`},
		{"(", `"("`, `country "("`},
		{`"(null)"`, `"\"(null)\""`, `country "\"(null)\""`},
		{"(x)", `"(x)"`, `country "(x)"`}, // a rollup fed by an older view
		{"a(b)", "a(b)", "a(b)"},
	} {
		got := sliceLabel(tc.sv)
		if got != tc.want {
			t.Errorf("sliceLabel(%q) = %q, want %q", tc.sv, got, tc.want)
		}
		col := "country"
		if tc.sv == "" {
			col = ""
		}
		if l := label(col, got); l != tc.label {
			t.Errorf("label(%q) = %q, want %q", got, l, tc.label)
		}
	}
	if sliceLabel("((null)") == sliceLabel(NullSlice) || sliceLabel("((other)") == OtherSlice {
		t.Errorf("a real value reads as a bucket")
	}
}
