package alerts

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// alertmanagerURL is the private Alertmanager of scripts/alertmanager.sh.
func alertmanagerURL() string {
	if u := os.Getenv("MLWATCH_TEST_ALERTMANAGER_URL"); u != "" {
		return u
	}
	return "http://127.0.0.1:19093"
}

func TestAlertmanagerReceiverAgainstAlertmanager(t *testing.T) {
	base := alertmanagerURL()
	resp, err := http.Get(base + "/-/ready")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("alertmanager at %s not ready (%v): start it with scripts/alertmanager.sh start, or run make test", base, err)
	}
	resp.Body.Close()

	var b [4]byte
	_, _ = rand.Read(b[:])
	model := "fraud-" + hex.EncodeToString(b[:])
	text := strings.ReplaceAll(`
models:
  - name: MODEL
    table: predictions
    slices: [country]
    owners: {product: pager, infra: pager}
detectors:
  - name: MODEL-features
    kind: feature_health
    model: MODEL
receivers:
  - name: pager
    alertmanager: {url: "AMURL"}
`, "MODEL", model)
	text = strings.ReplaceAll(text, "AMURL", base)
	cfg := loadConfig(t, text, nil)
	// In the past, so that the resolution time is too when Alertmanager reads it.
	clock := &fakeClock{t: time.Now().UTC().Truncate(time.Second).Add(-10 * time.Minute)}
	m, err := New(Options{Config: cfg, Now: clock.Now, Sleep: clock.Sleep, OneShot: true})
	if err != nil {
		t.Fatal(err)
	}
	f := finding(model+"-features", "feature_pipeline", model, "country=FR", 0.62, 0.01, 1e-30)
	f.Feature, f.Metric, f.Kind = "merchant_risk", "null_rate", "feature_health"
	mustObserve(t, m, model+"-features", clock.Now(), f)
	mustProcess(t, m, clock.Now())
	if st := mustDeliver(t, m); st.Sent != 1 {
		t.Fatalf("deliver to alertmanager: %+v", st)
	}

	q := url.Values{"filter": {`model="` + model + `"`}}
	var got []struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		Status      struct {
			State string `json:"state"`
		} `json:"status"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(base + "/api/v2/alerts?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("alertmanager answer %s: %v", body, err)
		}
		if len(got) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(got) != 1 {
		t.Fatalf("alertmanager lists %d alerts for model %s, want 1", len(got), model)
	}
	want := map[string]string{
		"alertname": model + "-features", "class": "feature_pipeline", "owner": "infra", "severity": "page",
		"model": model, "slice": "country=FR", "feature": "merchant_risk", "country": "FR",
	}
	for k, v := range want {
		if got[0].Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, got[0].Labels[k], v, got[0].Labels)
		}
	}
	if got[0].Status.State != "active" || got[0].Annotations["metric"] != "null_rate" {
		t.Errorf("alert %+v", got[0])
	}

	// Resolution ends it in Alertmanager.
	at := clock.Advance(time.Minute)
	mustObserve(t, m, model+"-features", at)
	mustProcess(t, m, at)
	if st := mustDeliver(t, m); st.Sent != 1 {
		t.Fatalf("deliver resolution: %+v", st)
	}
	resp, err = http.Get(base + "/api/v2/alerts?" + url.Values{"filter": {`model="` + model + `"`}, "active": {"true"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), model) {
		t.Fatalf("resolved alert still active in alertmanager: %s", body)
	}
}

func TestWebhookReceiver(t *testing.T) {
	var mu sync.Mutex
	var bodies []WebhookBody
	var auth []string
	status := []int{http.StatusBadGateway, http.StatusOK}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		var b WebhookBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			t.Errorf("body: %v", err)
		}
		bodies = append(bodies, b)
		auth = append(auth, r.Header.Get("Authorization"))
		code := status[0]
		if len(status) > 1 {
			status = status[1:]
		}
		w.WriteHeader(code)
	}))
	defer srv.Close()
	text := strings.ReplaceAll(`
models:
  - name: fraud
    table: predictions
    owners: {product: hook, infra: hook}
detectors:
  - name: br
    kind: block_rate
    model: fraud
receivers:
  - name: hook
    webhook: {url: "URL/hook", bearer_token_env: HOOK_TOKEN}
`, "URL", srv.URL)
	cfg := loadConfig(t, text, map[string]string{"HOOK_TOKEN": "s3cret"})
	clock := newClock()
	m, err := New(Options{Config: cfg, Now: clock.Now, Sleep: clock.Sleep, OneShot: true})
	if err != nil {
		t.Fatal(err)
	}
	mustObserve(t, m, "br", clock.Now(), finding("br", "model_behavior", "fraud", "", 0.3, 0.05, 1e-9))
	mustProcess(t, m, clock.Now())
	if st := mustDeliver(t, m); st.Retried != 1 {
		t.Fatalf("502: %+v", st)
	}
	clock.Advance(time.Second)
	if st := mustDeliver(t, m); st.Sent != 1 {
		t.Fatalf("retry: %+v", st)
	}
	if len(bodies) != 2 || bodies[0].ID != bodies[1].ID {
		t.Fatalf("retry must repeat the same notification id: %d bodies", len(bodies))
	}
	b := bodies[1]
	if b.Version != "1" || b.Receiver != "hook" || b.Kind != KindFiring || b.Status != "firing" || len(b.Alerts) != 1 ||
		b.Alerts[0].Class != "model_behavior" || b.Alerts[0].Owner != "product" || b.Alerts[0].Change != ChangeNew ||
		b.GroupLabels["model"] != "fraud" || auth[1] != "Bearer s3cret" {
		t.Fatalf("webhook body %+v auth %q", b, auth[1])
	}
	// 4xx is permanent.
	status = []int{http.StatusBadRequest}
	mustObserve(t, m, "br", clock.Advance(time.Minute))
	mustProcess(t, m, clock.Now())
	if st := mustDeliver(t, m); st.Dead != 1 {
		t.Fatalf("400: %+v", st)
	}
}

func TestWebhookBodyEncodesMissingFiguresAsNull(t *testing.T) {
	n := Notification{ID: "x", Alerts: []View{{PValue: Number(nanValue()), Value: 1}}}
	b, err := json.Marshal(WebhookBody{Version: WebhookVersion, Notification: n})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"p_value":null`) {
		t.Fatalf("body %s", b)
	}
}
