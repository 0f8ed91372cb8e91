package monitor

import (
	"context"
	"math"
	"time"

	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/detectors"
)

// OnsetKeeper dates incidents: which active alerts still need their
// onset read from the log, and where to record it (*alerts.Manager).
type OnsetKeeper interface {
	NeedsOnset(fingerprint string) (activeAt time.Time, ok bool)
	SetOnset(fingerprint string, activeAt, onset time.Time)
}

// OnsetLookback is how far back the onset of an incident is looked for
// first: the day chart's span. An incident that already runs at the
// start of that day is looked for again over OnsetMaxLookback (the week
// chart's span, cached for the page too); one older than that is dated
// at its start.
const (
	OnsetLookback    = 24 * time.Hour
	OnsetMaxLookback = 7 * 24 * time.Hour
)

// markOnsets dates, after a run, the alerts its findings keep active that
// have no onset yet in this process (new, or restored at start-up): the
// detector's series over the last OnsetLookback, walked back from the run
// to where the metric left its band. Alerts of metrics without a series
// of their own keep ActiveAt.
func (m *Monitor) markOnsets(ctx context.Context, det *detectors.Detector, res *detectors.Result) {
	if m.onsets == nil {
		return
	}
	for _, f := range res.Findings {
		fp := alerts.Fingerprint(f.Detector, f.Model, string(f.Class), f.Slice, f.Feature)
		activeAt, ok := m.onsets.NeedsOnset(fp)
		if !ok {
			continue
		}
		var onset time.Time
		if det.HasOnsetSeries(f.Metric) {
			onset = m.findOnset(ctx, f, fp, res.At)
		}
		if !onset.IsZero() && !onset.Before(activeAt) {
			onset = time.Time{}
		}
		m.onsets.SetOnset(fp, activeAt, onset)
	}
}

// findOnset walks the finding's series back from at over OnsetLookback,
// and over OnsetMaxLookback when the incident already ran at the start
// of the shorter span (zero when the log shows no incident at at).
func (m *Monitor) findOnset(ctx context.Context, f detectors.Finding, fp string, at time.Time) time.Time {
	var onset time.Time
	for _, span := range []time.Duration{OnsetLookback, OnsetMaxLookback} {
		pts, err := m.logSeries(ctx, f.Detector, f.Metric, f.Slice, f.Feature, span, at)
		if err != nil {
			m.log.Warn("onset not read from the log", zap.String("detector", f.Detector), zap.String("fingerprint", fp), zap.Error(err))
			return onset
		}
		onset = onsetOf(pts, at)
		if onset.IsZero() || onset.After(firstBanded(pts)) {
			return onset
		}
	}
	return onset
}

// firstBanded is the time of the first point with a band and a value
// (zero when none).
func firstBanded(pts []Point) time.Time {
	for _, p := range pts {
		if !math.IsNaN(p.Low) && !math.IsNaN(p.High) && !math.IsNaN(p.Value) {
			return p.At
		}
	}
	return time.Time{}
}

// onsetOf is detectors.Onset over chart points (zero when none).
func onsetOf(pts []Point, at time.Time) time.Time {
	sp := make([]detectors.SeriesPoint, len(pts))
	for i, p := range pts {
		sp[i] = detectors.SeriesPoint{At: p.At, Value: p.Value, Low: p.Low, High: p.High, Baseline: p.Baseline}
		sp[i].HasBand = !math.IsNaN(p.Low) && !math.IsNaN(p.High)
	}
	on, ok := detectors.Onset(sp, at)
	if !ok {
		return time.Time{}
	}
	return on
}
