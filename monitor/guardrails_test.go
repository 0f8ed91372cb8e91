package monitor

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/store/storetest"
	"github.com/mlwatch/mlwatch/traffic"
)

const guardYAML = `
clickhouse: {database: %DB%}
state: {database: %DB%}
models:
  - name: fraud
    table: %DB%.predictions
    slices: [country]
    labels: {table: fraud_labels, maturity: 30d}
    guardrails: {period: 1d, schedule: "@hourly", min_samples: 500}
    owners: {product: p, infra: i}
  - name: other
    table: %DB%.predictions
    owners: {product: p, infra: i}
receivers:
  - name: p
    webhook: {url: "http://127.0.0.1:1/p"}
  - name: i
    webhook: {url: "http://127.0.0.1:1/i"}
`

// TestGuardrailStatus: the monitor computes a model's guardrail report on
// its schedule (a scheduler task per model with guardrails) and the
// status page and /api/v1/guardrails show the latest, here a shadow that
// blocks most of France, decided on block rates alone because the labels
// table is missing.
func TestGuardrailStatus(t *testing.T) {
	ctx := context.Background()
	day0 := time.Date(2026, 10, 12, 0, 0, 0, 0, time.UTC)
	for _, e := range storetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			cfg, _ := engineConfig(t, e, "guard.yaml", guardYAML, false)
			in, err := traffic.ParseIncident("shadow_country_block:+0h:+1d:FR", day0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := traffic.Generate(ctx, e.DB, traffic.Options{Model: &cfg.Models[0], From: day0, To: day0.Add(24 * time.Hour), Rate: 20, Seed: 4, Incidents: []traffic.Incident{in}, Concurrency: 2}); err != nil {
				t.Fatal(err)
			}
			mgr, err := alerts.New(alerts.Options{Config: cfg, Now: func() time.Time { return day0 }})
			if err != nil {
				t.Fatal(err)
			}
			m, err := New(Options{Config: cfg, Store: e.DB, Record: e.DB, Alerts: mgr})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, task := range m.Tasks(nil) {
				names = append(names, task.Name)
			}
			if strings.Join(names, ",") != "guardrails/fraud" {
				t.Errorf("tasks %v: want one guardrail task for fraud (other has no guardrails)", names)
			}
			if st := m.Guardrails(); len(st) != 1 || st[0].Report != nil || st[0].Period != "1d" {
				t.Errorf("before the first run: %+v, want fraud not computed yet", st)
			}
			for _, task := range m.Tasks(nil) {
				task.Run(ctx, day0.Add(24*time.Hour))
			}
			st := m.Guardrails()
			if len(st) != 1 || st[0].Report == nil {
				t.Fatalf("statuses %+v: want fraud's report", st)
			}
			r := st[0].Report
			if r.ExitCode != 1 || len(r.Failed) == 0 || !strings.Contains(strings.Join(r.Failed, "\n"), "country=FR: block rate rises") ||
				!strings.Contains(r.Labels, "missing") {
				t.Errorf("report: exit %d failed %v labels %q: want FR failing on block rates alone", r.ExitCode, r.Failed, r.Labels)
			}
			srv := httptest.NewServer(Handler(ServerOptions{Alerts: mgr, Silencer: mgr, Guardrails: m.Guardrails,
				Now: func() time.Time { return day0 }}))
			defer srv.Close()
			get := func(path string) string {
				resp, err := http.Get(srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 {
					t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
				}
				return string(b)
			}
			var api struct {
				Data []GuardrailStatus `json:"data"`
			}
			body := get("/api/v1/guardrails")
			if err := json.Unmarshal([]byte(body), &api); err != nil {
				t.Fatalf("%v\n%s", err, body)
			}
			if len(api.Data) != 1 || api.Data[0].Report == nil || api.Data[0].Report.Verdict != "fail" {
				t.Errorf("api: %s", body)
			}
			page := get("/")
			for _, want := range []string{`id="guardrails-fraud"`, "<strong>fail</strong> (exit 1)", "country=FR: block rate rises"} {
				if !strings.Contains(page, want) {
					t.Errorf("status page lacks %q", want)
				}
			}
		})
	}
}
