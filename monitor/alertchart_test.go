package monitor

import (
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/detectors"
)

// The alert page draws the last day and week from the log where the
// metric has a series, with version changes from the log, the alert's
// start and the onset; a metric without a series falls back to the
// evaluations, and the status page's card draws the last day.
func TestAlertChartsFromTheLog(t *testing.T) {
	views := sampleViews()
	onset := now.Add(-3 * time.Hour)
	views[2].Onset = &onset
	fa := &fakeAlerts{views: views}
	var spans []time.Duration
	logSeries := func(_ context.Context, v alerts.View, span time.Duration, _ time.Time) ([]Point, error) {
		if v.Metric != "block_rate" {
			return nil, fmt.Errorf("chart of %s: %w", v.Metric, detectors.ErrNoSeries)
		}
		spans = append(spans, span)
		var pts []Point
		for i := 0; i <= 96; i++ {
			at := now.Add(-span + span*time.Duration(i)/96)
			val := 0.01
			if at.After(onset) {
				val = 0.2
			}
			pts = append(pts, Point{At: at, Value: val, Baseline: 0.01, Low: 0.005, High: 0.015, Shadow: 0.011, Firing: val > 0.015})
		}
		return pts, nil
	}
	evals := func(context.Context, alerts.View) ([]Point, error) {
		return []Point{{At: now.Add(-time.Hour), Value: 0.5, Baseline: 0.01, Low: math.NaN(), High: math.NaN(), Shadow: math.NaN()},
			{At: now, Value: 0.9, Baseline: 0.01, Low: math.NaN(), High: math.NaN(), Shadow: math.NaN()}}, nil
	}
	changes := func(_ context.Context, model string, span time.Duration, _ time.Time) ([]detectors.VersionChange, error) {
		return []detectors.VersionChange{{Role: "production", From: "v7", To: "v8", At: now.Add(-200 * time.Minute)}}, nil
	}
	srv := httptest.NewServer(Handler(ServerOptions{Alerts: fa, Series: evals, LogSeries: logSeries, VersionChanges: changes, Now: func() time.Time { return now }}))
	defer srv.Close()

	_, page := do(t, "GET", srv.URL+"/alerts/prod2", "", "")
	if n := strings.Count(page, `class="chart"`); n != 2 {
		t.Fatalf("alert page has %d charts, want 2", n)
	}
	for _, want := range []string{"last 24 h from the prediction log", "last 7 d from the prediction log", "production v7 → v8", ">version change<",
		`class="alert-start"`, "alert since " + onset.Format("15:04"), "onset in the prediction log", ">shadow model<", ">block_rate<"} {
		if !strings.Contains(page, want) {
			t.Errorf("alert page lacks %q", want)
		}
	}
	if len(spans) != 2 || spans[0] != 24*time.Hour || spans[1] != 7*24*time.Hour {
		t.Errorf("spans asked %v, want 24h then 168h", spans)
	}
	_, page = do(t, "GET", srv.URL+"/alerts/infra1", "", "")
	if !strings.Contains(page, "from mlwatch&#39;s evaluations") && !strings.Contains(page, "from mlwatch's evaluations") {
		t.Errorf("null_rate chart should come from the evaluations:\n%.1500s", page)
	}
	spans = nil
	_, page = do(t, "GET", srv.URL+"/", "", "")
	if !strings.Contains(page, "last 24 h from the prediction log") || len(spans) == 0 || spans[0] != 24*time.Hour {
		t.Errorf("status page cards: spans %v", spans)
	}
	if !strings.Contains(page, "since "+onset.UTC().Format("2006-01-02 15:04 UTC")) {
		t.Error("status page card does not say since the onset")
	}
}
