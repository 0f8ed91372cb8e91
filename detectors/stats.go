package detectors

import (
	"math"
	"sort"
)

// The statistics every detector shares. All functions are pure and take
// counts as float64 (ClickHouse returns them as integers; float64 holds any
// realistic count exactly). A p-value of NaN means "no test was possible";
// such hypotheses stay out of Benjamini–Hochberg.

// Prop is x events out of n trials (blocked requests, NULL values, ...).
type Prop struct{ X, N float64 }

// Rate is X/N, NaN for an empty sample.
func (p Prop) Rate() float64 {
	if p.N <= 0 {
		return math.NaN()
	}
	return p.X / p.N
}

// Tail says which direction of change a test looks for.
type Tail int

// Tails: a two-sided test, a rise only, a drop only.
const (
	TailBoth Tail = iota
	TailUp
	TailDown
)

// normalSF is P(Z > z) for a standard normal Z.
func normalSF(z float64) float64 { return 0.5 * math.Erfc(z/math.Sqrt2) }

// ZTest is the textbook pooled two-proportion z-test of a against b:
// z = (pa - pb) / sqrt(p(1-p)(1/na + 1/nb)) with p the pooled rate, and its
// two-sided p-value. It is the reference the change test reduces to for
// large counts with no margin and no seasonal spread.
func ZTest(a, b Prop) (z, p float64) {
	if a.N <= 0 || b.N <= 0 {
		return math.NaN(), math.NaN()
	}
	pooled := (a.X + b.X) / (a.N + b.N)
	se := math.Sqrt(pooled * (1 - pooled) * (1/a.N + 1/b.N))
	d := a.Rate() - b.Rate()
	if se == 0 {
		if d == 0 {
			return 0, 1
		}
		return math.Copysign(math.Inf(1), d), 0
	}
	z = d / se
	return z, math.Min(1, 2*normalSF(math.Abs(z)))
}

// Change is the null hypothesis of a change test: the current rate differs
// from the baseline's by at most Margin (the effect-size gate turned into
// the null, so that "significant" means "significantly bigger than the
// gate"), with Var the extra variance of the current rate beyond sampling
// (the seasonal day-to-day spread, see SeasonalVar).
type Change struct {
	Margin float64
	Var    float64
	Tail   Tail
}

// largeCounts is the expected count, on both sides, above which the normal
// approximation is used; below it the tail is summed exactly.
const largeCounts = 10

// ChangeTest returns the p-value of cur's rate having moved from base's by
// more than c.Margin in the direction c.Tail. For large counts it is the
// two-proportion z statistic (cur - base ∓ margin) / se with
// se² = m(1-m)/n_cur + b(1-b)/n_base + Var, m the rate at the null's edge;
// for small expected counts (a tiny slice, a rare event) the normal tail
// overstates significance several-fold, so the exact tail of the
// beta-binomial predictive distribution (binomial when Var and the
// baseline's uncertainty vanish) is summed instead. Empty samples give NaN.
func ChangeTest(cur, base Prop, c Change) float64 {
	if cur.N <= 0 || base.N <= 0 {
		return math.NaN()
	}
	switch c.Tail {
	case TailUp:
		return changeTail(cur, base, c, 1)
	case TailDown:
		return changeTail(cur, base, c, -1)
	}
	return math.Min(1, 2*math.Min(changeTail(cur, base, c, 1), changeTail(cur, base, c, -1)))
}

func changeTail(cur, base Prop, c Change, dir float64) float64 {
	v := math.Max(c.Var, 0)
	if m := base.Rate() + dir*c.Margin; cur.N*m >= largeCounts && cur.N*(1-m) >= largeCounts &&
		base.X >= largeCounts && base.N-base.X >= largeCounts {
		b := base.Rate()
		se := math.Sqrt(m*(1-m)/cur.N + b*(1-b)/base.N + v)
		return normalSF(dir * (cur.Rate() - m) / se)
	}
	// Exact path. The baseline rate is smoothed (Jeffreys: +0.5 events, +1
	// trial) so that a baseline with no events does not claim the rate is
	// exactly zero; its own uncertainty joins the prior's variance.
	bs := (base.X + 0.5) / (base.N + 1)
	m := bs + dir*c.Margin
	if m <= 0 || m >= 1 {
		// The null's edge is outside (0, 1): no rate can be beyond it.
		return 1
	}
	prior := bs*(1-bs)/base.N + v
	if dir > 0 {
		return betaBinomialSF(cur.X, cur.N, m, prior)
	}
	return betaBinomialCDF(cur.X, cur.N, m, prior)
}

// SeasonalVar estimates the between-day variance τ² of a rate from the
// baseline's per-day samples (DerSimonian–Laird: the spread of the day
// rates beyond what binomial sampling explains), and returns the extra
// variance of one new day's rate against the baseline mean, τ²(1 + 1/k)
// for k days. Fewer than two days with data give 0.
func SeasonalVar(days []Prop) float64 {
	m := momentsOf(days)
	if m.k < 2 {
		return 0
	}
	return m.own() * (1 + 1/float64(m.k))
}

// dayMoments are the DerSimonian–Laird sums of one slice's baseline days:
// k days with data, their pooled rate, and Cochran's Q minus its
// expectation under pure sampling (excess = Q - (k-1)), whose expectation
// is τ²·scale for a between-day variance τ² (scale = S1 - S2/S1 of the
// inverse-variance weights n_d / (rate(1-rate))).
type dayMoments struct {
	k             int
	rate          float64
	excess, scale float64
}

// momentsOf sums days, leaving out those without a valid count (N <= 0,
// NaN, X outside [0, N]). A rate of 0 or 1 has no spread to estimate: its
// scale is 0.
func momentsOf(days []Prop) dayMoments {
	var m dayMoments
	var sx, sn float64
	for _, d := range days {
		if validDay(d) {
			sx += d.X
			sn += d.N
			m.k++
		}
	}
	if m.k == 0 {
		return m
	}
	m.rate = sx / sn
	v := m.rate * (1 - m.rate)
	if m.k < 2 || v <= 0 {
		return m
	}
	var sw, sw2, mw float64
	for _, d := range days {
		if validDay(d) {
			w := d.N / v
			sw += w
			sw2 += w * w
			mw += w * d.Rate()
		}
	}
	mw /= sw
	var q float64
	for _, d := range days {
		if validDay(d) {
			dr := d.Rate() - mw
			q += d.N / v * dr * dr
		}
	}
	m.excess, m.scale = q-float64(m.k-1), sw-sw2/sw
	return m
}

func validDay(d Prop) bool { return d.N > 0 && d.X >= 0 && d.X <= d.N }

// own is the slice's own τ² estimate, 0 when the days spread no more than
// sampling does.
func (m dayMoments) own() float64 {
	if m.scale <= 0 || m.excess <= 0 {
		return 0
	}
	return m.excess / m.scale
}

// DaySpread is the day-to-day spread of a rate pooled over a detector's
// slices: Rel2 is the between-day variance on the logit scale, σ², common
// to the slices, so that a slice of rate p spreads by τ² = σ²·(p(1-p))²
// from day to day (for small rates a common relative spread, σ the
// coefficient of variation); DF is the degrees of freedom behind it (the
// slices' days less one each).
type DaySpread struct {
	Rel2 float64
	DF   int
}

// PoolDaySpread estimates the pooled day-to-day spread from every slice's
// baseline days at once, by moments (DerSimonian–Laird across slices):
// σ² = Σ excess_s / Σ (p_s(1-p_s))²·scale_s, 0 when the days spread no
// more than sampling does. Large slices, whose sampling noise is small,
// carry most of the information, as they should: they are the ones whose
// tests the spread widens most. Slices with fewer than two days, or a rate
// of 0 or 1, add nothing.
func PoolDaySpread(slices [][]Prop) DaySpread {
	var num, den float64
	var out DaySpread
	for _, days := range slices {
		m := momentsOf(days)
		if m.k < 2 || m.scale <= 0 {
			continue
		}
		v := m.rate * (1 - m.rate)
		num += m.excess
		den += v * v * m.scale
		out.DF += m.k - 1
	}
	if den > 0 && num > 0 {
		out.Rel2 = num / den
	}
	return out
}

// poolDays is the most the pooled spread weighs in a slice's, in days: a
// slice with a week of baseline days (6 degrees of freedom) takes its
// spread half from its own days and half from the pool; with 3 days a
// quarter, with 21 days three quarters from its own.
const poolDays = 6

// SeasonalVarPooled is SeasonalVar with the slice's own between-day
// variance shrunk toward the pool's, σ²·(p(1-p))² at the slice's rate p:
// τ² = (w·pooled + (k-1)·own) / (w + k - 1), w = poolDays, or the pool's
// degrees of freedom beyond the slice's own when fewer (a pool of one
// slice is that slice). A few days' spread is a noisy estimate (with 3
// days its standard error is about its size): alone, a chance wide
// reference hides a real move and a chance narrow one makes noise look
// like one. A pool that saw no spread beyond sampling (σ² = 0) pulls the
// slice's toward 0 with the same weight. A slice with one day takes the
// pool's spread alone; no day with data gives 0.
func SeasonalVarPooled(days []Prop, pool DaySpread) float64 {
	m := momentsOf(days)
	if m.k == 0 {
		return 0
	}
	own, df := m.own(), float64(m.k-1)
	if m.scale <= 0 {
		df = 0
	}
	w := math.Min(poolDays, float64(pool.DF)-df)
	if math.IsNaN(pool.Rel2) || pool.Rel2 < 0 || w <= 0 {
		w = 0
	}
	if w+df == 0 {
		return 0
	}
	var pooled float64
	if w > 0 {
		v := m.rate * (1 - m.rate)
		pooled = pool.Rel2 * v * v
	}
	tau2 := (w*pooled + df*own) / (w + df)
	return tau2 * (1 + 1/float64(m.k))
}

// BH returns which p-values the Benjamini–Hochberg step-up procedure
// rejects at false discovery rate q: one decision over every hypothesis of
// a detector run, so that with many slices "some slice is always worse"
// stops paging. NaN p-values are not hypotheses and are never rejected.
func BH(ps []float64, q float64) []bool {
	idx := make([]int, 0, len(ps))
	for i, p := range ps {
		if !math.IsNaN(p) {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return ps[idx[a]] < ps[idx[b]] })
	m := float64(len(idx))
	k := -1
	for r, i := range idx {
		if ps[i] <= q*float64(r+1)/m {
			k = r
		}
	}
	out := make([]bool, len(ps))
	for r := 0; r <= k; r++ {
		out[idx[r]] = true
	}
	return out
}

// PSI is the population stability index of the current bin counts against
// the baseline's, Σ (c_i - b_i) ln(c_i / b_i) over shares, with half a
// count added to every bin of both so that an empty bin is finite. Bins
// are aligned by index; empty inputs give NaN.
func PSI(cur, base []float64) float64 {
	cs, bs := smoothShares(cur), smoothShares(base)
	if cs == nil || bs == nil || len(cs) != len(bs) {
		return math.NaN()
	}
	var psi float64
	for i := range cs {
		psi += (cs[i] - bs[i]) * math.Log(cs[i]/bs[i])
	}
	return psi
}

func smoothShares(c []float64) []float64 {
	var n float64
	for _, x := range c {
		n += x
	}
	if n <= 0 || len(c) == 0 {
		return nil
	}
	out := make([]float64, len(c))
	total := n + 0.5*float64(len(c))
	for i, x := range c {
		out[i] = (x + 0.5) / total
	}
	return out
}

// JS is the Jensen–Shannon divergence (base 2, in [0, 1]) of the current
// bin counts against the baseline's: the bounded, symmetric second figure
// beside PSI. Empty inputs give NaN.
func JS(cur, base []float64) float64 {
	var nc, nb float64
	for i := range cur {
		nc += cur[i]
	}
	for i := range base {
		nb += base[i]
	}
	if nc <= 0 || nb <= 0 || len(cur) != len(base) {
		return math.NaN()
	}
	var js float64
	for i := range cur {
		p, q := cur[i]/nc, base[i]/nb
		m := (p + q) / 2
		if p > 0 {
			js += p / 2 * math.Log2(p/m)
		}
		if q > 0 {
			js += q / 2 * math.Log2(q/m)
		}
	}
	return math.Max(0, js)
}

// PSITest is the p-value of a PSI at least this large arising by sampling
// alone: n·PSI (n the harmonic size 1/(1/n_cur + 1/n_base)) is
// asymptotically χ² with bins-1 degrees of freedom when both samples come
// from one distribution.
func PSITest(psi, nCur, nBase float64, bins int) float64 {
	if math.IsNaN(psi) || nCur <= 0 || nBase <= 0 || bins < 2 {
		return math.NaN()
	}
	return chi2SF(math.Max(psi, 0)/(1/nCur+1/nBase), float64(bins-1))
}

// PSINoise is the PSI sampling alone gives on average between samples of
// these sizes over this many bins: what a baseline day's PSI is corrected
// by before it counts as day-to-day drift.
func PSINoise(nCur, nBase float64, bins int) float64 {
	if nCur <= 0 || nBase <= 0 || bins < 2 {
		return 0
	}
	return float64(bins-1) * (1/nCur + 1/nBase)
}

// CountTest is the p-value of a count x against an expected mean mu in the
// direction tail: Poisson, or negative binomial when extraVar (variance
// beyond Poisson: the seasonal spread and the baseline's own uncertainty)
// is positive. Volume drops and spikes are decided with it.
func CountTest(x, mu, extraVar float64, tail Tail) float64 {
	if math.IsNaN(x) || math.IsNaN(mu) || mu <= 0 {
		return math.NaN()
	}
	up := func() float64 {
		if x <= 0 {
			return 1
		}
		if extraVar <= 0 {
			return PoissonSF(x-1, mu)
		}
		return 1 - negBinomCDF(x-1, mu, extraVar)
	}
	down := func() float64 {
		if extraVar <= 0 {
			return PoissonCDF(x, mu)
		}
		return negBinomCDF(x, mu, extraVar)
	}
	switch tail {
	case TailUp:
		return up()
	case TailDown:
		return down()
	}
	return math.Min(1, 2*math.Min(up(), down()))
}

// CountVar is the excess variance of per-day counts over Poisson (their
// sample variance minus their mean), 0 when the days spread no more than
// Poisson or there are fewer than two.
func CountVar(days []float64) float64 {
	if len(days) < 2 {
		return 0
	}
	var s float64
	for _, d := range days {
		s += d
	}
	mean := s / float64(len(days))
	var ss float64
	for _, d := range days {
		ss += (d - mean) * (d - mean)
	}
	return math.Max(0, ss/float64(len(days)-1)-mean)
}

// PoissonCDF is P(X <= k) for X ~ Poisson(mu).
func PoissonCDF(k, mu float64) float64 {
	k = math.Floor(k)
	if k < 0 {
		return 0
	}
	return gammaQ(k+1, mu)
}

// PoissonSF is P(X > k) for X ~ Poisson(mu).
func PoissonSF(k, mu float64) float64 {
	k = math.Floor(k)
	if k < 0 {
		return 1
	}
	return gammaP(k+1, mu)
}

// BinomCDF is P(X <= k) for X ~ Binomial(n, p).
func BinomCDF(k, n, p float64) float64 {
	k = math.Floor(k)
	switch {
	case k < 0:
		return 0
	case k >= n:
		return 1
	case p <= 0:
		return 1
	case p >= 1:
		return 0
	}
	return betaInc(n-k, k+1, 1-p)
}

// BinomSF is P(X >= k) for X ~ Binomial(n, p).
func BinomSF(k, n, p float64) float64 { return 1 - BinomCDF(k-1, n, p) }

// negBinomCDF is P(X <= k) for a negative binomial with mean mu and
// variance mu + extra.
func negBinomCDF(k, mu, extra float64) float64 {
	k = math.Floor(k)
	if k < 0 {
		return 0
	}
	r := mu * mu / extra
	p := r / (r + mu)
	return betaInc(r, k+1, p)
}

// betaBinomialSF is P(X >= x) where X | p ~ Binomial(n, p) and p has mean
// m and variance v (a beta prior; v = 0 is the binomial).
func betaBinomialSF(x, n, m, v float64) float64 {
	if x <= 0 {
		return 1
	}
	a, b, ok := betaParams(m, v)
	if !ok {
		return BinomSF(x, n, m)
	}
	return bbTail(x, n, a, b, 1)
}

// betaBinomialCDF is P(X <= x) under the same model.
func betaBinomialCDF(x, n, m, v float64) float64 {
	if x >= n {
		return 1
	}
	a, b, ok := betaParams(m, v)
	if !ok {
		return BinomCDF(x, n, m)
	}
	return bbTail(x, n, a, b, -1)
}

// betaParams matches a beta distribution to mean m and variance v; false
// when v is too small to matter (the binomial is used instead).
func betaParams(m, v float64) (a, b float64, ok bool) {
	if v <= 1e-12 || m <= 0 || m >= 1 {
		return 0, 0, false
	}
	s := m*(1-m)/v - 1
	if s <= 0 {
		s = 1e-3
	}
	if s > 1e9 {
		return 0, 0, false
	}
	return m * s, (1 - m) * s, true
}

// bbTail sums the beta-binomial probability mass from x outwards (dir +1:
// x..n, -1: x..0), stopping once terms no longer matter.
func bbTail(x, n, a, b float64, dir float64) float64 {
	lbeta := func(p, q float64) float64 {
		lp, _ := math.Lgamma(p)
		lq, _ := math.Lgamma(q)
		lpq, _ := math.Lgamma(p + q)
		return lp + lq - lpq
	}
	lchoose := func(n, k float64) float64 {
		a, _ := math.Lgamma(n + 1)
		b, _ := math.Lgamma(k + 1)
		c, _ := math.Lgamma(n - k + 1)
		return a - b - c
	}
	base := lbeta(a, b)
	mode := n * a / (a + b)
	var sum float64
	for k := x; k >= 0 && k <= n; k += dir {
		t := math.Exp(lchoose(n, k) + lbeta(k+a, n-k+b) - base)
		sum += t
		// Past the mode, terms only shrink: stop when they stop counting.
		if (dir > 0 && k > mode || dir < 0 && k < mode) && t < 1e-17*sum {
			break
		}
	}
	return math.Min(1, sum)
}

// chi2SF is P(X > x) for X ~ χ² with k degrees of freedom.
func chi2SF(x, k float64) float64 {
	if x <= 0 {
		return 1
	}
	return gammaQ(k/2, x/2)
}

// gammaP is the regularised lower incomplete gamma function P(a, x).
func gammaP(a, x float64) float64 {
	if x <= 0 {
		return 0
	}
	if x < a+1 {
		return gammaSeries(a, x)
	}
	return 1 - gammaCF(a, x)
}

// gammaQ is the regularised upper incomplete gamma function Q(a, x).
func gammaQ(a, x float64) float64 {
	if x <= 0 {
		return 1
	}
	if x < a+1 {
		return 1 - gammaSeries(a, x)
	}
	return gammaCF(a, x)
}

func gammaSeries(a, x float64) float64 {
	lg, _ := math.Lgamma(a)
	sum := 1 / a
	del := sum
	ap := a
	for i := 0; i < 100000; i++ {
		ap++
		del *= x / ap
		sum += del
		if math.Abs(del) < math.Abs(sum)*1e-15 {
			break
		}
	}
	return sum * math.Exp(-x+a*math.Log(x)-lg)
}

// gammaCF is Q(a, x) by Lentz's continued fraction.
func gammaCF(a, x float64) float64 {
	const tiny = 1e-300
	lg, _ := math.Lgamma(a)
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 100000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lg) * h
}

// betaInc is the regularised incomplete beta function I_x(a, b).
func betaInc(a, b, x float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	front := math.Exp(lab - la - lb + a*math.Log(x) + b*math.Log1p(-x))
	if x < (a+1)/(a+b+2) {
		return front * betaCF(a, b, x) / a
	}
	return 1 - front*betaCF(b, a, 1-x)/b
}

// betaCF is the continued fraction of the incomplete beta (Lentz).
func betaCF(a, b, x float64) float64 {
	const tiny = 1e-300
	qab, qap, qam := a+b, a+1, a-1
	nonzero := func(v float64) float64 {
		if math.Abs(v) < tiny {
			return tiny
		}
		return v
	}
	c := 1.0
	d := 1 / nonzero(1-qab*x/qap)
	h := d
	// step applies one term aa of the fraction and returns its factor.
	step := func(aa float64) float64 {
		d = 1 / nonzero(1+aa*d)
		c = nonzero(1 + aa/c)
		return d * c
	}
	for m := 1; m < 100000; m++ {
		fm := float64(m)
		m2 := 2 * fm
		h *= step(fm * (b - fm) * x / ((qam + m2) * (a + m2)))
		del := step(-(a + fm) * (qab + fm) * x / ((a + m2) * (qap + m2)))
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return h
}
