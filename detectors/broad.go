package detectors

import "math"

// RateMove is one slice's rate change as the broad-move rule reads it:
// its rates, its sample sizes and the baseline's day-to-day variance (0
// when the baseline is not seasonal).
type RateMove struct {
	Value, Baseline     float64
	NCurrent, NBaseline float64
	Spread              float64
}

// BroadBeyond is the one-sided p-value that slice s moved, in its own
// direction, further than a broad cause whose root changed by rel
// (relatively) and abs (absolutely) lets a slice move: broadFactor times
// the root's change, relative to s's own baseline or absolute, whichever
// is larger. A broad cause (a rollout, a shifted score, a shadow that
// flips decisions) moves every slice with it but not alike, and a small
// slice's rate is noisy: AR's 18 blocks of 270 rows may read 6.7% where
// the rollout's threefold move predicts 5%. Only a slice whose move is
// significantly beyond that bound (a small p, decided by the caller over
// all candidates with Benjamini–Hochberg) is an incident of its own; the
// others are the root's move, small or not. NaN when s has no samples.
func BroadBeyond(s RateMove, rel, abs float64) float64 {
	if s.NCurrent <= 0 || s.NBaseline <= 0 || math.IsNaN(s.Value) || math.IsNaN(s.Baseline) ||
		math.IsNaN(rel) || math.IsNaN(abs) {
		return math.NaN()
	}
	allowed := broadFactor * math.Max(math.Abs(rel)*s.Baseline, math.Abs(abs))
	tail := TailUp
	if s.Value < s.Baseline {
		tail = TailDown
	}
	cur := Prop{math.Round(s.Value * s.NCurrent), s.NCurrent}
	base := Prop{math.Round(s.Baseline * s.NBaseline), s.NBaseline}
	return ChangeTest(cur, base, Change{Margin: allowed, Var: math.Max(s.Spread, 0), Tail: tail})
}

// rateMove is h's move for BroadBeyond.
func rateMove(h *hypothesis) RateMove {
	return RateMove{Value: h.Value, Baseline: h.Baseline, NCurrent: float64(h.NCurrent), NBaseline: float64(h.NBaseline), Spread: h.spread}
}

// withBroad says whether h moved no more than broadFactor times the
// aggregate agg, relatively or (for rates) absolutely: plainly the same
// move, no test needed.
func withBroad(h, agg *hypothesis) bool {
	return relOf(h) <= broadFactor*relOf(agg) ||
		attributable[h.Metric] && math.Abs(h.Value-h.Baseline) <= broadFactor*math.Abs(agg.Value-agg.Baseline)
}

// BroadRate says whether metric is a rate whose slices a broad move
// carries (BroadBeyond applies): block rate, disagreement, null and
// fill rates. Counts and distributions (volume, PSI) are not.
func BroadRate(metric string) bool { return attributable[metric] && metric != MetricExpected }
