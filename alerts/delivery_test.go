package alerts

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// outcomes counts Options.OnDelivery calls: receiver/outcome → n.
type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) add(receiver, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[receiver+"/"+outcome]++
}

func (o *outcomes) get(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[key]
}

// TestSlackAnswerClasses: every class of Slack answer ends as it should
// (sent after retries, or dead), and a dead one's error names the cause
// and the fix.
func TestSlackAnswerClasses(t *testing.T) {
	cases := []struct {
		name  string
		setup func(f *fakeSlack)
		// want is the final state; tries the chat.postMessage requests.
		want  string
		tries int
		error []string
	}{
		{"ok", func(*fakeSlack) {}, NotificationSent, 1, nil},
		{"invalid_auth", func(f *fakeSlack) { f.FailWith("invalid_auth") }, NotificationDead, 1,
			[]string{"Slack token rejected (invalid_auth): check SLACK_BOT_TOKEN"}},
		{"token_revoked", func(f *fakeSlack) { f.FailWith("token_revoked") }, NotificationDead, 1,
			[]string{"Slack token rejected (token_revoked): check SLACK_BOT_TOKEN"}},
		{"is_archived", func(f *fakeSlack) { f.FailWith("is_archived") }, NotificationDead, 1,
			[]string{"#fraud-model-alerts is archived (is_archived)", "unarchive it"}},
		{"channel_not_found", func(f *fakeSlack) { f.FailWith("channel_not_found") }, NotificationDead, 1,
			[]string{"#fraud-model-alerts not found (channel_not_found)", "invite the bot"}},
		{"not_in_channel", func(f *fakeSlack) { f.FailWith("not_in_channel") }, NotificationDead, 1,
			[]string{"not in Slack channel #fraud-model-alerts", "/invite"}},
		{"missing_scope", func(f *fakeSlack) { f.FailWith("missing_scope") }, NotificationDead, 1,
			[]string{"lacks a scope", "chat:write"}},
		{"unknown error code", func(f *fakeSlack) { f.FailWith("team_access_not_granted") }, NotificationDead, 1,
			[]string{"Slack refused the request (team_access_not_granted)"}},
		{"ratelimited in the body", func(f *fakeSlack) { f.FailWith("ratelimited") }, NotificationSent, 2, nil},
		{"internal_error", func(f *fakeSlack) { f.FailWith("internal_error") }, NotificationSent, 2, nil},
		{"429 with Retry-After", func(f *fakeSlack) { f.Fail(http.StatusTooManyRequests, "3") }, NotificationSent, 2, nil},
		{"502 then 503", func(f *fakeSlack) { f.Fail(http.StatusBadGateway, ""); f.Fail(http.StatusServiceUnavailable, "") }, NotificationSent, 3, nil},
		{"one HTML page with 200", func(f *fakeSlack) { f.HTML(1) }, NotificationSent, 2, nil},
		{"HTML pages with 200 for good", func(f *fakeSlack) { f.HTML(100) }, NotificationDead, badAnswerAttempts,
			[]string{"not Slack's JSON", "check slack.api_url", fmt.Sprintf("gave up after %d attempts", badAnswerAttempts)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newClock()
			fake := newFakeSlack(t, clock)
			m, logs := slackManager(t, fake, clock, baseYAML)
			tc.setup(fake)
			mustObserve(t, m, "fraud-block-rate", clock.Now(), finding("fraud-block-rate", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9))
			mustProcess(t, m, clock.Advance(time.Minute))
			for i := 0; i < 20 && len(m.Notifications(NotificationPending)) > 0; i++ {
				mustDeliver(t, m)
				clock.Advance(time.Minute)
			}
			ns := m.Notifications("")
			if len(ns) != 1 || ns[0].State != tc.want {
				t.Fatalf("notifications %+v, want one %s", ns, tc.want)
			}
			tries := len(fake.Calls("chat.postMessage")) + len(fake.Calls("chat.postMessage (failed)"))
			if tries != tc.tries {
				t.Errorf("%d chat.postMessage requests, want %d", tries, tc.tries)
			}
			for _, want := range tc.error {
				if !strings.Contains(ns[0].LastError, want) {
					t.Errorf("error %q lacks %q", ns[0].LastError, want)
				}
			}
			if dead := m.DeadByReceiver(); dead["fraud-product"] != map[bool]int{true: 1}[tc.want == NotificationDead] || dead["fraud-infra"] != 0 {
				t.Errorf("dead by receiver %v", dead)
			}
			noTokenInLogs(t, logs)
		})
	}
}

// fallbackYAML sends what the product channel refuses for good to infra.
var fallbackYAML = strings.Replace(baseYAML, "global:\n", "global:\n  fallback_receiver: fraud-infra\n", 1)

func durableSlackManager(t *testing.T, cfg *configs.Config, db storetest.Engine, clock *fakeClock, seen *outcomes) *Manager {
	t.Helper()
	m, err := New(Options{Config: cfg, Store: db.DB, Now: clock.Now, Sleep: clock.Sleep, OnDelivery: seen.add,
		HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDeadNotificationsVisibleRetriedAndFallback: a page Slack refuses for
// good is dead, not gone: counted, listed with its cause and fix, copied
// to the fallback receiver, still listed after a restart (the outbox is
// in ClickHouse), sent again once a reload changes its receiver, and
// re-sendable by Retry.
func TestDeadNotificationsVisibleRetriedAndFallback(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			ctx := context.Background()
			env := map[string]string{configs.EnvSlackAPIURL: ""}
			clock := newClock()
			fake := newFakeSlack(t, clock)
			env[configs.EnvSlackAPIURL] = fake.URL()
			text := fallbackYAML + fmt.Sprintf("state: {database: %s}\n", eng.Database)
			cfg := loadConfig(t, text, env)
			seen := &outcomes{}
			m1 := durableSlackManager(t, cfg, eng, clock, seen)

			fake.FailWith("invalid_auth")
			mustObserve(t, m1, "fraud-block-rate", clock.Now(), finding("fraud-block-rate", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9))
			mustProcess(t, m1, clock.Advance(time.Minute))
			if st := mustDeliver(t, m1); st.Dead != 1 || st.Fallback != 1 || st.Sent != 1 {
				t.Fatalf("deliver: %+v, want the page dead and its copy sent to the fallback", st)
			}
			dead := m1.Notifications(NotificationDead)
			if len(dead) != 1 || dead[0].Receiver != "fraud-product" || dead[0].FallbackID == "" ||
				!strings.Contains(dead[0].LastError, "Slack token rejected (invalid_auth): check SLACK_BOT_TOKEN") {
				t.Fatalf("dead notifications: %+v", dead)
			}
			var copyOK bool
			for _, c := range fake.Calls("chat.postMessage") {
				if c.Channel == "C0INFRA" && strings.Contains(c.Blocks, "receiver *fraud-product* could not take it") && strings.Contains(c.Blocks, "invalid_auth") {
					copyOK = true
				}
			}
			if !copyOK {
				t.Fatalf("fallback copy not posted to the infra channel: %+v", fake.Calls(""))
			}
			if seen.get("fraud-product/dead") != 1 || seen.get("fraud-product/fallback") != 1 || seen.get("fraud-infra/sent") != 1 {
				t.Fatalf("outcomes %v", seen.n)
			}
			if d := m1.DeadByReceiver(); d["fraud-product"] != 1 || d["fraud-infra"] != 0 || len(d) != 3 {
				t.Fatalf("dead gauge source %v", d)
			}

			// Restart: the dead entry is still listed, with its error.
			m2 := durableSlackManager(t, cfg, eng, clock, seen)
			dead2 := m2.Notifications(NotificationDead)
			if len(dead2) != 1 || dead2[0].ID != dead[0].ID || dead2[0].LastError != dead[0].LastError || dead2[0].FallbackID != dead[0].FallbackID {
				t.Fatalf("after restart, dead: %+v, want %+v", dead2, dead)
			}
			// A reload that changes nothing leaves it dead ...
			if err := m2.Reload(loadConfig(t, text, env)); err != nil {
				t.Fatal(err)
			}
			if st := mustDeliver(t, m2); st != (DeliverStats{}) || len(m2.Notifications(NotificationDead)) != 1 {
				t.Fatalf("unchanged reload retried: %+v", st)
			}
			// ... one that changes the receiver (a new token, here a
			// timeout) sends it again.
			fixed := strings.Replace(text, `channel: "#fraud-model-alerts", token_env: SLACK_BOT_TOKEN`, `channel: "#fraud-model-alerts", token_env: SLACK_BOT_TOKEN, timeout: 20s`, 1)
			if err := m2.Reload(loadConfig(t, fixed, env)); err != nil {
				t.Fatal(err)
			}
			if st := mustDeliver(t, m2); st.Sent != 1 {
				t.Fatalf("after the receiver changed: %+v", st)
			}
			if d := m2.Notifications(NotificationDead); len(d) != 0 {
				t.Fatalf("still dead: %+v", d)
			}
			posts := fake.Calls("chat.postMessage")
			if last := posts[len(posts)-1]; last.Channel != "C0PRODUCT" {
				t.Fatalf("re-sent to %s, want C0PRODUCT", last.Channel)
			}

			// Retry: another page dies (archived channel), then is re-sent.
			fake.FailWith("is_archived")
			at := clock.Advance(time.Minute)
			mustObserve(t, m2, "fraud-shadow", at, finding("fraud-shadow", "model_divergence", "fraud", "", 0.3, 0.05, 1e-9))
			mustProcess(t, m2, clock.Advance(time.Minute))
			mustDeliver(t, m2)
			dead = m2.Notifications(NotificationDead)
			// The divergence is explained by FR's page, so it is an update
			// in FR's threads (product's and the fallback copy's in
			// infra): whichever receiver calls Slack first meets the
			// archived channel.
			if len(dead) != 1 || !strings.Contains(dead[0].LastError, " is archived (is_archived)") {
				t.Fatalf("archived: %+v", dead)
			}
			if _, err := m2.Retry(ctx, "no-such-id"); err == nil {
				t.Fatal("retry of an unknown id accepted")
			}
			if s, err := m2.Retry(ctx, dead[0].ID); err != nil || s.State != NotificationPending {
				t.Fatalf("retry: %+v, %v", s, err)
			}
			if st := mustDeliver(t, m2); st.Sent != 1 {
				t.Fatalf("deliver after retry: %+v", st)
			}
			if _, err := m2.Retry(ctx, dead[0].ID); err == nil || !strings.Contains(err.Error(), "already delivered") {
				t.Fatalf("retry of a delivered notification: %v", err)
			}
			// A third process sees nothing dead.
			if d := durableSlackManager(t, cfg, eng, clock, seen).Notifications(NotificationDead); len(d) != 0 {
				t.Fatalf("third start, dead: %+v", d)
			}
		})
	}
}

// TestSlowReceiverDelaysOnlyItself: a webhook that hangs (within its
// bounded timeout) holds its own notifications, not a Slack page due at
// the same time; and Dispatch returns as soon as it is told to stop, not
// when the webhook's timeout runs out.
func TestSlowReceiverDelaysOnlyItself(t *testing.T) {
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hook.Close()
	defer close(release)
	fake := newFakeSlack(t, newClock())
	text := strings.Replace(baseYAML, "owners: {product: fraud-product, infra: fraud-infra}", "owners: {product: fraud-product, infra: hook}", 1) +
		fmt.Sprintf("  - name: hook\n    webhook: {url: %q, timeout: 4m}\n", hook.URL)
	cfg := loadConfig(t, text, map[string]string{configs.EnvSlackAPIURL: fake.URL()})
	m, err := New(Options{Config: cfg, OneShot: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Dispatch(ctx, 50*time.Millisecond) }()

	now := time.Now()
	outage := finding("fraud-volume", "pipeline_outage", "fraud", "", 10, 5000, 1e-50)
	mustObserve(t, m, "fraud-volume", now, outage)
	mustProcess(t, m, now)
	// Another model's page, so that no cause holds it back.
	churn := finding("churn-block-rate", "model_behavior", "churn", "", 0.3, 0.1, 1e-9)
	mustObserve(t, m, "churn-block-rate", now, churn)
	mustProcess(t, m, now)

	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for len(fake.Calls("chat.postMessage")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the Slack page waited behind the hanging webhook: %+v", m.Notifications(""))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, n := range m.Notifications("") {
		if n.Receiver == "hook" && n.State != NotificationPending {
			t.Fatalf("hook notification %+v, want still pending (the webhook hangs)", n)
		}
	}
	t.Logf("Slack page posted %s after Process while the webhook hung", time.Since(start).Round(time.Millisecond))
	stopped := time.Now()
	cancel()
	select {
	case <-done:
		t.Logf("Dispatch returned %s after cancel (webhook timeout 4m)", time.Since(stopped).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatal("Dispatch did not return after its context ended: it waits for the webhook's 4m timeout")
	}
	// The cancelled send was not counted as a refused attempt.
	for _, n := range m.Notifications("") {
		if n.Receiver == "hook" && (n.State != NotificationPending || n.Attempts != 0) {
			t.Fatalf("hook notification after cancel %+v, want pending with no attempt", n)
		}
	}
}

// TestWebhookAndAlertmanagerAnswers: a webhook's and an Alertmanager's
// answers end as Slack's do (retried or dead), a dead one naming what to
// check; the Alertmanager case runs against the real Alertmanager.
func TestWebhookAndAlertmanagerAnswers(t *testing.T) {
	var status atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := int(status.Load()); s != http.StatusOK {
			if s == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "7")
			}
			http.Error(w, "nope", s)
		}
	}))
	defer hook.Close()
	am := alertmanagerURL()
	if resp, err := http.Get(am + "/-/ready"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("alertmanager at %s not ready (%v): start it with scripts/alertmanager.sh start, or run make test", am, err)
	}
	cases := []struct {
		name, receiver string
		status         int
		want           string
		error          string
	}{
		{"webhook 200", "hook", http.StatusOK, NotificationSent, ""},
		{"webhook 401 with a bearer", "hook", http.StatusUnauthorized, NotificationDead, "refused the bearer token: check bearer_token_env"},
		{"webhook 404", "hook", http.StatusNotFound, NotificationDead, "nothing takes POSTs at " + hook.URL + ": check the receiver's url"},
		{"webhook 500", "hook", http.StatusInternalServerError, NotificationPending, "HTTP 500"},
		{"webhook 429", "hook", http.StatusTooManyRequests, NotificationPending, "retry after 7s"},
		{"alertmanager", "am", 0, NotificationSent, ""},
		{"alertmanager under a wrong path", "am-wrong-path", 0, NotificationDead, "check the receiver's url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status.Store(int32(tc.status))
			text := fmt.Sprintf(`
models:
  - name: fraud
    table: predictions
    owners: {product: %s, infra: %s}
detectors:
  - name: fraud-block-rate
    kind: block_rate
    model: fraud
receivers:
  - name: hook
    webhook: {url: %q, bearer_token_env: HOOK_TOKEN}
  - name: am
    alertmanager: {url: %q}
  - name: am-wrong-path
    alertmanager: {url: %q}
`, tc.receiver, tc.receiver, hook.URL, am, am+"/no/such/prefix")
			cfg := loadConfig(t, text, map[string]string{"HOOK_TOKEN": "hook-secret"})
			clock := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
			m, err := New(Options{Config: cfg, Now: clock.Now, Sleep: clock.Sleep, OneShot: true})
			if err != nil {
				t.Fatal(err)
			}
			mustObserve(t, m, "fraud-block-rate", clock.Now(), finding("fraud-block-rate", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9))
			mustProcess(t, m, clock.Now())
			mustDeliver(t, m)
			ns := m.Notifications("")
			if len(ns) != 1 || ns[0].State != tc.want || !strings.Contains(ns[0].LastError, tc.error) {
				t.Fatalf("notifications %+v, want one %s with %q", ns, tc.want, tc.error)
			}
			if strings.Contains(ns[0].LastError, "hook-secret") {
				t.Fatal("bearer token in the error")
			}
		})
	}
}
