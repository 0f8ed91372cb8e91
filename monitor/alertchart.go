package monitor

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/detectors"
)

// Spans of the alert charts: the status page card draws the last day,
// the alert page the last day and the last week.
const (
	chartDay  = 24 * time.Hour
	chartWeek = 7 * 24 * time.Hour
)

// chartTimeout bounds the queries of one chart (series and versions).
const chartTimeout = 20 * time.Second

// alertChart draws an alert's metric for its slice over span: from the
// prediction log when its metric has a series (LogSeries), else from the
// daemon's evaluations (Series, the last two days), with the baseline
// band, the shadow's line, the alert's start and the model's version
// changes.
func (s *server) alertChart(r *http.Request, v alerts.View, width int, span time.Duration) template.HTML {
	ctx, cancel := context.WithTimeout(r.Context(), chartTimeout)
	defer cancel()
	now := s.opt.Now()
	pts, fromLog := s.chartPoints(ctx, v, span, now)
	metric := v.Metric
	if shows := detectors.SeriesShows(v.Kind, v.Metric); fromLog && shows != "" {
		metric = shows // the figure drawn for the alert's (all_null: the null rate)
	}
	title := fmt.Sprintf("%s · %s", metric, sliceText(v.Slice))
	if metric != v.Metric {
		title = fmt.Sprintf("%s of the %s alert's slice · %s", metric, v.Metric, sliceText(v.Slice))
	}
	if v.Feature != "" {
		title += " · " + v.Feature
	}
	if fromLog {
		title += fmt.Sprintf(" · last %s from the prediction log", spanText(span))
	} else {
		title += " · from mlwatch's evaluations"
	}
	opt := ChartOptions{Width: width, Title: title, Percent: isRate(metric), ValueLabel: metric}
	if fromLog {
		opt.Empty = "no rows of this slice in the prediction log over this range"
	}
	switch {
	case strings.HasPrefix(metric, "disagreement_"):
		// The shadow detector's shadow figure is the score correlation.
		opt.ShadowLabel, opt.ShadowAxis = "score correlation", true
	default:
		opt.ShadowLabel = "shadow model"
	}
	opt.Markers = s.versionMarkers(ctx, v.Model, span, seriesEnd(v, span, now))
	if since := v.Since(); !since.IsZero() {
		opt.Markers = append(opt.Markers, Marker{At: since, Label: "alert since " + since.UTC().Format("15:04"), Class: "alert-start"})
	}
	return template.HTML(Chart(pts, opt)) // Chart escapes its text
}

// chartPoints are the chart's points and whether they come from the log.
func (s *server) chartPoints(ctx context.Context, v alerts.View, span time.Duration, now time.Time) ([]Point, bool) {
	if s.opt.LogSeries != nil {
		pts, err := s.opt.LogSeries(ctx, v, span, now)
		if err == nil {
			return pts, true
		}
		if !isNoSeries(err) {
			s.opt.Logger.Warn("chart from the log failed; drawing mlwatch's evaluations", zap.String("fingerprint", v.Fingerprint), zap.Error(err))
		}
	}
	if s.opt.Series == nil {
		return nil, false
	}
	pts, err := s.opt.Series(ctx, v)
	if err != nil {
		s.opt.Logger.Warn("chart series failed", zap.String("fingerprint", v.Fingerprint), zap.Error(err))
	}
	return pts, false
}

// versionMarkers are the model's version changes over the chart's span
// from the log (VersionChanges), else the rollouts the monitor saw.
func (s *server) versionMarkers(ctx context.Context, model string, span time.Duration, end time.Time) []Marker {
	if s.opt.VersionChanges == nil {
		return s.rolloutMarkers(model)
	}
	vcs, err := s.opt.VersionChanges(ctx, model, span, end)
	if err != nil {
		s.opt.Logger.Warn("version changes not read", zap.String("model", model), zap.Error(err))
		return s.rolloutMarkers(model)
	}
	var out []Marker
	for _, c := range vcs {
		out = append(out, Marker{At: c.At, Label: c.Role + " " + c.From + " → " + c.To})
	}
	return out
}

// spanText is a chart span as a reader says it: "24 h", "7 d".
func spanText(d time.Duration) string {
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d d", d/(24*time.Hour))
	}
	return fmt.Sprintf("%g h", d.Hours())
}
