package alerts

import (
	"context"
	"fmt"
	"github.com/mlwatch/mlwatch/alerts/fakeslack"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
)

// t0 is the tests' epoch.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// fakeClock is the injected clock: Sleep advances it, nothing waits.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func newClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.sleeps = append(c.sleeps, d)
	return nil
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

const testToken = "xoxb-secret-test-token-123"

// baseYAML is a config with product and infra owners on Slack.
const baseYAML = `
global:
  group_wait: 30s
  repeat_interval: 4h
  external_url: http://mlwatch.test:9107
models:
  - name: fraud
    table: predictions
    slices: [country]
    owners: {product: fraud-product, infra: fraud-infra}
    runbook_url: https://runbooks.example.com/fraud
  - name: churn
    table: predictions
    owners: {product: churn-product, infra: fraud-infra}
detectors:
  - name: fraud-block-rate
    kind: block_rate
    model: fraud
  - name: fraud-features
    kind: feature_health
    model: fraud
  - name: fraud-volume
    kind: volume
    model: fraud
  - name: fraud-shadow
    kind: shadow
    model: fraud
  - name: churn-block-rate
    kind: block_rate
    model: churn
receivers:
  - name: fraud-product
    slack: {channel: "#fraud-model-alerts", token_env: SLACK_BOT_TOKEN, mentions: [S0FRAUDML]}
  - name: fraud-infra
    slack: {channel: "#ml-infra-alerts", token_env: SLACK_BOT_TOKEN, mentions: [U0ONCALL]}
  - name: churn-product
    slack: {channel: C0CHURN01, token_env: SLACK_BOT_TOKEN}
`

func loadConfig(t *testing.T, text string, env map[string]string) *configs.Config {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["SLACK_BOT_TOKEN"]; !ok {
		env["SLACK_BOT_TOKEN"] = testToken
	}
	cfg, err := configs.Parse("test.yaml", []byte(text), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// finding builds a finding; slice is "col=value" or "" for the aggregate.
func finding(detector string, class detectors.Class, model, slice string, value, baseline, p float64) detectors.Finding {
	f := detectors.Finding{
		Detector: detector, Kind: "block_rate", Model: model,
		Evaluation: detectors.Evaluation{
			Class: class, Metric: "block_rate", Value: value, Baseline: baseline, PValue: p,
			NCurrent: 1000, NBaseline: 7000, ShadowValue: math.NaN(),
		},
		Effect: value - baseline, ShadowBaseline: math.NaN(),
		Summary: fmt.Sprintf("%s %s moved", model, slice),
	}
	if slice != "" {
		k, v, _ := strings.Cut(slice, "=")
		f.Slice = map[string]string{k: v}
	}
	if detector == "fraud-shadow" { // what the shadow detector measures
		f.Kind, f.Metric = "shadow", detectors.MetricProdBlocks
	}
	return f
}

// recorder is a Notifier that records what it is given.
type recorder struct {
	mu    sync.Mutex
	notes []Notification
	fail  func(n *Notification) (bool, error)
}

func (r *recorder) Notify(_ context.Context, n *Notification) (string, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if retry, err := r.fail(n); err != nil {
			return "", retry, err
		}
	}
	r.notes = append(r.notes, *n)
	return fmt.Sprintf("C0%s/%d", strings.ToUpper(strings.ReplaceAll(n.Receiver, "-", "")), len(r.notes)), false, nil
}

func (r *recorder) byReceiver(name string) []Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Notification
	for _, n := range r.notes {
		if n.Receiver == name {
			out = append(out, n)
		}
	}
	return out
}

func (r *recorder) all() []Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Notification(nil), r.notes...)
}

type fakeSlack = fakeslack.Server

func newFakeSlack(t *testing.T, clock *fakeClock) *fakeSlack {
	return fakeslack.New(t, testToken, clock.Now)
}

// newManager builds a memory-only manager with a recorder for every receiver.
func newManager(t *testing.T, cfg *configs.Config, clock *fakeClock, rec *recorder, oneShot bool) *Manager {
	t.Helper()
	notifiers := map[string]Notifier{}
	if rec != nil {
		for _, r := range cfg.Receivers {
			notifiers[r.Name] = rec
		}
	}
	m, err := New(Options{Config: cfg, Now: clock.Now, Sleep: clock.Sleep, Notifiers: notifiers, OneShot: oneShot})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustObserve(t *testing.T, m *Manager, name string, at time.Time, fs ...detectors.Finding) {
	t.Helper()
	if err := m.Observe(context.Background(), name, at, fs); err != nil {
		t.Fatalf("observe: %v", err)
	}
}

func mustProcess(t *testing.T, m *Manager, at time.Time) []Notification {
	t.Helper()
	ns, err := m.Process(context.Background(), at)
	if err != nil {
		t.Fatalf("process: %v", err)
	}
	return ns
}

func mustDeliver(t *testing.T, m *Manager) DeliverStats {
	t.Helper()
	st, err := m.Deliver(context.Background())
	if err != nil {
		t.Fatalf("deliver: %v", err)
	}
	return st
}

func viewByFP(vs []View, fp string) *View {
	for i := range vs {
		if vs[i].Fingerprint == fp {
			return &vs[i]
		}
	}
	return nil
}

func nanValue() float64 { return math.NaN() }
