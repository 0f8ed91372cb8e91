package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/store"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// fakeAlerts is a hand-written stand-in for the alert manager.
type fakeAlerts struct {
	views    []alerts.View
	silences []alerts.Silence
}

func (f *fakeAlerts) Alerts() []alerts.View      { return f.views }
func (f *fakeAlerts) Silences() []alerts.Silence { return f.silences }
func (f *fakeAlerts) AddSilence(_ context.Context, s alerts.Silence) (alerts.Silence, error) {
	s.ID = "sil-1"
	f.silences = append(f.silences, s)
	return s, nil
}
func (f *fakeAlerts) ExpireSilence(_ context.Context, id string) (alerts.Silence, error) {
	for i := range f.silences {
		if f.silences[i].ID == id {
			f.silences[i].EndsAt = now
			return f.silences[i], nil
		}
	}
	return alerts.Silence{}, errors.New("no silence " + id)
}

func sampleViews() []alerts.View {
	nan := alerts.Number(math.NaN())
	return []alerts.View{
		{Fingerprint: "infra1", State: "firing", Detector: "fraud-features", Kind: "feature_health", Class: "feature_pipeline", Owner: "infra", Severity: "page",
			Receiver: "fraud-infra", Model: "fraud", Slice: map[string]string{}, Feature: "device_age_days", Metric: "null_rate",
			Value: 0.9, Baseline: 0.005, PValue: 1e-40, Summary: "device_age_days null rate 90.0% vs 0.5% baseline", ActiveAt: now.Add(-time.Hour), ShadowValue: nan, ShadowBase: nan},
		{Fingerprint: "prod1", State: "firing", Detector: "fraud-block-rate", Kind: "block_rate", Class: "model_behavior", Owner: "product", Severity: "page",
			Receiver: "fraud-infra", Model: "fraud", Slice: map[string]string{"country": "FR"}, Metric: "block_rate", Value: 0.48, Baseline: 0.006,
			PValue: 1e-30, CausedBy: "infra1", Summary: "FR block rate 48.0% vs 0.6% baseline <script>", ActiveAt: now.Add(-time.Hour), ShadowValue: nan, ShadowBase: nan},
		{Fingerprint: "prod2", State: "firing", Detector: "fraud-block-rate", Kind: "block_rate", Class: "population_shift", Owner: "product", Severity: "info",
			Receiver: "fraud-product", Model: "fraud", Slice: map[string]string{"country": "BR"}, Metric: "block_rate", Value: 0.2, Baseline: 0.01,
			PValue: nan, Summary: "BR block rate 20% vs 1%, shadow too", ActiveAt: now.Add(-time.Hour), ShadowValue: nan, ShadowBase: nan},
		{Fingerprint: "pend1", State: "pending", Class: "model_divergence", Owner: "product", Model: "fraud", Metric: "disagreement_rate", Value: 0.02, Baseline: 0.003, PValue: nan, ActiveAt: now},
	}
}

func testServer(t *testing.T, token string) (*httptest.Server, *fakeAlerts, *Metrics) {
	t.Helper()
	fa := &fakeAlerts{views: sampleViews()}
	m := NewMetrics()
	ready := false
	series := func(_ context.Context, v alerts.View) ([]Point, error) {
		var pts []Point
		for i := 0; i < 48; i++ {
			val := float64(v.Baseline)
			if i > 40 {
				val = float64(v.Value)
			}
			pts = append(pts, Point{At: now.Add(time.Duration(i-48) * time.Hour), Value: val, Baseline: float64(v.Baseline),
				Low: float64(v.Baseline) * 0.7, High: float64(v.Baseline) * 1.3, Shadow: math.NaN(), Firing: i > 40})
		}
		return pts, nil
	}
	h := Handler(ServerOptions{
		Alerts: fa, Silencer: fa, Metrics: m, Series: series,
		Detectors: func() []DetectorStatus {
			return []DetectorStatus{{Name: "fraud-block-rate", Kind: "block_rate", Model: "fraud", Schedule: "*/5 * * * *",
				Runs: []Run{{Detector: "fraud-block-rate", At: now, DurationMS: 42, Queries: []string{"SELECT 1"}, RowsRead: 1000, Findings: 2}}}}
		},
		Ready:  func() bool { r := ready; ready = true; return r },
		Reload: func() error { return nil },
		Token:  func() string { return token },
		Now:    func() time.Time { return now },
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, fa, m
}

func do(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPI(t *testing.T) {
	srv, fa, _ := testServer(t, "s3cret")
	if code, _ := do(t, "GET", srv.URL+"/-/healthy", "", ""); code != 200 {
		t.Errorf("healthy: %d", code)
	}
	if code, _ := do(t, "GET", srv.URL+"/-/ready", "", ""); code != 503 {
		t.Errorf("ready before start: %d, want 503", code)
	}
	if code, _ := do(t, "GET", srv.URL+"/-/ready", "", ""); code != 200 {
		t.Errorf("ready after start: %d", code)
	}
	code, body := do(t, "GET", srv.URL+"/api/v1/alerts?state=firing", "", "")
	var resp struct {
		Status string        `json:"status"`
		Data   []alerts.View `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || code != 200 || len(resp.Data) != 3 {
		t.Fatalf("alerts: %d %v %s", code, err, body)
	}
	if !math.IsNaN(float64(resp.Data[2].PValue)) {
		t.Errorf("a missing p-value must round-trip as null/NaN: %s", body)
	}
	code, body = do(t, "GET", srv.URL+"/api/v1/detectors", "", "")
	if code != 200 || !strings.Contains(body, `"queries":["SELECT 1"]`) || !strings.Contains(body, `"rows_read":1000`) {
		t.Errorf("detectors: %d %s", code, body)
	}

	silence := `{"matchers":["model=fraud","class=~model_.*"],"duration":"2h","created_by":"ana","comment":"deploy"}`
	for _, tc := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"no token", "POST", "/api/v1/silences", "", silence, 401},
		{"wrong token", "POST", "/api/v1/silences", "nope", silence, 401},
		{"reload without token", "POST", "/-/reload", "", "", 401},
		{"bad matcher", "POST", "/api/v1/silences", "s3cret", `{"matchers":["model"],"duration":"1h","created_by":"a","comment":"c"}`, 400},
		{"unknown field", "POST", "/api/v1/silences", "s3cret", `{"matchers":["a=b"],"duration":"1h","created_by":"a","comment":"c","x":1}`, 400},
		{"no end", "POST", "/api/v1/silences", "s3cret", `{"matchers":["a=b"],"created_by":"a","comment":"c"}`, 400},
		{"no author", "POST", "/api/v1/silences", "s3cret", `{"matchers":["a=b"],"duration":"1h","comment":"c"}`, 400},
		{"good", "POST", "/api/v1/silences", "s3cret", silence, 200},
		{"expire unknown", "DELETE", "/api/v1/silences/nope", "s3cret", "", 404},
		{"expire", "DELETE", "/api/v1/silences/sil-1", "s3cret", "", 200},
		{"reload", "POST", "/-/reload", "s3cret", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, tc.method, srv.URL+tc.path, tc.token, tc.body)
			if code != tc.want {
				t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.path, code, tc.want, body)
			}
		})
	}
	if len(fa.silences) != 1 || len(fa.silences[0].Matchers) != 2 || !fa.silences[0].EndsAt.Equal(now) {
		t.Errorf("silence add/expire did not reach the manager: %+v", fa.silences)
	}
}

func TestNoTokenDisablesMutations(t *testing.T) {
	srv, _, _ := testServer(t, "")
	code, body := do(t, "POST", srv.URL+"/api/v1/silences", "", `{}`)
	if code != 401 || !strings.Contains(body, "MLWATCH_API_TOKEN") {
		t.Fatalf("%d %s", code, body)
	}
}

func TestStatusPage(t *testing.T) {
	srv, _, _ := testServer(t, "x")
	code, body := do(t, "GET", srv.URL+"/", "", "")
	if code != 200 {
		t.Fatalf("status page: %d", code)
	}
	if n := strings.Count(body, "<svg"); n != 3 {
		t.Errorf("want a chart per firing alert (3), got %d", n)
	}
	if strings.Contains(body, "<script>") {
		t.Error("summary must be escaped")
	}
	infra := strings.Index(body, `id="owner-infra"`)
	product := strings.Index(body, `id="owner-product"`)
	child := strings.Index(body, `id="prod1"`)
	if !(infra >= 0 && infra < child && child < product) {
		t.Errorf("the caused product alert must be drawn under its infra cause (infra %d, child %d, product %d)", infra, child, product)
	}
	for _, want := range []string{"fraud-block-rate", "Pending and recently resolved", "No silences."} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	code, body = do(t, "GET", srv.URL+"/alerts/prod2", "", "")
	if code != 200 || !strings.Contains(body, "<svg") || !strings.Contains(body, "population_shift") {
		t.Errorf("alert page: %d", code)
	}
	// The root's page lists what it explains (Slack's summary line links here).
	code, body = do(t, "GET", srv.URL+"/alerts/infra1", "", "")
	if code != 200 || !strings.Contains(body, "Explained by this alert (1)") || !strings.Contains(body, `<a href="prod1">model_behavior · country=FR · block_rate</a>`) {
		t.Errorf("root page does not list the alert it explains: %d\n%s", code, body)
	}
	if _, body = do(t, "GET", srv.URL+"/alerts/prod2", "", ""); strings.Contains(body, "Explained by this alert") {
		t.Error("an alert that explains nothing lists explained alerts")
	}
	if code, _ := do(t, "GET", srv.URL+"/alerts/nope", "", ""); code != 404 {
		t.Errorf("unknown alert: %d", code)
	}
}

// TestMetricsPassPromtool checks /metrics with Debian's promtool.
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (make test does)")
	}
	srv, _, m := testServer(t, "x")
	m.runs.WithLabelValues("fraud-block-rate", "success").Inc()
	m.runDuration.WithLabelValues("fraud-block-rate").Observe(0.05)
	m.QueryHook(storeEvent())
	_, body := do(t, "GET", srv.URL+"/metrics", "", "")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader([]byte(body))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	for _, want := range []string{"mlwatch_detector_runs_total", "mlwatch_clickhouse_queries_total", "mlwatch_config_last_reload_successful"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func storeEvent() (ev store.QueryEvent) {
	ev.Engine, ev.Op = "server", "query"
	ev.Stats.Duration = 20 * time.Millisecond
	return ev
}
