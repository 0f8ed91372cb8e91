package detectors

import (
	"math"
	"reflect"
	"testing"
)

// Reference values were computed by hand (Python's math module: direct
// sums of probability mass functions, erfc, lgamma), not by this code.

func near(got, want, tol float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	if math.IsInf(want, 0) {
		return got == want
	}
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

func TestZTest(t *testing.T) {
	tests := []struct {
		name    string
		a, b    Prop
		z, p    float64
		tolZ    float64
		tolP    float64
		comment string
	}{
		{"moderate", Prop{30, 1000}, Prop{20, 1000}, 1.4322297480788655, 0.15207808079297527, 1e-9, 1e-9, ""},
		{"huge slice block", Prop{440, 903}, Prop{366, 61008}, 126.64847869239946, 0, 1e-9, 1e-12, ""},
		{"zero counts both", Prop{0, 500}, Prop{0, 500}, 0, 1, 0, 0, "no events anywhere: no evidence"},
		{"zero vs some", Prop{0, 500}, Prop{5, 500}, -2.2417, 0.02498, 1e-3, 1e-3, ""},
		{"empty current", Prop{0, 0}, Prop{5, 500}, math.NaN(), math.NaN(), 0, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			z, p := ZTest(tc.a, tc.b)
			if !near(z, tc.z, tc.tolZ) || !near(p, tc.p, tc.tolP) {
				t.Errorf("ZTest(%v, %v) = %v, %v; want %v, %v", tc.a, tc.b, z, p, tc.z, tc.p)
			}
		})
	}
}

func TestChangeTest(t *testing.T) {
	tests := []struct {
		name      string
		cur, base Prop
		c         Change
		want, tol float64
	}{
		// Large counts: z = (0.03 - (b + 0.005)) / sqrt(m(1-m)/n + b(1-b)/N + Var).
		{"large counts with margin and spread", Prop{300, 10000}, Prop{1000, 70000}, Change{Margin: 0.005, Var: 1e-6, Tail: TailUp}, 5.55328851620253e-10, 1e-6},
		// Margin 0, no spread, large counts: the rise is significant.
		{"two-sided reduces to z", Prop{30, 1000}, Prop{200, 10000}, Change{Tail: TailBoth}, 2 * normalSF((0.03-0.02)/math.Sqrt(0.02*0.98/1000+0.02*0.98/10000)), 1e-12},
		// Small counts go exact: the null mean is the smoothed baseline
		// (2+0.5)/(200+1) plus the margin, the prior variance the baseline's
		// sampling variance; beta-binomial P(X >= 7).
		{"small counts exact", Prop{7, 200}, Prop{2, 200}, Change{Margin: 0.005, Tail: TailUp}, 0.11294187132763223, 1e-6},
		// A change inside the margin is never significant.
		{"inside margin", Prop{12, 1000}, Prop{100, 10000}, Change{Margin: 0.005, Tail: TailUp}, 0.5, 0.5},
		{"drop below zero edge", Prop{0, 1000}, Prop{1, 10000}, Change{Margin: 0.005, Tail: TailDown}, 1, 0},
		{"empty baseline", Prop{5, 100}, Prop{0, 0}, Change{Tail: TailUp}, math.NaN(), 0},
		{"empty current", Prop{0, 0}, Prop{5, 100}, Change{Tail: TailUp}, math.NaN(), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ChangeTest(tc.cur, tc.base, tc.c)
			if !near(got, tc.want, tc.tol) {
				t.Errorf("ChangeTest = %v, want %v ± %v", got, tc.want, tc.tol)
			}
		})
	}
	t.Run("spread widens", func(t *testing.T) {
		narrow := ChangeTest(Prop{150, 10000}, Prop{700, 70000}, Change{Tail: TailUp})
		wide := ChangeTest(Prop{150, 10000}, Prop{700, 70000}, Change{Tail: TailUp, Var: 4e-6})
		if !(narrow < 0.001 && wide > 10*narrow) {
			t.Errorf("seasonal variance should weaken the evidence: narrow %v, wide %v", narrow, wide)
		}
	})
	t.Run("exact tail is not the optimistic normal one", func(t *testing.T) {
		// 7 blocks of 200 against a 1% rate: the normal approximation says
		// p ≈ 0.0002; the exact binomial tail is 0.0043.
		got := ChangeTest(Prop{7, 200}, Prop{10000, 1000000}, Change{Tail: TailUp})
		if !near(got, 0.0043012779061990586, 1e-6) {
			t.Errorf("got %v, want 0.0043 (exact beta-binomial)", got)
		}
	})
}

func TestSeasonalVar(t *testing.T) {
	tests := []struct {
		name string
		days []Prop
		want float64
	}{
		{"spread beyond sampling", []Prop{{10, 1000}, {20, 1000}, {15, 1000}, {30, 1000}}, 6.814778645833331e-05},
		{"identical days", []Prop{{10, 1000}, {10, 1000}, {10, 1000}}, 0},
		{"one day", []Prop{{10, 1000}}, 0},
		{"empty days ignored", []Prop{{10, 1000}, {0, 0}, {20, 1000}, {15, 1000}, {30, 1000}}, 6.814778645833331e-05},
		{"no events", []Prop{{0, 1000}, {0, 1000}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := SeasonalVar(tc.days); !near(got, tc.want, 1e-9) {
				t.Errorf("SeasonalVar = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPooledDaySpread: the day-to-day spread pooled over slices and each
// slice's shrunk toward it. Three slices of 4, 3 and 3 days (7 degrees of
// freedom in all); the wanted values come from a direct Python transcript
// of the formulas (DerSimonian–Laird sums per slice, σ² = Σ excess /
// Σ (p(1-p))²·scale, τ² = (w·σ²(p(1-p))² + (k-1)·own) / (w + k-1) times
// 1 + 1/k), not from this code.
func TestPooledDaySpread(t *testing.T) {
	nan := math.NaN()
	a := []Prop{{10, 1000}, {20, 1000}, {15, 1000}, {30, 1000}}
	b := []Prop{{50, 2000}, {40, 2000}, {70, 2000}}
	c := []Prop{{100, 10000}, {130, 10000}, {90, 10000}}
	zero := []Prop{{0, 1000}, {0, 1000}}
	pools := []struct {
		name   string
		slices [][]Prop
		want   DaySpread
	}{
		{"two slices", [][]Prop{a, b}, DaySpread{0.09985894107909704, 5}},
		{"three slices", [][]Prop{a, b, c}, DaySpread{0.05969575100618682, 7}},
		// One slice: σ² is its own τ² over (p(1-p))².
		{"a single slice", [][]Prop{a}, DaySpread{0.16105709344380278, 3}},
		{"a slice of zero counts adds nothing", [][]Prop{zero, a}, DaySpread{0.16105709344380278, 3}},
		{"one day per slice", [][]Prop{{{10, 1000}}, {{5, 100}}}, DaySpread{0, 0}},
		{"a NaN day is left out", [][]Prop{append([]Prop{{nan, 1000}}, a...), b}, DaySpread{0.09985894107909704, 5}},
		{"a day with more events than trials is left out", [][]Prop{append([]Prop{{2000, 1000}}, a...), b}, DaySpread{0.09985894107909704, 5}},
		{"nothing", nil, DaySpread{0, 0}},
	}
	for _, tc := range pools {
		t.Run(tc.name, func(t *testing.T) {
			got := PoolDaySpread(tc.slices)
			if !near(got.Rel2, tc.want.Rel2, 1e-9) || got.DF != tc.want.DF {
				t.Errorf("PoolDaySpread = %+v, want %+v", got, tc.want)
			}
		})
	}
	abc := PoolDaySpread([][]Prop{a, b, c})
	vars := []struct {
		name string
		days []Prop
		pool DaySpread
		want float64
	}{
		// w = min(6, 7-2) = 5 days of the pool, 2 of its own.
		{"a slice of 3 days", c, abc, 7.580136561916522e-06},
		{"another", b, abc, 5.557971838714367e-05},
		// Its own spread alone (SeasonalVar) is 4.37e-06; a pool that
		// saw no spread pulls it toward 0.
		{"a pool without spread", c, DaySpread{0, 9}, 1.0926814814814817e-06},
		{"one day takes the pool's", []Prop{{12, 1000}}, abc, 1.678223496101277e-05},
		{"a single slice is SeasonalVar", a, PoolDaySpread([][]Prop{a}), 6.814778645833331e-05},
		{"no pool is SeasonalVar", c, DaySpread{}, 4.370725925925927e-06},
		{"a NaN pool is ignored", c, DaySpread{nan, 9}, 4.370725925925927e-06},
		{"zero counts", zero, abc, 0},
		{"no day with data", []Prop{{0, 0}, {nan, nan}}, abc, 0},
	}
	for _, tc := range vars {
		t.Run(tc.name, func(t *testing.T) {
			if got := SeasonalVarPooled(tc.days, tc.pool); !near(got, tc.want, 1e-9) {
				t.Errorf("SeasonalVarPooled = %v, want %v", got, tc.want)
			}
		})
	}
	if got, want := SeasonalVarPooled(a, PoolDaySpread([][]Prop{a})), SeasonalVar(a); !near(got, want, 1e-12) {
		t.Errorf("a pool of one slice gives %v, SeasonalVar %v", got, want)
	}
}

func TestBH(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		ps   []float64
		q    float64
		want []bool
	}{
		{"step-up", []float64{0.01, 0.04, 0.03, 0.005, nan, 0.5}, 0.05, []bool{true, true, true, true, false, false}},
		{"none", []float64{0.04, 0.06}, 0.05, []bool{false, false}},
		{"both by the largest", []float64{0.03, 0.02}, 0.05, []bool{true, true}},
		{"one slice", []float64{0.049}, 0.05, []bool{true}},
		{"all NaN", []float64{nan, nan}, 0.05, []bool{false, false}},
		{"empty", nil, 0.05, []bool{}},
		// With 60 slices, one p of 0.001 is not a discovery (0.001 > 0.05/60).
		{"many slices", append([]float64{0.001}, repeat(0.9, 59)...), 0.05, append([]bool{false}, make([]bool, 59)...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := BH(tc.ps, tc.q); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("BH = %v, want %v", got, tc.want)
			}
		})
	}
}

func repeat(x float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = x
	}
	return out
}

func TestPSIAndJS(t *testing.T) {
	tests := []struct {
		name      string
		cur, base []float64
		psi, js   float64
	}{
		{"shifted", []float64{10, 20, 30, 40}, []float64{25, 25, 25, 25}, 0.21799421315274758, 0.04020158234614191},
		{"empty bin smoothed", []float64{0, 100}, []float64{50, 50}, 2.6253984693361763, 0.31127812445913283},
		{"same", []float64{5, 5}, []float64{5, 5}, 0, 0},
		{"disjoint", []float64{1, 0}, []float64{0, 1}, 1.0986122886681098, 1},
		{"all-NULL current", []float64{0, 0}, []float64{5, 5}, math.NaN(), math.NaN()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := PSI(tc.cur, tc.base); !near(got, tc.psi, 1e-9) {
				t.Errorf("PSI = %v, want %v", got, tc.psi)
			}
			if got := JS(tc.cur, tc.base); !near(got, tc.js, 1e-9) {
				t.Errorf("JS = %v, want %v", got, tc.js)
			}
		})
	}
}

func TestPSITest(t *testing.T) {
	// n·PSI with n = 1/(1/100 + 1/100) = 50: PSI 0.1198 gives χ²₂ = 5.9915,
	// the 5% point.
	if got := PSITest(5.991464547/50, 100, 100, 3); !near(got, 0.05, 1e-6) {
		t.Errorf("PSITest = %v, want 0.05", got)
	}
	if got := PSITest(10.0/50, 100, 100, 5); !near(got, 0.0404276819945128, 1e-6) {
		t.Errorf("PSITest = %v, want 0.0404", got)
	}
	if got := PSITest(math.NaN(), 100, 100, 5); !math.IsNaN(got) {
		t.Errorf("PSITest(NaN) = %v, want NaN", got)
	}
	if got := PSITest(0.3, 100, 100, 1); !math.IsNaN(got) {
		t.Errorf("PSITest(one bin) = %v, want NaN", got)
	}
}

func TestCounts(t *testing.T) {
	tests := []struct {
		name      string
		got, want float64
	}{
		{"PoissonCDF(3; 10)", PoissonCDF(3, 10), 0.010336050675925721},
		{"PoissonCDF(0; 5)", PoissonCDF(0, 5), 0.006737946999085467},
		{"PoissonSF(14; 10)", PoissonSF(14, 10), 0.08345847293466024},
		{"PoissonCDF(-1; 5)", PoissonCDF(-1, 5), 0},
		{"BinomCDF(21; 24, 0.9)", BinomCDF(21, 24, 0.9), 0.43572627304879025},
		{"BinomCDF(7; 200, 0.01)", BinomCDF(7, 200, 0.01), 0.9989874428494325},
		{"BinomSF(7; 200, 0.01)", BinomSF(7, 200, 0.01), 0.004295542328898061},
		{"beta-binomial SF", betaBinomialSF(7, 200, 0.015, 0.0001), 0.10132681843518532},
		{"negative binomial CDF", negBinomCDF(50, 100, 400), 0.00466601098772091},
		{"CountTest drop, Poisson", CountTest(3, 10, 0, TailDown), 0.010336050675925721},
		{"CountTest drop to zero", CountTest(0, 5, 0, TailDown), 0.006737946999085467},
		{"CountTest spike", CountTest(15, 10, 0, TailUp), 0.08345847293466024},
		{"CountTest overdispersed", CountTest(50, 100, 400, TailDown), 0.00466601098772091},
		{"CountVar under Poisson", CountVar([]float64{90, 110, 100, 100}), 0},
		{"CountVar overdispersed", CountVar([]float64{50, 150, 100, 100}), 1666.6666666666667 - 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !near(tc.got, tc.want, 1e-8) {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
	if got := CountTest(5, 0, 0, TailDown); !math.IsNaN(got) {
		t.Errorf("CountTest with no baseline = %v, want NaN", got)
	}
}

// betaInc against closed forms: I_x(1, b) = 1-(1-x)^b, I_x(a, 1) = x^a,
// and the binomial tail it serves, I_p(k, n-k+1) = P(Bin(n, p) >= k).
func TestBetaInc(t *testing.T) {
	for _, c := range []struct{ a, b, x, want float64 }{
		{1, 3, 0.2, 1 - math.Pow(0.8, 3)},
		{2.5, 1, 0.7, math.Pow(0.7, 2.5)},
		{3, 3, 0.5, 0.5},
		{2, 4, 0.3, 1 - (math.Pow(0.7, 5) + 5*0.3*math.Pow(0.7, 4))}, // P(Bin(5, .3) >= 2)
		{40, 60, 0.45, 0},
	} {
		got := betaInc(c.a, c.b, c.x)
		if c.want == 0 {
			// symmetry: I_x(a, b) = 1 - I_{1-x}(b, a)
			c.want = 1 - betaInc(c.b, c.a, 1-c.x)
		}
		if math.Abs(got-c.want) > 1e-12 {
			t.Errorf("betaInc(%g, %g, %g) = %.15g, want %.15g", c.a, c.b, c.x, got, c.want)
		}
	}
}
