package main

import (
	"bytes"
	"context"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/monitor"
)

// TestSilenceThroughDaemon: with a daemon running, `mlwatch silence add`
// goes through its API (no lock on the embedded engine's data path),
// reads slice=FR as the slice label the alerts carry, says what it mutes,
// and says so when a silence matches no current alert.
func TestSilenceThroughDaemon(t *testing.T) {
	t.Setenv("MLWATCH_API_TOKEN", "cli-test-token")
	cfg, err := configs.Load("../../configs/example.yaml", func(k string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := alerts.New(alerts.Options{Config: cfg, OneShot: true})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Minute)
	f := detectors.Finding{Detector: cfg.Detectors[0].Name, Kind: cfg.Detectors[0].Kind, Model: "fraud", ShadowBaseline: math.NaN(),
		Evaluation: detectors.Evaluation{Class: "model_behavior", Metric: "block_rate",
			Slice: map[string]string{"country": "FR"}, Value: 0.3, Baseline: 0.05, PValue: 1e-9, ShadowValue: math.NaN()}}
	if err := mgr.Observe(context.Background(), cfg.Detectors[0].Name, at, []detectors.Finding{f}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(monitor.Handler(monitor.ServerOptions{Alerts: mgr, Silencer: mgr, Token: func() string { return "cli-test-token" }}))
	defer srv.Close()

	var out, errOut bytes.Buffer
	if code := run([]string{"silence", "add", "--config", "../../configs/example.yaml", "--url", srv.URL, "--comment", "FR promo", "--author", "ana", "slice=FR"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), `reading slice=FR as slice="country=FR"`) || !strings.Contains(errOut.String(), "mutes 1 current alert(s)") {
		t.Errorf("stderr: %s", errOut.String())
	}
	sils := mgr.Silences()
	if len(sils) != 1 || strings.TrimSpace(out.String()) != sils[0].ID || sils[0].CreatedBy != "ana" || sils[0].Matchers[0].Value != "country=FR" {
		t.Fatalf("silence through the API: %+v (stdout %q)", sils, out.String())
	}

	out.Reset()
	errOut.Reset()
	if code := run([]string{"silence", "add", "--config", "../../configs/example.yaml", "--url", srv.URL, "--comment", "x", "--author", "ana", "model=churn"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "matches none of the 1 current alerts") || !strings.Contains(errOut.String(), `slice="country=FR"`) {
		t.Errorf("no-match warning: %s", errOut.String())
	}
	if len(mgr.Silences()) != 2 {
		t.Errorf("silences: %d", len(mgr.Silences()))
	}
}
