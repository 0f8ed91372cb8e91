package alerts

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts/fakeslack"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// threadRig drives one incident through a durable manager with the real
// Slack notifier against the local Slack API, one evaluation run at a
// time, and can restart the manager from ClickHouse midway.
type threadRig struct {
	t     *testing.T
	cfg   *configs.Config
	db    storetest.Engine
	clock *fakeClock
	fake  *fakeSlack
	m     *Manager
}

func newThreadRig(t *testing.T, eng storetest.Engine) *threadRig {
	clock := newClock()
	fake := newFakeSlack(t, clock)
	text := baseYAML + fmt.Sprintf("state: {database: %s}\n", eng.Database)
	cfg := loadConfig(t, text, map[string]string{configs.EnvSlackAPIURL: fake.URL()})
	r := &threadRig{t: t, cfg: cfg, db: eng, clock: clock, fake: fake}
	r.restart()
	return r
}

// restart builds a new manager from what ClickHouse keeps (a daemon
// restart).
func (r *threadRig) restart() {
	r.t.Helper()
	m, err := New(Options{Config: r.cfg, Store: r.db.DB, Now: r.clock.Now, Sleep: r.clock.Sleep, HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := m.Restore(context.Background()); err != nil {
		r.t.Fatalf("restore: %v", err)
	}
	r.m = m
}

// run is one evaluation run of every detector after d, then the pipeline
// and delivery; it returns the Slack calls the run caused.
func (r *threadRig) run(d time.Duration, obs map[string][]detectorsFinding) []fakeslack.Call {
	r.t.Helper()
	before := len(r.fake.Calls(""))
	at := r.clock.Advance(d)
	for _, name := range []string{"fraud-features", "fraud-block-rate", "fraud-shadow"} {
		mustObserve(r.t, r.m, name, at, obs[name]...)
	}
	mustProcess(r.t, r.m, at)
	// The group wait (30 s) passes within the run's period.
	mustProcess(r.t, r.m, r.clock.Advance(30*time.Second))
	mustDeliver(r.t, r.m)
	var out []fakeslack.Call
	for _, c := range r.fake.Calls("")[before:] {
		if strings.HasPrefix(c.Method, "chat.") {
			out = append(out, c)
		}
	}
	return out
}

func describeCalls(cs []fakeslack.Call) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "\n  %s %s ts=%s thread=%s: %.300s", c.Method, c.Channel, c.TS, c.ThreadTS, c.Blocks)
	}
	return b.String()
}

// cascade is a null spike (infra, the root) and the product alerts it
// explains: block rate in n countries.
func cascade(n int, value float64) map[string][]detectorsFinding {
	nulls := finding("fraud-features", "feature_pipeline", "fraud", "", 0.62, 0.01, 1e-30)
	nulls.Feature, nulls.Metric = "merchant_risk", "null_rate"
	var product []detectorsFinding
	for i := 0; i < n; i++ {
		product = append(product, finding("fraud-block-rate", "model_behavior", "fraud", fmt.Sprintf("country=C%02d", i), value+0.001*float64(i), 0.05, 1e-12))
	}
	return map[string][]detectorsFinding{"fraud-features": {nulls}, "fraud-block-rate": product}
}

// TestThreadLinesOnlyWhenTheSetChanges: one incident (a null spike that
// explains 38 product alerts) over many evaluation runs and a restart.
// The thread hears from mlwatch only when the set of its firing or
// explained alerts changes: the first message names the root and
// summarizes the 38; runs that change nothing (figures wobble) post
// nothing, before and after a restart; a new explained alert is exactly
// one reply; explained alerts that stop are one reply; the only other
// line is the reminder after repeat_interval of quiet; the resolve edits
// the first message and replies one line with the duration.
func TestThreadLinesOnlyWhenTheSetChanges(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			r := newThreadRig(t, eng)
			start := r.clock.Now()
			calls := r.run(0, cascade(38, 0.30))
			if len(calls) != 1 || calls[0].Method != "chat.postMessage" || calls[0].Channel != "C0INFRA" || calls[0].ThreadTS != "" {
				t.Fatalf("first run: want one first message in the infra channel, got %s", describeCalls(calls))
			}
			first := calls[0]
			rootFP := Fingerprint("fraud-features", "fraud", "feature_pipeline", nil, "merchant_risk")
			for _, want := range []string{"38 alerts explained by this cause", "`block_rate` in country=C37, country=C36, country=C35 and 35 more",
				"http://mlwatch.test:9107/alerts/" + rootFP + "|all listed on the alert page", "null_rate"} {
				if !strings.Contains(unescapeJSON(first.Blocks), want) {
					t.Errorf("first message lacks %q:\n%s", want, unescapeJSON(first.Blocks))
				}
			}
			if n := strings.Count(first.Blocks, "country=C0"); n > 0 {
				t.Errorf("first message lists explained alerts one by one (%d mentions of C0x)", n)
			}
			// Runs that change nothing: the figures move, the set does not.
			for i := 1; i <= 4; i++ {
				if calls := r.run(5*time.Minute, cascade(38, 0.30+0.01*float64(i))); len(calls) != 0 {
					t.Fatalf("run %d changed nothing but Slack heard: %s", i, describeCalls(calls))
				}
			}
			r.restart()
			for i := 0; i < 2; i++ {
				if calls := r.run(5*time.Minute, cascade(38, 0.31)); len(calls) != 0 {
					t.Fatalf("run %d after a restart changed nothing but Slack heard: %s", i, describeCalls(calls))
				}
			}
			// A 39th explained alert: exactly one reply, in the thread.
			calls = r.run(5*time.Minute, cascade(39, 0.31))
			if len(calls) != 1 || calls[0].Method != "chat.postMessage" || calls[0].ThreadTS != first.TS {
				t.Fatalf("a new explained alert: want one reply in the thread, got %s", describeCalls(calls))
			}
			reply := unescapeJSON(calls[0].Blocks)
			for _, want := range []string{"1 more alert explained by this cause: `block_rate` in country=C38", "Now: 1 alert firing, 39 explained"} {
				if !strings.Contains(reply, want) {
					t.Errorf("reply lacks %q:\n%s", want, reply)
				}
			}
			if strings.Contains(reply, "country=C00") || strings.Contains(reply, `"type":"header"`) {
				t.Errorf("reply repeats the incident instead of saying what changed:\n%s", reply)
			}
			for i := 0; i < 3; i++ {
				if calls := r.run(5*time.Minute, cascade(39, 0.32)); len(calls) != 0 {
					t.Fatalf("run %d after the join changed nothing but Slack heard: %s", i, describeCalls(calls))
				}
			}
			// Quiet for repeat_interval (4h): one reminder, then quiet again.
			calls = r.run(4*time.Hour, cascade(39, 0.32))
			if len(calls) != 1 || calls[0].ThreadTS != first.TS || !strings.Contains(calls[0].Text, "still firing") {
				t.Fatalf("after 4h of quiet: want one reminder in the thread, got %s", describeCalls(calls))
			}
			if calls := r.run(5*time.Minute, cascade(39, 0.32)); len(calls) != 0 {
				t.Fatalf("the reminder repeats: %s", describeCalls(calls))
			}
			// Nine explained alerts stop: one reply.
			calls = r.run(5*time.Minute, cascade(30, 0.32))
			if len(calls) != 1 || !strings.Contains(unescapeJSON(calls[0].Blocks), "9 explained alerts no longer firing") ||
				!strings.Contains(calls[0].Blocks, "Now: 1 alert firing, 30 explained") {
				t.Fatalf("explained alerts stop: want one reply, got %s", describeCalls(calls))
			}
			// Everything resolves: the first message is edited to RESOLVED
			// and the thread gets one line with the duration.
			calls = r.run(5*time.Minute, nil)
			end := r.clock.Now().Add(-30 * time.Second)
			if len(calls) != 2 || calls[0].Method != "chat.update" || calls[0].TS != first.TS || calls[1].Method != "chat.postMessage" || calls[1].ThreadTS != first.TS {
				t.Fatalf("resolve: want the edit of the first message and one reply, got %s", describeCalls(calls))
			}
			span := FormatSpan(end.Sub(start))
			if !strings.Contains(calls[0].Blocks, "RESOLVED") || !strings.Contains(calls[0].Blocks, "after "+span) {
				t.Errorf("edit lacks RESOLVED and the duration %s:\n%s", span, calls[0].Blocks)
			}
			if !strings.Contains(calls[1].Text, "[RESOLVED] feature_pipeline fraud after "+span) || strings.Count(calls[1].Blocks, `"type":"section"`) != 1 {
				t.Errorf("resolve reply is not one line with the duration %s: %s / %s", span, calls[1].Text, calls[1].Blocks)
			}
			if calls := r.run(5*time.Minute, nil); len(calls) != 0 {
				t.Fatalf("after the resolve: %s", describeCalls(calls))
			}
			if testing.Verbose() {
				for _, c := range r.fake.Calls("") {
					if strings.HasPrefix(c.Method, "chat.") {
						t.Logf("%s thread=%s text=%q\n%s", c.Method, c.ThreadTS, c.Text, unescapeJSON(c.Blocks))
					}
				}
			}
			if n := len(r.fake.Calls("chat.postMessage")); n != 5 {
				t.Errorf("%d messages for the whole incident, want 5 (first, join, reminder, leave, resolve)", n)
			}
		})
	}
}

func unescapeJSON(s string) string {
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(s)
}
