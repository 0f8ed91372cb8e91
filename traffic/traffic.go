// Package traffic generates realistic prediction logs of a fraud model
// inside ClickHouse (INSERT ... SELECT FROM numbers), with injectable
// incidents: the demo's data, the tests' ground truth, the benchmark's load.
//
// The shape: requests arrive by minute with a daily cycle in each country's
// local time, weekends quieter and a day-to-day wobble; ~30 countries with
// skewed volume and different fraud risk; 8 merchant categories; 20
// features driven by a latent risk, with ~0.5% nulls; a production and a
// shadow row per request whose scores are correlated; block rate ~1%; a
// small stream of canary requests (request_id "canary-...") that should
// always be blocked. Every random draw is a hash of (seed, request number),
// so a seed gives the same rows on both engines.
package traffic

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Country is one generated country: volume weight, local-time offset and
// a fraud-risk offset on the latent scale.
type Country struct {
	Code   string
	Weight float64
	TZ     int // hours from UTC
	Risk   float64
}

// Countries is the generated country mix (weights sum to 1).
var Countries = []Country{
	{"US", 0.24, -5, 0.00}, {"GB", 0.09, 0, -0.10}, {"DE", 0.08, 1, -0.20}, {"FR", 0.07, 1, -0.05},
	{"BR", 0.06, -3, 0.45}, {"IN", 0.05, 5, 0.35}, {"CA", 0.04, -5, -0.10}, {"ES", 0.035, 1, 0.00},
	{"IT", 0.035, 1, 0.05}, {"NL", 0.03, 1, -0.20}, {"MX", 0.03, -6, 0.40}, {"AU", 0.025, 10, -0.10},
	{"JP", 0.025, 9, -0.40}, {"PL", 0.02, 1, 0.10}, {"SE", 0.015, 1, -0.30}, {"TR", 0.015, 3, 0.40},
	{"ID", 0.015, 7, 0.50}, {"NG", 0.012, 1, 0.90}, {"AR", 0.012, -3, 0.35}, {"ZA", 0.012, 2, 0.40},
	{"BE", 0.012, 1, -0.10}, {"CH", 0.01, 1, -0.30}, {"KR", 0.01, 9, -0.20}, {"PH", 0.01, 8, 0.55},
	{"VN", 0.008, 7, 0.50}, {"CO", 0.008, -5, 0.45}, {"EG", 0.006, 2, 0.60}, {"PT", 0.006, 0, 0.00},
	{"IE", 0.004, 0, -0.10}, {"NZ", 0.003, 12, -0.20},
}

// Merchant is one generated merchant category.
type Merchant struct {
	Name   string
	Weight float64
	Risk   float64
}

// Merchants is the generated merchant-category mix.
var Merchants = []Merchant{
	{"grocery", 0.25, -0.40}, {"retail", 0.20, 0.00}, {"travel", 0.10, 0.30}, {"electronics", 0.10, 0.55},
	{"restaurants", 0.15, -0.30}, {"digital_goods", 0.08, 0.70}, {"gaming", 0.07, 0.60}, {"fuel", 0.05, -0.20},
}

// Feature kinds shape a feature's values.
const (
	featNormal = iota // real-valued, roughly normal
	featLogNormal
	featCount // non-negative integers
	featBinary
	featHour // the local hour of the request
)

// Feature is one generated feature: how strongly it follows the latent
// risk, and its scale.
type Feature struct {
	Name  string
	Kind  int
	Load  float64 // correlation with latent risk
	Mean  float64
	Scale float64
}

// Features are the 20 generated features, in array order.
var Features = []Feature{
	{"amount_zscore", featNormal, 0.45, 0, 1},
	{"account_age_days", featLogNormal, -0.40, 5.5, 1.1},
	{"txn_count_1h", featCount, 0.50, 0.3, 0.8},
	{"txn_count_24h", featCount, 0.40, 1.5, 0.8},
	{"avg_amount_30d", featLogNormal, 0.10, 4.0, 0.9},
	{"distinct_merchants_7d", featCount, 0.30, 1.4, 0.6},
	{"ip_risk_score", featNormal, 0.55, 0.2, 0.15},
	{"device_age_days", featLogNormal, -0.45, 4.5, 1.2},
	{"email_domain_risk", featNormal, 0.35, 0.1, 0.08},
	{"billing_shipping_mismatch", featBinary, 0.50, -1.2, 1},
	{"card_age_days", featLogNormal, -0.30, 6.0, 0.8},
	{"velocity_score", featNormal, 0.60, 0.5, 0.2},
	{"chargeback_rate_90d", featLogNormal, 0.35, -5.0, 1.0},
	{"country_mismatch", featBinary, 0.40, -1.8, 1},
	{"hour_of_day", featHour, 0.00, 0, 0},
	{"session_duration_s", featLogNormal, -0.25, 5.0, 1.0},
	{"failed_logins_24h", featCount, 0.45, -0.5, 1.0},
	{"merchant_risk", featNormal, 0.30, 0.3, 0.1},
	{"bin_risk", featNormal, 0.25, 0.2, 0.1},
	{"address_change_7d", featBinary, 0.35, -2.2, 1},
}

// FeatureIndex returns the 1-based array position of a feature name, or 0.
func FeatureIndex(name string) int {
	for i, f := range Features {
		if f.Name == name {
			return i + 1
		}
	}
	return 0
}

// Incident kinds.
const (
	SliceBlock       = "slice_block"
	NullSpike        = "null_spike"
	DefaultFill      = "default_fill"
	WorldShift       = "world_shift"
	Outage           = "outage"
	ShadowDivergence = "shadow_divergence"
	ShadowOutage     = "shadow_outage"
	CategoryBlock    = "category_block"
	VersionRollout   = "version_rollout"
	Cascade          = "cascade"
	CanaryFail       = "canary_fail"
	Ramp             = "ramp"
)

// NewVersion is the production model_version a version_rollout deploys
// when its argument names none.
const NewVersion = "fraud-2026.12.0"

// IncidentKinds lists every kind with its argument's meaning and default.
var IncidentKinds = map[string]struct{ Arg, Default string }{
	SliceBlock:       {"country", "FR"},
	NullSpike:        {"feature", "device_age_days"},
	DefaultFill:      {"feature", "ip_risk_score"},
	WorldShift:       {"country", "BR"},
	Outage:           {"country (all when omitted)", ""},
	ShadowDivergence: {"share of flipped decisions", "0.2"},
	ShadowOutage:     {"", ""},
	CategoryBlock:    {"merchant category[:share of its rows blocked]", "electronics:0.5"},
	VersionRollout:   {"new production version[:block-rate factor]", NewVersion + ":3"},
	Cascade:          {"feature whose nulls production blocks", "device_age_days"},
	CanaryFail:       {"", ""},
	Ramp:             {"country[:final block-rate factor]", "MX:4"},
}

// Incident is one injected fault in [Start, End).
type Incident struct {
	Kind       string
	Start, End time.Time
	Arg        string
}

func (in Incident) String() string {
	s := fmt.Sprintf("%s %s..%s", in.Kind, in.Start.Format(time.RFC3339), in.End.Format(time.RFC3339))
	if in.Arg != "" {
		s += " " + in.Arg
	}
	return s
}

var timeTok = `(\+[0-9wdhms.]+|\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))`
var incidentRe = regexp.MustCompile(`^([a-z_]+):` + timeTok + `:` + timeTok + `(?::(.+))?$`)

// ParseIncident reads KIND:START:END[:ARG]. START and END are RFC 3339
// times or offsets from base written as +DURATION (e.g. +2d10h).
func ParseIncident(s string, base time.Time) (Incident, error) {
	m := incidentRe.FindStringSubmatch(s)
	if m == nil {
		return Incident{}, fmt.Errorf("incident %q: want KIND:START:END[:ARG] with RFC 3339 times or +offsets (e.g. slice_block:+5d10h:+5d13h:FR)", s)
	}
	in := Incident{Kind: m[1], Arg: m[4]}
	info, ok := IncidentKinds[in.Kind]
	if !ok {
		kinds := make([]string, 0, len(IncidentKinds))
		for k := range IncidentKinds {
			kinds = append(kinds, k)
		}
		return Incident{}, fmt.Errorf("incident %q: unknown kind %q (want one of %s)", s, in.Kind, strings.Join(sortStrings(kinds), ", "))
	}
	var err error
	if in.Start, err = parseTime(m[2], base); err != nil {
		return Incident{}, fmt.Errorf("incident %q: start: %w", s, err)
	}
	if in.End, err = parseTime(m[3], base); err != nil {
		return Incident{}, fmt.Errorf("incident %q: end: %w", s, err)
	}
	if !in.End.After(in.Start) {
		return Incident{}, fmt.Errorf("incident %q: end must be after start", s)
	}
	if in.Arg == "" {
		in.Arg = info.Default
	}
	switch in.Kind {
	case SliceBlock, WorldShift:
		if countryIndex(in.Arg) == 0 {
			return Incident{}, fmt.Errorf("incident %q: unknown country %q", s, in.Arg)
		}
	case NullSpike, DefaultFill:
		if FeatureIndex(in.Arg) == 0 {
			return Incident{}, fmt.Errorf("incident %q: unknown feature %q", s, in.Arg)
		}
	case ShadowDivergence:
		var share float64
		if _, err := fmt.Sscanf(in.Arg, "%g", &share); err != nil || share <= 0 || share > 1 {
			return Incident{}, fmt.Errorf("incident %q: share %q must be a number in (0, 1]", s, in.Arg)
		}
	case ShadowOutage:
		if in.Arg != "" {
			return Incident{}, fmt.Errorf("incident %q: shadow_outage takes no argument", s)
		}
	case Outage:
		if in.Arg != "" && countryIndex(in.Arg) == 0 {
			return Incident{}, fmt.Errorf("incident %q: unknown country %q", s, in.Arg)
		}
	case Cascade:
		if FeatureIndex(in.Arg) == 0 {
			return Incident{}, fmt.Errorf("incident %q: unknown feature %q", s, in.Arg)
		}
	case CanaryFail:
		if in.Arg != "" {
			return Incident{}, fmt.Errorf("incident %q: canary_fail takes no argument", s)
		}
	case CategoryBlock, VersionRollout, Ramp:
		if err := in.checkNameFactor(); err != nil {
			return Incident{}, fmt.Errorf("incident %q: %w", s, err)
		}
	}
	if err := checkLabelIncident(in); err != nil {
		return Incident{}, fmt.Errorf("incident %q: %w", s, err)
	}
	return in, nil
}

// nameFactor splits an argument NAME[:NUMBER] of category_block,
// version_rollout and ramp, the number defaulting to the kind's default.
func (in Incident) nameFactor() (string, float64) {
	name, num, ok := strings.Cut(in.Arg, ":")
	if !ok {
		_, num, _ = strings.Cut(IncidentKinds[in.Kind].Default, ":")
	}
	x, err := strconv.ParseFloat(num, 64)
	if err != nil {
		x = math.NaN()
	}
	return name, x
}

func (in Incident) checkNameFactor() error {
	name, x := in.nameFactor()
	switch in.Kind {
	case CategoryBlock:
		if merchantIndex(name) == 0 {
			return fmt.Errorf("unknown merchant category %q", name)
		}
		if !(x > 0 && x <= 1) {
			return fmt.Errorf("share of blocked rows in %q must be a number in (0, 1]", in.Arg)
		}
	case VersionRollout:
		if name == "" || name == ProductionVersion || name == ShadowVersion {
			return fmt.Errorf("new version %q must be non-empty and differ from %s and %s", name, ProductionVersion, ShadowVersion)
		}
		if !(x > 0 && x <= 50) {
			return fmt.Errorf("block-rate factor in %q must be a number in (0, 50]", in.Arg)
		}
	case Ramp:
		if countryIndex(name) == 0 {
			return fmt.Errorf("unknown country %q", name)
		}
		if !(x > 0 && x <= 50) {
			return fmt.Errorf("final block-rate factor in %q must be a number in (0, 50]", in.Arg)
		}
	}
	return nil
}

func parseTime(s string, base time.Time) (time.Time, error) {
	if strings.HasPrefix(s, "+") {
		d, err := configs.ParseDuration(s[1:])
		if err != nil {
			return time.Time{}, err
		}
		return base.Add(d).UTC(), nil
	}
	return time.Parse(time.RFC3339, s)
}

func countryIndex(code string) int {
	for i, c := range Countries {
		if c.Code == code {
			return i + 1
		}
	}
	return 0
}

func merchantIndex(name string) int {
	for i, m := range Merchants {
		if m.Name == name {
			return i + 1
		}
	}
	return 0
}

func sortStrings(xs []string) []string {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j] < xs[j-1]; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
	return xs
}

// Options describe one generation run.
type Options struct {
	Model     *configs.Model
	From, To  time.Time
	Rate      float64 // mean requests per minute on a weekday (each request logs two rows)
	Seed      uint64
	Incidents []Incident
	// Concurrency is how many INSERTs run at once (default 1). A server
	// runs each INSERT ... SELECT on one thread, so 2 uses both cores of a
	// small machine; the embedded engine serialises queries anyway.
	Concurrency int
	// Progress, when set, is called after each chunk with the minutes done.
	Progress func(done, total int)
	// Origin, when set (at or before From), numbers the minutes from it
	// instead of From: the rows of a minute then do not depend on the
	// range, and runs over parts of a range insert exactly the rows of
	// one run over the whole with the same Origin and Seed.
	Origin time.Time
}

// Stats reports what a run inserted.
type Stats struct {
	Minutes  int
	Duration time.Duration
}

// chunkRows bounds the candidate rows of one INSERT, to bound server
// memory and keep each INSERT well inside a query timeout on a busy
// machine (2M candidates took over two minutes with two cores shared).
// Rows do not depend on the chunking.
const chunkRows = 500_000

// Generate inserts the traffic into the model's table.
func Generate(ctx context.Context, s store.Store, opt Options) (Stats, error) {
	m := opt.Model
	if m == nil {
		return Stats{}, fmt.Errorf("generate: no model")
	}
	if m.Features.Layout != configs.LayoutArrays || m.Shadow.Mode != configs.ShadowRows {
		return Stats{}, fmt.Errorf("generate: model %s must use the arrays feature layout and shadow rows (the canonical schema)", m.Name)
	}
	if !(opt.Rate > 0 && opt.Rate <= 1e6) {
		return Stats{}, fmt.Errorf("generate: rate %g must be in (0, 1e6] requests per minute", opt.Rate)
	}
	from := opt.From.UTC().Truncate(time.Minute)
	to := opt.To.UTC().Truncate(time.Minute)
	if !to.After(from) {
		return Stats{}, fmt.Errorf("generate: --to %s must be after --from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	minutes := int(to.Sub(from) / time.Minute)
	origin, skip := from, 0
	if !opt.Origin.IsZero() {
		origin = opt.Origin.UTC().Truncate(time.Minute)
		if origin.After(from) {
			return Stats{}, fmt.Errorf("generate: origin %s is after --from %s", origin.Format(time.RFC3339), from.Format(time.RFC3339))
		}
		skip = int(from.Sub(origin) / time.Minute)
	}
	slots := int(math.Ceil(opt.Rate*maxIntensity)) + 1
	per := chunkRows / slots
	if per < 1 {
		per = 1
	}
	start := time.Now()
	workers := opt.Concurrency
	if workers < 1 {
		workers = 1
	}
	type chunk struct{ m0, n int }
	chunks := make(chan chunk)
	errs := make(chan error, workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	done := 0
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range chunks {
				q, args := insertSQL(opt, origin, slots, skip+c.m0, c.n)
				if err := s.Exec(ctx, q, args...); err != nil {
					errs <- fmt.Errorf("generate: minutes %d..%d: %w", c.m0, c.m0+c.n, err)
					cancel()
					return
				}
				mu.Lock()
				done += c.n
				if opt.Progress != nil {
					opt.Progress(done, minutes)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for m0 := 0; m0 < minutes; m0 += per {
		select {
		case chunks <- chunk{m0, min(per, minutes-m0)}:
		case <-ctx.Done():
			break feed
		}
	}
	close(chunks)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return Stats{}, err
	}
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	return Stats{Minutes: minutes, Duration: time.Since(start)}, nil
}
