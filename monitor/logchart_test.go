package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

const freshDaemonYAML = `
clickhouse: {addr: %ADDR%, database: %DB%, query_timeout: 60s}
global: {group_wait: 1s}
models:
  - name: fraud
    table: %DB%.predictions
    slices: [country]
    features: {layout: arrays, names_column: feature_names, values_column: feature_values}
    shadow: {mode: rows, production_role: production, shadow_role: shadow}
    owners: {product: p, infra: i}
detectors:
  - name: rate
    kind: block_rate
    model: fraud
    schedule: "@every 30s"
    window: 1h
    baseline: {mode: seasonal, days: 1}
    min_samples: 100
    slices: [country]
    block_rate: {score_psi: false}
receivers:
  - {name: p, webhook: {url: "http://127.0.0.1:1/p"}}
  - {name: i, webhook: {url: "http://127.0.0.1:1/i"}}
`

// A daemon started five hours into an incident (FR blocks half its
// traffic): its first run fires the FR alert, the alert is dated from the
// log (onset ≈ the incident's start, not the start of the daemon) in the
// API and on the page, and the alert page, loaded in headless Chromium,
// draws a 24 h line from the prediction log whose points span the whole
// window with the incident visible as a jump, plus the 7 d chart, the
// band, the legend and the alert's start.
func TestFreshDaemonChartsTheIncidentFromTheLog(t *testing.T) {
	e := storetest.ServerEngine(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Minute)
	incident := now.Add(-5 * time.Hour)
	path := filepath.Join(t.TempDir(), "mlwatch.yaml")
	text := strings.NewReplacer("%ADDR%", storetest.ServerAddr(), "%DB%", e.Database).Replace(freshDaemonYAML)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Apply(ctx, e.DB, e.Database, []store.TableDef{store.PredictionsDef("predictions")}); err != nil {
		t.Fatal(err)
	}
	in, _ := traffic.ParseIncident("slice_block:+0s:+2h:FR", incident)
	in.End = now.Add(time.Hour)
	if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: now.Add(-50 * time.Hour), To: now.Add(2 * time.Minute),
		Rate: 100, Seed: 3, Incidents: []traffic.Incident{in}, Concurrency: 2}); err != nil {
		t.Fatal(err)
	}

	dctx, cancel := context.WithCancel(ctx)
	addrCh, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- RunDaemon(dctx, DaemonOptions{ConfigPath: path, Env: func(string) (string, bool) { return "", false },
			ListenAddress: "127.0.0.1:0", PipelineInterval: time.Second, Listening: func(a string) { addrCh <- a },
			Open: func(ctx context.Context, c *configs.Config, hooks ...store.Hook) (*store.DB, error) {
				return store.Open(ctx, store.Options{Addr: c.ClickHouse.Addr, Database: c.ClickHouse.Database, QueryTimeout: c.ClickHouse.QueryTimeout.D(), Hooks: hooks})
			}})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("daemon did not stop within 60s")
		}
	})
	var base string
	select {
	case a := <-addrCh:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("daemon: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("daemon did not listen within 60s")
	}

	// The FR alert, dated from the log.
	var fr alerts.View
	deadline := time.Now().Add(4 * time.Minute)
	for {
		for _, v := range apiAlerts(t, base) {
			if v.Metric == "block_rate" && v.Slice["country"] == "FR" && v.State == "firing" && v.Onset != nil {
				fr = v
			}
		}
		if fr.Fingerprint != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no firing FR alert with an onset within 4 minutes: %+v", apiAlerts(t, base))
		}
		time.Sleep(time.Second)
	}
	if fr.Onset.Before(incident) || fr.Onset.After(incident.Add(30*time.Minute)) || !fr.ActiveAt.After(now.Add(-time.Minute)) {
		t.Errorf("onset %s, active at %s; want the onset within 30 min after the incident began at %s, active since the daemon started (%s)",
			fr.Onset, fr.ActiveAt, incident, now)
	}
	t.Logf("incident began %s; alert active at %s, onset from the log %s", incident.Format("15:04"), fr.ActiveAt.Format("15:04:05"), fr.Onset.Format("15:04"))

	url := base + "/alerts/" + fr.Fingerprint
	dom := chromium(t, "--virtual-time-budget=10000", "--dump-dom", url)
	charts := regexp.MustCompile(`(?s)<svg[^>]*class="chart".*?</svg>`).FindAllString(dom, -1)
	if len(charts) != 2 {
		t.Fatalf("alert page has %d charts, want 24 h and 7 d:\n%.2000s", len(charts), dom)
	}
	for _, want := range []string{"last 24 h from the prediction log", "last 7 d from the prediction log"} {
		if !strings.Contains(dom, want) {
			t.Errorf("alert page lacks %q", want)
		}
	}
	day := charts[0]
	for _, want := range []string{`class="band"`, `class="baseline"`, `class="shadow"`, `class="alert-start"`, ">alert start<", ">block_rate<", "shadow model"} {
		if !strings.Contains(day, want) {
			t.Errorf("24 h chart lacks %s", want)
		}
	}
	if !strings.Contains(dom, "onset in the prediction log") || !strings.Contains(dom, fr.Onset.UTC().Format("2006-01-02 15:04 UTC")) {
		t.Errorf("alert page does not show the onset %s", fr.Onset)
	}
	checkDayLine(t, day, now, incident)

	shot := filepath.Join(t.TempDir(), "alert.png")
	chromium(t, "--window-size=1000,1100", "--hide-scrollbars", "--screenshot="+shot, url)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	red := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 > 150 && g>>8 < 90 && bl>>8 < 90 {
				red++
			}
		}
	}
	if red < 100 {
		t.Errorf("screenshot shows %d red sampled pixels: no value line drawn", red)
	}
}

// checkDayLine asserts the 24 h chart's value line: its points span the
// window (first near the left edge, last at the right one, no gap wider
// than an hour) and the incident shows: the points of windows inside it
// sit far above those before it.
func checkDayLine(t *testing.T, svg string, now, incident time.Time) {
	t.Helper()
	const left, right = 56.0, 900 - 12.0
	var xs, ys []float64
	for _, m := range regexp.MustCompile(`<polyline class="value" points="([^"]*)"`).FindAllStringSubmatch(svg, -1) {
		for _, p := range strings.Fields(m[1]) {
			x, y, ok := strings.Cut(p, ",")
			fx, err1 := strconv.ParseFloat(x, 64)
			fy, err2 := strconv.ParseFloat(y, 64)
			if !ok || err1 != nil || err2 != nil {
				t.Fatalf("bad point %q", p)
			}
			xs, ys = append(xs, fx), append(ys, fy)
		}
	}
	if len(xs) < 200 {
		t.Fatalf("value line has %d points, want one per 4-minute step over 24 h", len(xs))
	}
	pw := right - left
	if xs[0] > left+0.02*pw || xs[len(xs)-1] < right-0.01*pw {
		t.Errorf("value line spans x %.1f..%.1f, want the whole window %.0f..%.0f", xs[0], xs[len(xs)-1], left, right)
	}
	for i := 1; i < len(xs); i++ {
		if xs[i]-xs[i-1] > pw/24 {
			t.Errorf("gap of %.1f px (more than an hour) at x=%.1f", xs[i]-xs[i-1], xs[i-1])
		}
	}
	// x of a time: the chart's x axis runs over the points' 24 h.
	at := func(tm time.Time) float64 { return left + pw*(1-now.Sub(tm).Hours()/24) }
	var before, during []float64
	for i, x := range xs {
		switch {
		case x < at(incident)-2:
			before = append(before, ys[i])
		case x > at(incident.Add(time.Hour))+5:
			during = append(during, ys[i])
		}
	}
	mean := func(v []float64) float64 {
		var s float64
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	if len(before) < 100 || len(during) < 30 {
		t.Fatalf("%d points before the incident and %d inside it", len(before), len(during))
	}
	// SVG y grows downwards: the incident's points must sit well above.
	if mb, md := mean(before), mean(during); mb-md < 60 {
		t.Errorf("incident not visible: mean y %.1f before vs %.1f during", mb, md)
	}
}

func apiAlerts(t *testing.T, base string) []alerts.View {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		Data []alerts.View `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(fmt.Errorf("alerts API: %w: %s", err, body))
	}
	return out.Data
}
