package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
)

const notifyYAML = `
global: {fallback_receiver: pager}
models:
  - name: fraud
    table: predictions
    owners: {product: team, infra: team}
detectors:
  - name: fraud-block-rate
    kind: block_rate
    model: fraud
receivers:
  - name: team
    webhook: {url: "http://hooks.invalid/team"}
  - name: pager
    webhook: {url: "http://hooks.invalid/pager"}
`

// TestDeadNotificationsAPIPageAndMetrics: a notification its receiver
// refuses for good shows in /metrics (counter and gauge), on the status
// page (a banner naming the error) and in GET /api/v1/notifications;
// POST .../retry (token only) sends it again once the receiver takes it.
func TestDeadNotificationsAPIPageAndMetrics(t *testing.T) {
	cfg, err := configs.Parse("notify.yaml", []byte(notifyYAML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var refuse atomic.Bool
	refuse.Store(true)
	team := alerts.NotifierFunc(func(context.Context, *alerts.Notification) (string, bool, error) {
		if refuse.Load() {
			return "", false, errors.New("webhook team: HTTP 410: gone")
		}
		return "", false, nil
	})
	pager := alerts.NotifierFunc(func(context.Context, *alerts.Notification) (string, bool, error) { return "", false, nil })
	metrics := NewMetrics()
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	mgr, err := alerts.New(alerts.Options{Config: cfg, OneShot: true, Now: func() time.Time { return at },
		Notifiers: map[string]alerts.Notifier{"team": team, "pager": pager}, OnDelivery: metrics.Notification})
	if err != nil {
		t.Fatal(err)
	}
	metrics.WatchDead(mgr.DeadByReceiver)
	srv := httptest.NewServer(Handler(ServerOptions{Alerts: mgr, Silencer: mgr, Outbox: mgr, Metrics: metrics,
		Token: func() string { return "s3cret" }, Now: func() time.Time { return at }}))
	defer srv.Close()

	f := detectors.Finding{Detector: "fraud-block-rate", Kind: "block_rate", Model: "fraud", Summary: "FR moved",
		Evaluation: detectors.Evaluation{Class: detectors.ClassModelBehavior, Metric: "block_rate", Value: 0.3, Baseline: 0.05, PValue: 1e-9,
			NCurrent: 1000, NBaseline: 7000, Slice: map[string]string{"country": "FR"}}}
	ctx := context.Background()
	if err := mgr.Observe(ctx, "fraud-block-rate", at, []detectors.Finding{f}); err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.Process(ctx, at); err != nil {
		t.Fatal(err)
	}
	if st, _ := mgr.Deliver(ctx); st.Dead != 1 || st.Fallback != 1 || st.Sent != 1 {
		t.Fatalf("deliver: %+v", st)
	}

	_, body := do(t, "GET", srv.URL+"/metrics", "", "")
	for _, want := range []string{
		`mlwatch_notifications_total{outcome="dead",receiver="team"} 1`,
		`mlwatch_notifications_total{outcome="fallback",receiver="team"} 1`,
		`mlwatch_notifications_total{outcome="sent",receiver="pager"} 1`,
		`mlwatch_notifications_dead{receiver="team"} 1`,
		`mlwatch_notifications_dead{receiver="pager"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	_, page := do(t, "GET", srv.URL+"/", "", "")
	if !strings.Contains(page, `id="dead-notifications"`) || !strings.Contains(page, "1 notification could not be delivered") ||
		!strings.Contains(page, "HTTP 410: gone") || !strings.Contains(page, "copy sent to the fallback receiver") {
		t.Errorf("status page lacks the dead-notification banner:\n%s", page)
	}

	code, body := do(t, "GET", srv.URL+"/api/v1/notifications?state=dead", "", "")
	var resp struct {
		Data []alerts.NotificationStatus `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || code != 200 || len(resp.Data) != 1 ||
		resp.Data[0].Receiver != "team" || resp.Data[0].LastError != "webhook team: HTTP 410: gone" {
		t.Fatalf("dead notifications: %d %v %s", code, err, body)
	}
	id := resp.Data[0].ID
	if code, body := do(t, "GET", srv.URL+"/api/v1/notifications?state=lost", "", ""); code != 400 || !strings.Contains(body, "pending, sent or dead") {
		t.Errorf("bad state: %d %s", code, body)
	}
	if code, _ := do(t, "GET", srv.URL+"/api/v1/notifications", "", ""); code != 200 {
		t.Errorf("all notifications: %d", code)
	}

	for _, tc := range []struct {
		name, id, token string
		want            int
	}{
		{"no token", id, "", 401},
		{"wrong token", id, "nope", 401},
		{"unknown id", "no-such-id", "s3cret", 404},
	} {
		if code, body := do(t, "POST", srv.URL+"/api/v1/notifications/"+tc.id+"/retry", tc.token, ""); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
	}
	refuse.Store(false)
	if code, body := do(t, "POST", srv.URL+"/api/v1/notifications/"+id+"/retry", "s3cret", ""); code != 200 || !strings.Contains(body, `"state":"pending"`) {
		t.Fatalf("retry: %d %s", code, body)
	}
	if st, _ := mgr.Deliver(ctx); st.Sent != 1 {
		t.Fatalf("deliver after retry: %+v", st)
	}
	if code, _ := do(t, "POST", srv.URL+"/api/v1/notifications/"+id+"/retry", "s3cret", ""); code != 409 {
		t.Errorf("retry of a delivered notification: %d, want 409", code)
	}
	_, body = do(t, "GET", srv.URL+"/metrics", "", "")
	if !strings.Contains(body, `mlwatch_notifications_dead{receiver="team"} 0`) {
		t.Errorf("dead gauge not back to 0")
	}
	if _, page := do(t, "GET", srv.URL+"/", "", ""); strings.Contains(page, `id="dead-notifications"`) {
		t.Error("banner still shown with nothing dead")
	}
}
