package monitor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
)

// Charts from the prediction log. An alert's chart drawn from the
// daemon's own evaluations shows one dot after a restart; LogSeries reads
// the alert's metric for its slice straight from the prediction log (or
// the detector's rollup) at the detector's step, with the band its
// evaluations would have had (detectors.Series). Each series is one
// bounded query, cached for seriesTTL: a page reloaded by a whole on-call
// rotation costs one query a minute per alert and span.

// seriesTTL is how long a series read from the log is reused.
const seriesTTL = time.Minute

// seriesCache keeps recent series by alert, span and end minute.
type seriesCache struct {
	mu      sync.Mutex
	entries map[string]cachedSeries
}

type cachedSeries struct {
	made time.Time
	pts  []Point
	vcs  []detectors.VersionChange
	err  error
}

func (c *seriesCache) get(key string, now time.Time) (cachedSeries, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || now.Sub(e.made) >= seriesTTL {
		return cachedSeries{}, false
	}
	return e, true
}

func (c *seriesCache) put(key string, e cachedSeries) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cachedSeries{}
	}
	for k, old := range c.entries {
		if e.made.Sub(old.made) >= seriesTTL {
			delete(c.entries, k)
		}
	}
	c.entries[key] = e
}

// seriesEnd is where an alert's chart ends: now while it is active, a
// while after it resolved (so the chart shows it return) otherwise.
func seriesEnd(v alerts.View, span time.Duration, now time.Time) time.Time {
	if v.State == "resolved" && v.ResolvedAt != nil {
		if end := v.ResolvedAt.Add(span / 8); end.Before(now) {
			return end
		}
	}
	return now
}

// LogSeries returns the points of an alert's metric for its slice over
// the span ending now (see seriesEnd), read from the prediction log;
// detectors.ErrNoSeries when the metric cannot be (its chart then comes
// from the evaluations table, Series).
func (m *Monitor) LogSeries(ctx context.Context, v alerts.View, span time.Duration, now time.Time) ([]Point, error) {
	return m.logSeries(ctx, v.Detector, v.Metric, v.Slice, v.Feature, span, seriesEnd(v, span, now))
}

func (m *Monitor) logSeries(ctx context.Context, detector, metric string, slice map[string]string, feature string, span time.Duration, end time.Time) ([]Point, error) {
	det, _ := m.detector(detector)
	if det == nil {
		return nil, fmt.Errorf("chart: no detector %q in the config: %w", detector, detectors.ErrNoSeries)
	}
	if !det.HasSeries(metric) {
		return nil, fmt.Errorf("chart of %s %s: %w", detector, metric, detectors.ErrNoSeries)
	}
	end = end.UTC().Truncate(time.Minute)
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s\x00%d", detector, metric, detectors.SliceKey(slice), feature, span, end.Unix())
	now := time.Now()
	if e, ok := m.charts.get(key, now); ok {
		return e.pts, e.err
	}
	qctx, cancel := context.WithTimeout(ctx, det.Config().Timeout.D())
	defer cancel()
	s, err := det.Series(qctx, m.db, metric, slice, feature, end.Add(-span), end)
	var pts []Point
	if err == nil {
		pts = seriesPoints(s.Points)
	}
	if ctx.Err() == nil {
		m.charts.put(key, cachedSeries{made: now, pts: pts, err: err})
	}
	return pts, err
}

// seriesPoints turns a series into chart points; a point outside its band
// is marked as the detector's evaluation there would have seen it.
func seriesPoints(sp []detectors.SeriesPoint) []Point {
	pts := make([]Point, 0, len(sp))
	nan := math.NaN()
	for _, p := range sp {
		pt := Point{At: p.At, Value: p.Value, Baseline: nan, Low: nan, High: nan, Shadow: nan, Firing: p.Outside()}
		if p.HasBand {
			pt.Baseline, pt.Low, pt.High = p.Baseline, p.Low, p.High
		}
		if p.HasShadowVal {
			pt.Shadow = p.Shadow
		}
		pts = append(pts, pt)
	}
	return pts
}

// isNoSeries reports whether err says the metric has no log series.
func isNoSeries(err error) bool { return errors.Is(err, detectors.ErrNoSeries) }

// VersionChanges lists the switches of a model's leading version per role
// over the span ending at end, from the log (detectors.VersionChanges),
// cached like the series: the charts' markers, also for changes before
// this process started.
func (m *Monitor) VersionChanges(ctx context.Context, model string, span time.Duration, end time.Time) ([]detectors.VersionChange, error) {
	m.mu.RLock()
	cfg := m.cfg
	m.mu.RUnlock()
	var mc *configs.Model
	for i := range cfg.Models {
		if cfg.Models[i].Name == model {
			mc = &cfg.Models[i]
		}
	}
	if mc == nil {
		return nil, fmt.Errorf("version changes: no model %q in the config", model)
	}
	end = end.UTC().Truncate(time.Minute)
	key := fmt.Sprintf("versions\x00%s\x00%s\x00%d", model, span, end.Unix())
	now := time.Now()
	if e, ok := m.charts.get(key, now); ok {
		return e.vcs, e.err
	}
	qctx, cancel := context.WithTimeout(ctx, cfg.ClickHouse.QueryTimeout.D())
	defer cancel()
	vcs, err := detectors.VersionChanges(qctx, m.db, mc, end, span)
	if ctx.Err() == nil {
		m.charts.put(key, cachedSeries{made: now, vcs: vcs, err: err})
	}
	return vcs, err
}
