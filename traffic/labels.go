package traffic

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Incident kinds of the ground truth and of promotion tests.
const (
	// LabelsStop: no label arrives in [Start, End) (the labels feed broke).
	LabelsStop = "labels_stop"
	// ModelBlind: production scores 70% of the requests of a country (every
	// country when the argument is omitted) as a tenth of what it should:
	// it stops catching fraud there; the shadow does not.
	ModelBlind = "model_blind"
	// ShadowCountryBlock: the shadow blocks 80% of one country's requests.
	ShadowCountryBlock = "shadow_country_block"
)

func init() {
	IncidentKinds[LabelsStop] = struct{ Arg, Default string }{"", ""}
	IncidentKinds[ModelBlind] = struct{ Arg, Default string }{"country (all when omitted)", ""}
	IncidentKinds[ShadowCountryBlock] = struct{ Arg, Default string }{"country", "FR"}
}

// checkLabelIncident validates the argument of the kinds of this file.
func checkLabelIncident(in Incident) error {
	switch in.Kind {
	case LabelsStop:
		if in.Arg != "" {
			return fmt.Errorf("labels_stop takes no argument")
		}
	case ModelBlind, ShadowCountryBlock:
		if in.Arg != "" && countryIndex(in.Arg) == 0 {
			return fmt.Errorf("unknown country %q", in.Arg)
		}
	}
	return nil
}

// Ground truth of the generated traffic. A request is fraud with the
// probability its latent risk gives (the production model's logit before
// incidents: production is calibrated, the shadow is noisier), so the
// labels are the same whatever incident touched the scores. Labels arrive
// after a log-normal delay (median 3 days for fraud, chargebacks being
// slow, 1 day for good requests; sigma 1: a tail of weeks, capped at 90
// days) and only for LabelCoverage of the requests.
const (
	LabelCoverage     = 0.85
	fraudDelayMedian  = 3 * 24 * time.Hour
	goodDelayMedian   = 24 * time.Hour
	labelDelaySigma   = 1.0
	maxLabelDelayDays = 90
)

// LabelOptions describe one labels run: the labels of the production
// requests already generated in [From, To) with Seed and Incidents.
type LabelOptions struct {
	Model     *configs.Model
	From, To  time.Time
	Incidents []Incident
}

// GenerateLabels writes the labels of the model's generated requests in
// [From, To) into its labels table, in one INSERT ... SELECT that reads
// the production rows back (the request id carries the request's hash, so
// the draws are the generator's own). Labels may lie in the future of To:
// a detector sees only those that arrived by its evaluation time.
func GenerateLabels(ctx context.Context, s store.Store, opt LabelOptions) error {
	m := opt.Model
	if m == nil || m.Labels == nil {
		return fmt.Errorf("generate labels: model has no labels block")
	}
	if m.Labels.Table == "" {
		return fmt.Errorf("generate labels: model %s keeps labels in the prediction table; the generator writes a labels table (set labels.table)", m.Name)
	}
	q, args := labelsSQL(opt)
	if err := s.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("generate labels: %w", err)
	}
	return nil
}

func labelsSQL(opt LabelOptions) (string, []any) {
	m := opt.Model
	l := m.Labels
	codes := make([]string, len(Countries))
	risk := make([]float64, len(Countries))
	for i, c := range Countries {
		codes[i], risk[i] = c.Code, c.Risk
	}
	mnames := make([]string, len(Merchants))
	mrisk := make([]float64, len(Merchants))
	for i, x := range Merchants {
		mnames[i], mrisk[i] = x.Name, x.Risk
	}
	var q query
	q.add(fmt.Sprintf("INSERT INTO %s (%s, %s, %s)\n", store.ParseTable(m.LabelsTable()).Quoted(),
		store.MustIdent(l.Columns.RequestID), store.MustIdent(l.Columns.Label), store.MustIdent(l.Columns.LabeledAt)))
	q.add("SELECT request_id, fraud, labeled_at FROM (\n")
	q.add("  SELECT request_id, ts, country,\n")
	q.add("    reinterpretAsUInt64(reverse(unhex(substring(request_id, position(request_id, '-') + 1)))) AS h,\n")
	q.add(fmt.Sprintf("    transform(country, %s, %s, 0.) + transform(merchant_category, %s, %s, 0.) AS base_risk,\n",
		quoted(codes), floats(risk), quoted(mnames), floats(mrisk)))
	boost, a := incidentTerms(opt.Incidents, WorldShift, func(in Incident) (string, []any) {
		return fmt.Sprintf("country = ? AND %s < 0.35", u(40)), []any{in.Arg}
	})
	q.add(fmt.Sprintf("    base_risk + %s + if(%s, 2.4, 0) + if(startsWith(request_id, 'canary-'), %g, 0) AS risk,\n", normal(6, 7), boost, canaryRisk), a...)
	q.add(fmt.Sprintf("    %g + %g * risk + %g * %s AS logit,\n", intercept, slope, noiseSD, normal(8, 9)))
	q.add(fmt.Sprintf("    toUInt8(%s < 1 / (1 + exp(-logit))) AS fraud,\n", u(604)))
	q.add(fmt.Sprintf("    least(%d, if(fraud, %g, %g) * exp(%g * %s)) AS delay_days,\n", maxLabelDelayDays,
		fraudDelayMedian.Hours()/24, goodDelayMedian.Hours()/24, labelDelaySigma, normal(605, 606)))
	q.add("    toDateTime(toUInt32(ts) + toUInt32(delay_days * 86400)) AS labeled_at,\n")
	q.add(fmt.Sprintf("    %s < %g AS covered\n", u(607), LabelCoverage))
	c := m.Columns
	ts := store.MustIdent(c.TS)
	q.add(fmt.Sprintf("  FROM %s PREWHERE %s >= ? AND %s < ?\n", store.ParseTable(m.Table).Quoted(), ts, ts), opt.From.UTC(), opt.To.UTC())
	q.add(fmt.Sprintf("  WHERE %s = ? AND %s = ?\n)\n", store.MustIdent(c.Model), store.MustIdent(c.Role)), m.ModelValue, m.Shadow.ProductionRole)
	var stops []string
	for _, in := range opt.Incidents {
		if in.Kind == LabelsStop {
			stops = append(stops, "(labeled_at >= ? AND labeled_at < ?)")
			q.args = append(q.args, in.Start, in.End)
		}
	}
	q.add("WHERE covered")
	if len(stops) > 0 {
		q.add(" AND NOT (" + strings.Join(stops, " OR ") + ")")
	}
	return q.b.String(), q.args
}

// scoreIncidents renders the middle level's final scores score_pl and
// score_sl: score_p and score_s after model_blind and
// shadow_country_block.
func scoreIncidents(q *query, ins []Incident) {
	blind, a := incidentTerms(ins, ModelBlind, func(in Incident) (string, []any) {
		if in.Arg == "" {
			return fmt.Sprintf("%s < 0.7", u(601)), nil
		}
		return fmt.Sprintf("country = ? AND %s < 0.7", u(601)), []any{in.Arg}
	})
	q.add(fmt.Sprintf("    if(%s, 0.1 * score_p, score_p) AS score_pl,\n", blind), a...)
	block, a := incidentTerms(ins, ShadowCountryBlock, func(in Incident) (string, []any) {
		return fmt.Sprintf("country = ? AND %s < 0.8", u(602)), []any{in.Arg}
	})
	q.add(fmt.Sprintf("    if(%s, 0.5 + 0.45 * %s, score_s) AS score_sl,\n", block, u(603)), a...)
}
