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
	canaryRisk  = 5.0 // a canary's latent risk offset: always blocked
	nullRate    = 0.005
	noiseSD     = 0.25 // the production score's own noise on the logit
)

// Incident shapes.
const (
	spikeShare   = 0.9             // share of rows a null_spike or cascade nulls
	cascadeShift = 3.0             // production's logit shift on a cascade's NULL rows
	rolloutShare = 0.94            // share of production rows a version_rollout takes
	rolloutRamp  = 5 * time.Minute // time the rollout takes to reach it
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
		store.ParseTable(m.Table).Quoted(), store.MustIdent(c.TS), store.MustIdent(c.RequestID), store.MustIdent(c.Model),
		store.MustIdent(c.ModelVersion), store.MustIdent(c.Role), store.MustIdent(c.Score), store.MustIdent(c.Decision),
		store.MustIdent(m.Features.NamesColumn), store.MustIdent(m.Features.ValuesColumn)))

	// Outer level: one production and one shadow row per request.
	q.add("SELECT ts, request_id, ?, if(role_i = 0, version_p, ?), if(role_i = 0, ?, ?),\n",
		m.ModelValue, ShadowVersion, m.Shadow.ProductionRole, m.Shadow.ShadowRole)
	q.add("    toFloat32(if(role_i = 0, score_pl, score_sl)), toUInt8(if(role_i = 0, score_pl, score_sl) >= 0.5),\n")
	q.add(fmt.Sprintf("    country, merchant_category, amount_usd, %s, fvalues\nFROM (\n", quoted(fnames)))

	// Middle level: latent risk, scores and features of each kept request.
	q.add("  SELECT ts, h, country, merchant_category,\n")
	q.add(fmt.Sprintf("    %s < %g AS canary,\n", u(5), canaryShare))
	q.add("    concat(if(canary, 'canary-', 'req-'), hex(h)) AS request_id,\n")
	boost, a := incidentTerms(ins, WorldShift, country(0.35, 40))
	q.add(fmt.Sprintf("    crisk + mrisk + %s + if(%s, 2.4, 0) + if(canary, %g, 0) AS risk,\n", normal(6, 7), boost, canaryRisk), a...)
	q.add(fmt.Sprintf("    %g + %g * risk + %g * %s AS logit_p,\n", intercept, slope, noiseSD, normal(8, 9)))
	q.add(fmt.Sprintf("    logit_p + 0.45 * %s AS logit_s,\n", normal(10, 11)))
	blocked, a := incidentTerms(ins, SliceBlock, country(0.5, 41))
	q.add(fmt.Sprintf("    %s AS slice_blocked,\n", blocked), a...)
	catBlocked, a := incidentTerms(ins, CategoryBlock, func(in Incident) (string, []any) {
		name, share := in.nameFactor()
		return fmt.Sprintf("merchant_category = ? AND %s < %g", u(45), share), []any{name}
	})
	q.add(fmt.Sprintf("    %s AS category_blocked,\n", catBlocked), a...)
	// version_rollout: the new production version takes a share of the
	// rows ramping from 0 to rolloutShare over rolloutRamp after START.
	versions, a := rolloutVersions(ins)
	q.add("    "+versions+" AS version_p,\n", a...)
	// A block-rate factor f (rows on a rolled-out version, a ramping
	// country) blocks extra rows with probability (f-1)·b/(1-b), b the
	// quiet block rate of the row's country and category: the cell's rate
	// becomes b + (f-1)·b = f·b whatever its risk.
	factor, a := blockFactor(ins)
	q.add("    "+factor+" AS factor_p,\n", a...)
	if factor == "1" {
		q.add("    0 AS extra_blocked,\n")
	} else {
		q.add(fmt.Sprintf("    %s[(ci - 1) * %d + mi] AS cell_rate,\n", floats(cellBlockRates()), len(Merchants)))
		q.add(fmt.Sprintf("    NOT canary AND %s < (factor_p - 1) * cell_rate / (1 - cell_rate) AS extra_blocked,\n", u(44)))
	}
	// cascade: production's fallback for the missing feature is wrong and
	// adds cascadeShift to the logit of the rows where it is NULL.
	cascade, a := incidentTerms(ins, Cascade, func(in Incident) (string, []any) {
		return fmt.Sprintf("%s < %g", u(300+FeatureIndex(in.Arg)-1), spikeShare), nil
	})
	q.add(fmt.Sprintf("    if(%s, %g, 0) AS cascade_shift,\n", cascade, cascadeShift), a...)
	// canary_fail: production scores canaries as ordinary requests.
	canaryFail, a := incidentTerms(ins, CanaryFail, none)
	q.add(fmt.Sprintf("    if(canary AND %s, %g, 0) AS canary_shift,\n", canaryFail, -slope*canaryRisk), a...)
	q.add(fmt.Sprintf("    if(slice_blocked OR category_blocked OR extra_blocked, 0.5 + 0.45 * %s, 1 / (1 + exp(-(logit_p + cascade_shift + canary_shift)))) AS score_p,\n", u(12)))
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
		nulls, na := incidentTerms(filter(ins, isFeature), NullSpike, share(spikeShare, 300+i))
		cnulls, ca := incidentTerms(filter(ins, isFeature), Cascade, share(spikeShare, 300+i))
		nulls, na = "("+nulls+" OR "+cnulls+")", append(na, ca...)
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

// cellBlockRates returns the quiet production block rate of each (country,
// merchant category) cell, country-major: logit_p is normal with mean
// intercept + slope·(crisk + mrisk) and variance slope² + noiseSD², and a
// row is blocked when it is >= 0 (canaries aside).
func cellBlockRates() []float64 {
	sd := math.Hypot(slope, noiseSD)
	out := make([]float64, 0, len(Countries)*len(Merchants))
	for _, c := range Countries {
		for _, m := range Merchants {
			mu := intercept + slope*(c.Risk+m.Risk)
			out = append(out, math.Round(0.5*math.Erfc(-mu/sd/math.Sqrt2)*1e7)/1e7)
		}
	}
	return out
}

// rolloutVersions renders the production version of a row: a
// version_rollout's new version on a share of its rows that ramps from 0
// at START to rolloutShare after rolloutRamp, the usual one elsewhere.
func rolloutVersions(ins []Incident) (string, []any) {
	var parts []string
	var args []any
	for _, in := range ins {
		if in.Kind != VersionRollout {
			continue
		}
		name, _ := in.nameFactor()
		parts = append(parts, fmt.Sprintf("ts >= ? AND ts < ? AND %s < %g * least(1, (toUInt32(ts) - ?) / %g), ?", u(43), rolloutShare, rolloutRamp.Seconds()))
		args = append(args, in.Start, in.End, in.Start.Unix(), name)
	}
	if len(parts) == 0 {
		return "?", []any{ProductionVersion}
	}
	return "multiIf(" + strings.Join(parts, ", ") + ", ?)", append(args, ProductionVersion)
}

// blockFactor renders the production block-rate factor of a row: the
// product of its version_rollout factor (rows on the new version) and its
// ramp factor (rising linearly from 1 at START to the final factor at END
// in the ramp's country); "1" when no incident sets one.
func blockFactor(ins []Incident) (string, []any) {
	var parts []string
	var args []any
	for _, in := range ins {
		name, f := in.nameFactor()
		switch in.Kind {
		case VersionRollout:
			parts = append(parts, fmt.Sprintf("if(version_p = ?, %g, 1)", f))
			args = append(args, name)
		case Ramp:
			parts = append(parts, fmt.Sprintf("if(country = ? AND ts >= ? AND ts < ?, 1 + %g * (toUInt32(ts) - ?) / %g, 1)", f-1, in.End.Sub(in.Start).Seconds()))
			args = append(args, name, in.Start, in.End, in.Start.Unix())
		}
	}
	if len(parts) == 0 {
		return "1", nil
	}
	return strings.Join(parts, " * "), args
}
