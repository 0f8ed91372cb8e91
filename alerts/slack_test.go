package alerts

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mlwatch/mlwatch/configs"
)

// slackManager wires a manager to the fake Slack through the
// MLWATCH_SLACK_API_URL override, as a deployment would.
func slackManager(t *testing.T, fake *fakeSlack, clock *fakeClock, text string) (*Manager, *observer.ObservedLogs) {
	t.Helper()
	cfg := loadConfig(t, text, map[string]string{configs.EnvSlackAPIURL: fake.URL()})
	core, logs := observer.New(zapcore.DebugLevel)
	m, err := New(Options{Config: cfg, Logger: zap.New(core), Now: clock.Now, Sleep: clock.Sleep,
		HTTPClient: &http.Client{Timeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return m, logs
}

func noTokenInLogs(t *testing.T, logs *observer.ObservedLogs) {
	t.Helper()
	for _, e := range logs.All() {
		if strings.Contains(e.Message, testToken) {
			t.Fatalf("token logged: %s", e.Message)
		}
		for k, v := range e.ContextMap() {
			if strings.Contains(strings.ReplaceAll(strings.TrimSpace(toString(v)), "\n", " "), testToken) {
				t.Fatalf("token logged in field %s", k)
			}
		}
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if e, ok := v.(error); ok {
		return e.Error()
	}
	return ""
}

func TestSlackThreadsRepeatsAndResolve(t *testing.T) {
	clock := newClock()
	fake := newFakeSlack(t, clock)
	m, logs := slackManager(t, fake, clock, baseYAML)
	fs := thirtySlices()

	mustObserve(t, m, "fraud-block-rate", clock.Now(), fs...)
	mustProcess(t, m, clock.Advance(30*time.Second))
	if st := mustDeliver(t, m); st.Sent != 1 {
		t.Fatalf("deliver: %+v", st)
	}
	posts := fake.Calls("chat.postMessage")
	if len(posts) != 1 {
		t.Fatalf("thirty slices: %d messages, want 1", len(posts))
	}
	first := posts[0]
	if first.Channel != "C0PRODUCT" || first.ThreadTS != "" {
		t.Fatalf("first message %+v: want a new message in C0PRODUCT (resolved from #fraud-model-alerts)", first)
	}
	for _, want := range []string{`"type":"header"`, "PAGE", "model_behavior", "fraud", "subteam^S0FRAUDML",
		"https://runbooks.example.com/fraud", "http://mlwatch.test:9107/alerts/", "n=1000 / 7000", "since ", "country=C00", "…and 10 more"} {
		if !strings.Contains(first.Blocks, want) {
			t.Errorf("first message blocks lack %q", want)
		}
	}
	if strings.Index(first.Blocks, "country=C00") > strings.Index(first.Blocks, "country=C01") {
		t.Error("slices not listed worst first")
	}

	// A repeat after repeat_interval goes to the thread.
	at := clock.Advance(4 * time.Hour)
	mustObserve(t, m, "fraud-block-rate", at, fs...)
	mustProcess(t, m, at)
	mustDeliver(t, m)
	posts = fake.Calls("chat.postMessage")
	if len(posts) != 2 || posts[1].ThreadTS != "1772445600.000001" || posts[1].Channel != "C0PRODUCT" {
		t.Fatalf("repeat: %+v", posts)
	}
	if strings.Contains(posts[1].Blocks, "subteam") {
		t.Error("a repeat mentions the team again")
	}

	// Resolution edits the first message and replies in its thread.
	at = clock.Advance(5 * time.Minute)
	mustObserve(t, m, "fraud-block-rate", at)
	mustProcess(t, m, at)
	mustDeliver(t, m)
	updates := fake.Calls("chat.update")
	if len(updates) != 1 || updates[0].TS != "1772445600.000001" || updates[0].Channel != "C0PRODUCT" || !strings.Contains(updates[0].Blocks, "RESOLVED") {
		t.Fatalf("chat.update: %+v", updates)
	}
	posts = fake.Calls("chat.postMessage")
	if len(posts) != 3 || posts[2].ThreadTS != "1772445600.000001" || !strings.Contains(posts[2].Blocks, "Resolved* after 4h05m") {
		t.Fatalf("resolution reply: %+v", posts[2:])
	}
	// The channel name was resolved once, not per message.
	if n := len(fake.Calls("conversations.list")); n != 1 {
		t.Fatalf("conversations.list called %d times, want 1", n)
	}
	noTokenInLogs(t, logs)
}

func TestSlack429HonoursRetryAfter(t *testing.T) {
	clock := newClock()
	fake := newFakeSlack(t, clock)
	m, logs := slackManager(t, fake, clock, baseYAML)
	fake.Fail(http.StatusTooManyRequests, "30")
	mustObserve(t, m, "fraud-block-rate", clock.Now(), thirtySlices()[0])
	mustProcess(t, m, clock.Advance(30*time.Second))
	if st := mustDeliver(t, m); st.Sent != 0 || st.Retried != 1 {
		t.Fatalf("first try: %+v", st)
	}
	failedAt := fake.Calls("chat.postMessage (failed)")[0].At
	// Before Retry-After is over nothing is sent, not even a try.
	clock.Advance(29 * time.Second)
	if st := mustDeliver(t, m); st.Sent != 0 || st.Retried != 0 {
		t.Fatalf("retried before Retry-After: %+v", st)
	}
	if n := len(fake.Calls("chat.postMessage")) + len(fake.Calls("chat.postMessage (failed)")); n != 1 {
		t.Fatalf("%d chat.postMessage requests before Retry-After elapsed, want 1", n)
	}
	clock.Advance(time.Second)
	if st := mustDeliver(t, m); st.Sent != 1 {
		t.Fatalf("after Retry-After: %+v", st)
	}
	okAt := fake.Calls("chat.postMessage")[0].At
	if gap := okAt.Sub(failedAt); gap < 30*time.Second {
		t.Fatalf("retried %s after the 429, want >= 30s", gap)
	}
	noTokenInLogs(t, logs)
}

func TestSlack5xxAndTimeoutsRetriedWithBackoff(t *testing.T) {
	clock := newClock()
	fake := newFakeSlack(t, clock)
	m, logs := slackManager(t, fake, clock, baseYAML)
	fake.Fail(http.StatusInternalServerError, "")
	fake.Fail(http.StatusServiceUnavailable, "")
	mustObserve(t, m, "fraud-block-rate", clock.Now(), thirtySlices()[0])
	mustProcess(t, m, clock.Advance(30*time.Second))
	if st := mustDeliver(t, m); st.Retried != 1 {
		t.Fatalf("500: %+v", st)
	}
	clock.Advance(time.Second) // backoff 1s
	if st := mustDeliver(t, m); st.Retried != 1 {
		t.Fatalf("503: %+v", st)
	}
	clock.Advance(time.Second) // backoff is now 2s: too early
	if st := mustDeliver(t, m); st.Sent+st.Retried != 0 {
		t.Fatalf("retried before the backoff: %+v", st)
	}
	clock.Advance(time.Second)
	if st := mustDeliver(t, m); st.Sent != 1 {
		t.Fatalf("after backoff: %+v", st)
	}
	if n := len(fake.Calls("chat.postMessage (failed)")); n != 2 {
		t.Fatalf("%d failed tries, want 2", n)
	}
	noTokenInLogs(t, logs)
}

func TestSlackTimeoutIsRetryable(t *testing.T) {
	clock := newClock()
	slow := make(chan struct{})
	fake := newFakeSlack(t, clock)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			select { // hang past the client's timeout
			case <-slow:
			case <-time.After(2 * time.Second):
			}
			return
		}
		fake.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer close(slow)
	cfg := loadConfig(t, baseYAML, map[string]string{configs.EnvSlackAPIURL: srv.URL + "/"})
	s := NewSlack(SlackOptions{Name: "x", Receiver: *cfg.Receivers[2].Slack, Global: cfg.Slack,
		HTTPClient: &http.Client{Timeout: 100 * time.Millisecond}, Now: clock.Now, Sleep: clock.Sleep})
	n := &Notification{ID: "n1", Receiver: "x", Kind: KindFiring, Alerts: []View{{Class: "model_behavior", Model: "churn", Severity: "page"}}}
	start := time.Now()
	_, retryable, err := s.Notify(context.Background(), n)
	if err == nil || !retryable {
		t.Fatalf("timeout: retryable=%v err=%v, want a retryable error", retryable, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("timeout took %s, want about the client's 100ms", d)
	}
	if ref, _, err := s.Notify(context.Background(), n); err != nil || !strings.HasPrefix(ref, "C0CHURN01/") {
		t.Fatalf("second try: ref %q err %v", ref, err)
	}
}

func TestSlackPacesEachChannel(t *testing.T) {
	clock := newClock()
	fake := newFakeSlack(t, clock)
	m, _ := slackManager(t, fake, clock, baseYAML)
	now := clock.Now()
	// Three groups for the product channel, one for infra, one evaluation.
	mustObserve(t, m, "fraud-block-rate", now,
		finding("fraud-block-rate", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9),
		finding("fraud-block-rate", "population_shift", "fraud", "country=DE", 0.3, 0.05, 1e-9))
	// (A divergence would be explained by FR and told in FR's message.)
	stale := finding("fraud-shadow", "model_staleness", "fraud", "", 30, 7, 1e-9)
	stale.Metric = "model_age_days"
	mustObserve(t, m, "fraud-shadow", now, stale)
	mustObserve(t, m, "fraud-volume", now, finding("fraud-volume", "monitoring_failure", "fraud", "", 0, 0, 1))
	mustProcess(t, m, clock.Advance(30*time.Second))
	if st := mustDeliver(t, m); st.Sent != 4 {
		t.Fatalf("deliver: %+v", st)
	}
	var product []time.Time
	for _, c := range fake.Calls("chat.postMessage") {
		if c.Channel == "C0PRODUCT" {
			product = append(product, c.At)
		}
	}
	if len(product) != 3 {
		t.Fatalf("%d product messages, want 3", len(product))
	}
	// #ml-infra-alerts is on the second page of conversations.list.
	if infra := len(fake.Calls("chat.postMessage")) - len(product); infra != 1 {
		t.Fatalf("%d infra messages, want 1 in C0INFRA", infra)
	}
	for i := 1; i < len(product); i++ {
		if gap := product[i].Sub(product[i-1]); gap < time.Second {
			t.Fatalf("messages %d and %d to one channel %s apart, want >= 1s", i-1, i, gap)
		}
	}
	var slept time.Duration
	for _, d := range clock.sleeps {
		slept += d
	}
	if slept != 2*time.Second {
		t.Fatalf("paced %s in total, want 2s (the infra channel is not held by product's)", slept)
	}
}

func TestSlackPermanentFailureIsDropped(t *testing.T) {
	clock := newClock()
	fake := newFakeSlack(t, clock)
	text := strings.Replace(baseYAML, `channel: "#ml-infra-alerts"`, `channel: "#no-such-channel"`, 1)
	m, logs := slackManager(t, fake, clock, text)
	mustObserve(t, m, "fraud-volume", clock.Now(), finding("fraud-volume", "pipeline_outage", "fraud", "", 0, 5000, 1e-9))
	mustProcess(t, m, clock.Advance(time.Minute))
	if st := mustDeliver(t, m); st.Dead != 1 || st.Sent != 0 {
		t.Fatalf("unknown channel: %+v, want dead", st)
	}
	if len(m.Outbox()) != 0 {
		t.Fatal("dead entry still pending")
	}
	found := false
	for _, e := range logs.FilterMessage("notification dead: not delivered").All() {
		if strings.Contains(toString(e.ContextMap()["error"]), "not found") {
			found = true
		}
	}
	if !found {
		t.Fatal("drop not logged with its reason")
	}
	noTokenInLogs(t, logs)
}

func TestSlackEscapesDataInMarkup(t *testing.T) {
	cfg := loadConfig(t, baseYAML, nil)
	s := NewSlack(SlackOptions{Name: "p", Receiver: *cfg.Receivers[0].Slack, Global: cfg.Slack})
	f := finding("fraud-block-rate", "model_behavior", "fraud", "merchant=<!channel>", 0.3, 0.05, 1e-9)
	f.Summary = "A&B <@U123>"
	v := (&Alert{Finding: f, Owner: "product", Severity: "page"}).view(nil)
	blocks, _ := s.render(&Notification{Kind: KindUpdate, Alerts: []View{v}}, false)
	b, _ := json.Marshal(blocks)
	text := string(b)
	if strings.Contains(text, `\u003c!channel\u003e`) || strings.Contains(text, `\u003c@U123\u003e`) || !strings.Contains(text, `A\u0026amp;B`) {
		t.Fatalf("data not escaped: %s", text)
	}
}
