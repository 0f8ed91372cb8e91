package traffic

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/store"
)

// Versions the generator logs for each role.
const (
	ProductionVersion = "fraud-2026.09.1"
	ShadowVersion     = "fraud-2026.11.0-rc1"
)

// Calibration of the latent scale: logit = intercept + slope * risk.
// Gives a block rate near 1% on quiet traffic.
const (
	intercept   = -4.35
	slope       = 1.45
	canaryShare = 0.002
	nullRate    = 0.005
)

// maxIntensity bounds the seasonal factor (daily peak × wobble), so that a
// minute's candidate slots can hold its busiest load.
const maxIntensity = 1.6 * 1.08

// u renders the k-th uniform draw in [0, 1) of the row's hash h.
func u(k int) string {
	return fmt.Sprintf("(intHash64(h + %d) / 18446744073709551616.0)", k)
}

// normal renders a standard normal draw (Box-Muller) from draws a and b.
func normal(a, b int) string {
	return fmt.Sprintf("(sqrt(-2 * log(%s + 1e-12)) * cos(6.283185307179586 * %s))", u(a), u(b))
}

// quickNormal renders an approximately standard normal draw from one hash:
// the sum of three 21-bit uniforms (Irwin–Hall), centred and scaled. Its
// tails stop at ±3, which is enough for feature values and costs no
// logarithm or cosine.
func quickNormal(k int) string {
	hk := fmt.Sprintf("intHash64(h + %d)", k)
	return fmt.Sprintf("((bitAnd(%[1]s, 2097151) + bitAnd(bitShiftRight(%[1]s, 21), 2097151) + bitAnd(bitShiftRight(%[1]s, 42), 2097151)) / 1048576.0 - 3)", hk)
}

func floats(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'g', -1, 64)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func quoted(xs []string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = store.QuoteString(x)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// cumulative returns running sums of weights, the last forced to 1.
func cumulative(ws []float64) []float64 {
	total := 0.0
	for _, w := range ws {
		total += w
	}
	out := make([]float64, len(ws))
	run := 0.0
	for i, w := range ws {
		run += w / total
		out[i] = math.Round(run*1e6) / 1e6
	}
	out[len(out)-1] = 1
	return out
}

// query accumulates SQL text and its arguments in placeholder order.
type query struct {
	b    strings.Builder
	args []any
}

// add appends a fragment; its ? placeholders take args in order.
func (q *query) add(fragment string, args ...any) {
	q.b.WriteString(fragment)
	q.args = append(q.args, args...)
}

// incidentTerms renders the conditions incidents of one kind contribute,
// OR-ed together, with their arguments; "0" when there are none.
func incidentTerms(ins []Incident, kind string, term func(Incident) (string, []any)) (string, []any) {
	var parts []string
	var args []any
	for _, in := range ins {
		if in.Kind != kind {
			continue
		}
		t, a := term(in)
		parts = append(parts, "(ts >= ? AND ts < ? AND "+t+")")
		args = append(append(args, in.Start, in.End), a...)
	}
	if len(parts) == 0 {
		return "0", nil
	}
	return "(" + strings.Join(parts, " OR ") + ")", args
}

// seedMix spreads a seed over 64 bits (splitmix64), so that nearby seeds
// give unrelated streams; intHash64 of (number + mix) is the row's hash on
// both engines alike.
func seedMix(seed uint64) uint64 {
	z := seed + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func filter(ins []Incident, keep func(Incident) bool) []Incident {
	var out []Incident
	for _, in := range ins {
		if keep(in) {
			out = append(out, in)
		}
	}
	return out
}

// insertSQL renders the INSERT ... SELECT that generates minutes
// [m0, m0+n) after from, and its arguments.
func insertSQL(opt Options, from time.Time, slots, m0, n int) (string, []any) {
	m := opt.Model
	codes := make([]string, len(Countries))
	cw, tz, risk := make([]float64, len(Countries)), make([]float64, len(Countries)), make([]float64, len(Countries))
	for i, c := range Countries {
		codes[i], cw[i], tz[i], risk[i] = c.Code, c.Weight, float64(c.TZ), c.Risk
	}
	mnames := make([]string, len(Merchants))
	mw, mrisk := make([]float64, len(Merchants)), make([]float64, len(Merchants))
	for i, x := range Merchants {
		mnames[i], mw[i], mrisk[i] = x.Name, x.Weight, x.Risk
	}
	fnames := make([]string, len(Features))
	for i, f := range Features {
		fnames[i] = f.Name
	}
	ins := opt.Incidents
	none := func(Incident) (string, []any) { return "1", nil }
	country := func(share float64, draw int) func(Incident) (string, []any) {
		return func(in Incident) (string, []any) {
			return fmt.Sprintf("country = ? AND %s < %g", u(draw), share), []any{in.Arg}
		}
	}
	share := func(p float64, draw int) func(Incident) (string, []any) {
		return func(Incident) (string, []any) { return fmt.Sprintf("%s < %g", u(draw), p), nil }
	}
	flip := func(in Incident) (string, []any) {
		share, _ := strconv.ParseFloat(in.Arg, 64)
		return u(42) + " < ?", []any{share}
	}

	c := m.Columns
	var q query
	q.add(fmt.Sprintf("INSERT INTO %s (%s, %s, %s, %s, %s, %s, %s, `country`, `merchant_category`, `amount_usd`, %s, %s)\n",
		tableOf(m.Table).Quoted(), store.MustIdent(c.TS), store.MustIdent(c.RequestID), store.MustIdent(c.Model),
		store.MustIdent(c.ModelVersion), store.MustIdent(c.Role), store.MustIdent(c.Score), store.MustIdent(c.Decision),
		store.MustIdent(m.Features.NamesColumn), store.MustIdent(m.Features.ValuesColumn)))

	// Outer level: one production and one shadow row per request.
	q.add("SELECT ts, request_id, ?, if(role_i = 0, ?, ?), if(role_i = 0, ?, ?),\n",
		m.ModelValue, ProductionVersion, ShadowVersion, m.Shadow.ProductionRole, m.Shadow.ShadowRole)
	q.add("    toFloat32(if(role_i = 0, score_pl, score_sl)), toUInt8(if(role_i = 0, score_pl, score_sl) >= 0.5),\n")
	q.add(fmt.Sprintf("    country, merchant_category, amount_usd, %s, fvalues\nFROM (\n", quoted(fnames)))

	// Middle level: latent risk, scores and features of each kept request.
	q.add("  SELECT ts, h, country, merchant_category,\n")
	q.add(fmt.Sprintf("    %s < %g AS canary,\n", u(5), canaryShare))
	q.add("    concat(if(canary, 'canary-', 'req-'), hex(h)) AS request_id,\n")
	boost, a := incidentTerms(ins, WorldShift, country(0.35, 40))
	q.add(fmt.Sprintf("    crisk + mrisk + %s + if(%s, 2.4, 0) + if(canary, 5, 0) AS risk,\n", normal(6, 7), boost), a...)
	q.add(fmt.Sprintf("    %g + %g * risk + 0.25 * %s AS logit_p,\n", intercept, slope, normal(8, 9)))
	q.add(fmt.Sprintf("    logit_p + 0.45 * %s AS logit_s,\n", normal(10, 11)))
	blocked, a := incidentTerms(ins, SliceBlock, country(0.5, 41))
	q.add(fmt.Sprintf("    if(%s, 0.5 + 0.45 * %s, 1 / (1 + exp(-logit_p))) AS score_p,\n", blocked, u(12)), a...)
	flips, a := incidentTerms(ins, ShadowDivergence, flip)
	q.add(fmt.Sprintf("    if(%s, 1 - 1 / (1 + exp(-logit_p)), 1 / (1 + exp(-logit_s))) AS score_s,\n", flips), a...)
	scoreIncidents(&q, ins)
	q.add(fmt.Sprintf("    round(exp(3.6 + 1.1 * %s + 0.25 * risk), 2) AS amount_usd,\n", normal(13, 14)))
	// Features, unrolled: each is its own expression with its constants,
	// nulls (baseline rate plus null_spike incidents) and fills.
	q.add("    floor(local_hour) AS hour_local,\n")
	q.add("    [")
	for i, f := range Features {
		if i > 0 {
			q.add(",\n     ")
		}
		z := fmt.Sprintf("(%g * risk + %g * %s)", f.Load, math.Sqrt(1-f.Load*f.Load), quickNormal(100+i))
		x := fmt.Sprintf("(%g + %g * %s)", f.Mean, f.Scale, z)
		var v string
		switch f.Kind {
		case featNormal:
			v = x
		case featLogNormal:
			v = "exp" + x
		case featCount:
			v = "floor(exp" + x + ")"
		case featBinary:
			v = "if(" + x + " > 0, 1., 0.)"
		case featHour:
			v = "hour_local"
		}
		isFeature := func(in Incident) bool { return in.Arg == f.Name }
		nulls, na := incidentTerms(filter(ins, isFeature), NullSpike, share(0.9, 300+i))
		fills, fa := incidentTerms(filter(ins, isFeature), DefaultFill, share(0.9, 400+i))
		q.add(fmt.Sprintf("if(%s < %g OR %s, NULL, if(%s, 0., round(toFloat64(%s), 4)))", u(200+i), nullRate, nulls, fills, v), append(na, fa...)...)
	}
	q.add("] AS fvalues\n")
	q.add("  FROM (\n")

	// Inner level: arrival process (thinned per minute) and slice draws.
	q.add("    SELECT intHash64(number + ?) AS h,\n", seedMix(opt.Seed))
	q.add("      toDateTime(? + intDiv(number, ?) * 60 + h % 60) AS ts,\n", from.Unix(), slots)
	q.add(fmt.Sprintf("      arrayFirstIndex(x -> x >= %s, %s) AS ci,\n", u(1), floats(cumulative(cw))))
	q.add(fmt.Sprintf("      %s[ci] AS country, %s[ci] AS tz, %s[ci] AS crisk,\n", quoted(codes), floats(tz), floats(risk)))
	q.add(fmt.Sprintf("      arrayFirstIndex(x -> x >= %s, %s) AS mi,\n", u(2), floats(cumulative(mw))))
	q.add(fmt.Sprintf("      %s[mi] AS merchant_category, %s[mi] AS mrisk,\n", quoted(mnames), floats(mrisk)))
	q.add("      ((toHour(ts) + tz + 24) % 24) + toMinute(ts) / 60 AS local_hour,\n")
	q.add("      (1 + 0.6 * sin(6.283185307179586 * (local_hour - 10) / 24)) * if(toDayOfWeek(ts) >= 6, 0.85, 1)\n")
	q.add("        * (1 + 0.16 * (intHash64(? + toUInt64(toRelativeDayNum(ts))) / 18446744073709551616.0 - 0.5)) AS intensity\n", opt.Seed)
	q.add("    FROM numbers(?, ?)\n", uint64(m0)*uint64(slots), uint64(n)*uint64(slots))
	outage, a := incidentTerms(ins, Outage, func(in Incident) (string, []any) {
		if in.Arg == "" {
			return none(in)
		}
		return "country = ?", []any{in.Arg}
	})
	q.add(fmt.Sprintf("    WHERE NOT %s AND %s < ? * intensity / ?\n", outage, u(3)), append(a, opt.Rate, slots)...)
	noShadow, a := incidentTerms(ins, ShadowOutage, none)
	q.add(fmt.Sprintf("  )\n) ARRAY JOIN [0, 1] AS role_i\nWHERE NOT (role_i = 1 AND %s)", noShadow), a...)
	return q.b.String(), q.args
}

func tableOf(name string) store.Table {
	if i := strings.IndexByte(name, '.'); i > 0 {
		return store.Table{Database: name[:i], Name: name[i+1:]}
	}
	return store.Table{Name: name}
}
