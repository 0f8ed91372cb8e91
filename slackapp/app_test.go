package slackapp_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/alerts/fakeslack"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/monitor"
	"github.com/mlwatch/mlwatch/slackapp"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

const (
	botToken      = "xoxb-bot-token-test"
	appToken      = "xapp-1-app-token-test"
	signingSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	apiToken      = "api-token-test"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Sleep(_ context.Context, d time.Duration) error {
	c.Advance(d)
	return nil
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// configYAML routes each slice of fraud's block rate to its own message
// (group_by slice), so repeats of one alert are seen apart from another's.
const configYAML = `
global:
  group_wait: 30s
  repeat_interval: 4h
  external_url: http://mlwatch.test:9107
  group_by: [model, class, slice]
slack:
  api_url: %s
  interactivity: {}
models:
  - name: fraud
    table: predictions
    slices: [country]
    owners: {product: fraud-product, infra: fraud-infra}
detectors:
  - name: fraud-block-rate
    kind: block_rate
    model: fraud
receivers:
  - name: fraud-product
    slack: {channel: "#fraud-model-alerts", token_env: SLACK_BOT_TOKEN, silencers: [S0ONCALL]}
  - name: fraud-infra
    slack: {channel: "#ml-infra-alerts", token_env: SLACK_BOT_TOKEN}
`

func finding(country string, value float64) detectors.Finding {
	return detectors.Finding{
		Detector: "fraud-block-rate", Kind: "block_rate", Model: "fraud",
		Evaluation: detectors.Evaluation{
			Class: "model_behavior", Metric: "block_rate", Slice: map[string]string{"country": country}, Value: value, Baseline: 0.05,
			PValue: 1e-9, NCurrent: 1000, NBaseline: 7000, ShadowValue: math.NaN(),
		},
		Effect: value - 0.05, ShadowBaseline: math.NaN(),
		Summary: "fraud block rate moved in " + country,
	}
}

// rig is the daemon's triage path in one process: the alert manager with
// the real Slack notifier, the Slack app on both transports, the HTTP API,
// all against the local Slack stand-in and a real ClickHouse.
type rig struct {
	t      *testing.T
	db     store.Store
	tables store.Tables
	clock  *clock
	fake   *fakeslack.Server
	mgr    *alerts.Manager
	app    *slackapp.App
	api    *httptest.Server
	ctx    context.Context
}

func newRig(t *testing.T, eng storetest.Engine) *rig {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	fake := fakeslack.New(t, botToken, c.Now)
	fake.SetAppToken(appToken)
	fake.SetUserGroup("S0ONCALL", "U0ANA", "U0CARL")
	env := map[string]string{"SLACK_BOT_TOKEN": botToken, "SLACK_APP_TOKEN": appToken, "SLACK_SIGNING_SECRET": signingSecret,
		"MLWATCH_API_TOKEN": apiToken}
	cfg, err := configs.Parse("test.yaml", []byte(fmt.Sprintf(configYAML, fake.URL())), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	cfg.State.Database = eng.Database
	tables := store.Tables{Database: eng.Database, Prefix: cfg.State.TablePrefix}
	if err := store.Apply(ctx, eng.DB, eng.Database, monitor.TableDefs(tables)); err != nil {
		t.Fatal(err)
	}
	mgr, err := alerts.New(alerts.Options{Config: cfg, Store: eng.DB, Now: c.Now, Sleep: c.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	log := alerts.NewTriageLog(eng.DB, tables)
	app := slackapp.New(slackapp.Options{Config: cfg, Alerts: mgr, Silences: mgr, Log: log, Now: c.Now})
	if !app.HTTPEnabled() || !app.SocketModeEnabled() {
		t.Fatal("both transports should be on")
	}
	socketDone := make(chan struct{})
	go func() {
		defer close(socketDone)
		if err := app.RunSocketMode(ctx); err != nil {
			t.Errorf("socket mode: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-socketDone })
	api := httptest.NewServer(monitor.Handler(monitor.ServerOptions{
		Alerts: mgr, Silencer: mgr, Triage: log.List, SlackInteractions: app, Now: c.Now, StoredAlert: mgr.StoredAlert,
		Token: func() string { return apiToken },
	}))
	t.Cleanup(api.Close)
	return &rig{t: t, db: eng.DB, tables: tables, clock: c, fake: fake, mgr: mgr, app: app, api: api, ctx: ctx}
}

// step runs the pipeline at the clock's time and delivers.
func (r *rig) step(findings ...detectors.Finding) {
	r.t.Helper()
	if findings != nil {
		if err := r.mgr.Observe(r.ctx, "fraud-block-rate", r.clock.Now(), findings); err != nil {
			r.t.Fatal(err)
		}
	}
	if _, err := r.mgr.Process(r.ctx, r.clock.Now()); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.mgr.Deliver(r.ctx); err != nil {
		r.t.Fatal(err)
	}
}

// get decodes the data of an API answer.
func (r *rig) get(path string, v any) {
	r.t.Helper()
	resp, err := http.Get(r.api.URL + path)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Status != "success" {
		r.t.Fatalf("GET %s: %v %s", path, err, env.Status)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) alert(country string) alerts.View {
	r.t.Helper()
	var vs []alerts.View
	r.get("/api/v1/alerts", &vs)
	for _, v := range vs {
		if v.Slice["country"] == country {
			return v
		}
	}
	r.t.Fatalf("no alert for %s in %d", country, len(vs))
	return alerts.View{}
}

func (r *rig) triage(fp string) []alerts.Action {
	var out []alerts.Action
	r.get("/api/v1/triage?fingerprint="+fp, &out)
	return out
}

// message is the last version of the Slack message an alert's buttons are in.
func (r *rig) message(fp string) fakeslack.Call {
	r.t.Helper()
	var last fakeslack.Call
	for _, c := range r.fake.Calls("") {
		if (c.Method == "chat.postMessage" || c.Method == "chat.update") && strings.Contains(c.Blocks, alerts.TriageBlockPrefix+fp) {
			last = c
		}
	}
	if last.TS == "" {
		r.t.Fatalf("no message with buttons for %s", fp)
	}
	return last
}

// unescaped is a message's blocks with Go's JSON escapes of <, > and &
// undone, to read mentions as Slack shows them.
func unescaped(blocks string) string {
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(blocks)
}

type user struct{ id, name string }

var (
	ana = user{"U0ANA", "ana"}
	bob = user{"U0BOB", "bob"}
)

// blockActions is the block_actions payload Slack sends for a click on
// an element of an alert's message.
func (r *rig) blockActions(u user, fp string, action map[string]any) map[string]any {
	msg := r.message(fp)
	action["block_id"] = alerts.TriageBlockPrefix + fp
	action["action_ts"] = "1772445999.000100"
	return map[string]any{
		"type": "block_actions", "trigger_id": "trig-" + u.name, "api_app_id": "A0MLWATCH",
		"user":      map[string]any{"id": u.id, "username": u.name, "name": u.name, "team_id": "T0"},
		"team":      map[string]any{"id": "T0", "domain": "acme"},
		"container": map[string]any{"type": "message", "message_ts": msg.TS, "channel_id": msg.Channel, "is_ephemeral": false},
		"channel":   map[string]any{"id": msg.Channel, "name": "fraud-model-alerts"},
		"message":   map[string]any{"type": "message", "ts": msg.TS, "text": msg.Text, "blocks": json.RawMessage(msg.Blocks)},
		"actions":   []any{action},
	}
}

func button(actionID, value string) map[string]any {
	return map[string]any{"type": "button", "action_id": actionID, "value": value, "text": map[string]any{"type": "plain_text", "text": "x"}}
}

func silenceMenu(fp, choice string) map[string]any {
	return map[string]any{"type": "static_select", "action_id": alerts.ActionIDSilence,
		"selected_option": map[string]any{"value": alerts.ButtonValue(fp, "fraud-product", choice), "text": map[string]any{"type": "plain_text", "text": choice}}}
}

func (r *rig) socket(payload map[string]any) {
	r.t.Helper()
	if _, err := r.fake.Interact(payload, 30*time.Second); err != nil {
		r.t.Fatal(err)
	}
}

// signed posts a payload to /slack/interactions signed with secret at ts.
func (r *rig) signed(payload map[string]any, secret string, ts time.Time) (int, string, *http.Request) {
	r.t.Helper()
	p, _ := json.Marshal(payload)
	body := url.Values{"payload": {string(p)}}.Encode()
	req, _ := http.NewRequest("POST", r.api.URL+"/slack/interactions", strings.NewReader(body))
	sign(req, body, secret, ts)
	return r.do(req, body)
}

func sign(req *http.Request, body, secret string, ts time.Time) {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + stamp + ":" + body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
}

func (r *rig) do(req *http.Request, body string) (int, string, *http.Request) {
	r.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	again, _ := http.NewRequest("POST", req.URL.String(), strings.NewReader(body))
	again.Header = req.Header.Clone()
	return resp.StatusCode, string(b), again
}

func firingFor(notes []fakeslack.Call, fp string) int {
	n := 0
	for _, c := range notes {
		if strings.Contains(c.Blocks, fp) {
			n++
		}
	}
	return n
}

// TestSlackTriage clicks every triage button over Socket Mode and the
// signed HTTP endpoint and checks each effect through the API and in the
// edited message: ack (recorded, shown, repeats stop), silence (right
// matchers and creator, refused to a non-silencer), feedback with a
// reason from the modal, silence until resolved (ends with the alert);
// badly signed, stale and replayed requests change nothing.
func TestSlackTriage(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			r := newRig(t, eng)
			r.step(finding("FR", 0.30), finding("DE", 0.25))
			r.clock.Advance(time.Minute) // past for and group_wait
			r.step(finding("FR", 0.30), finding("DE", 0.25))
			fr, de := r.alert("FR"), r.alert("DE")
			posts := r.fake.Calls("chat.postMessage")
			if len(posts) != 2 {
				t.Fatalf("posts: %d", len(posts))
			}
			for _, p := range posts {
				for _, want := range []string{alerts.ActionIDAck, alerts.ActionIDSilence, alerts.ActionIDFalsePositive, alerts.ActionIDExpected,
					"until_resolved", "http://mlwatch.test:9107/alerts/"} {
					if !strings.Contains(p.Blocks, want) {
						t.Errorf("message lacks %s: %s", want, p.Blocks)
					}
				}
			}

			// Acknowledge FR over Socket Mode.
			r.socket(r.blockActions(ana, fr.Fingerprint, button(alerts.ActionIDAck, alerts.ButtonValue(fr.Fingerprint, "fraud-product"))))
			fr = r.alert("FR")
			if fr.Ack == nil || fr.Ack.UserName != "ana" || fr.Ack.UserID != "U0ANA" {
				t.Fatalf("ack not shown by the API: %+v", fr.Ack)
			}
			acts := r.triage(fr.Fingerprint)
			if len(acts) != 1 || acts[0].Action != alerts.ActionAck || acts[0].Transport != slackapp.TransportSocketMode || acts[0].UserName != "ana" ||
				acts[0].Detector != "fraud-block-rate" || !acts[0].AlertActiveAt.Equal(fr.ActiveAt) {
				t.Fatalf("triage: %+v", acts)
			}
			acts0 := acts[0]
			upd := r.message(fr.Fingerprint)
			if upd.Method != "chat.update" || !strings.Contains(unescaped(upd.Blocks), "acked by <@U0ANA> "+r.clock.Now().Format("15:04")) {
				t.Fatalf("message not updated with the ack: %+v", upd)
			}
			page := r.page("/")
			if !strings.Contains(page, "acked by @ana "+r.clock.Now().Format("15:04")) {
				t.Errorf("status page lacks the ack")
			}

			// Repeats: past the repeat interval DE reminds, FR (acked) does not.
			before := len(r.fake.Calls("chat.postMessage"))
			r.clock.Advance(4*time.Hour + time.Minute)
			r.step(finding("FR", 0.30), finding("DE", 0.25))
			repeats := r.fake.Calls("chat.postMessage")[before:]
			if firingFor(repeats, de.Fingerprint) != 1 || firingFor(repeats, fr.Fingerprint) != 0 {
				t.Fatalf("repeats after the ack: %d for DE (want 1), %d for FR (want 0)", firingFor(repeats, de.Fingerprint), firingFor(repeats, fr.Fingerprint))
			}

			// Bob may not silence (not in S0ONCALL): an ephemeral refusal, no silence.
			r.socket(r.blockActions(bob, fr.Fingerprint, silenceMenu(fr.Fingerprint, "4h")))
			eph := r.fake.Calls("chat.postEphemeral")
			if len(eph) != 1 || eph[0].User != "U0BOB" || !strings.Contains(eph[0].Text, "may not silence") {
				t.Fatalf("refusal: %+v", eph)
			}
			var sils []alerts.Silence
			r.get("/api/v1/silences", &sils)
			if len(sils) != 0 {
				t.Fatalf("silence created for a refused user: %+v", sils)
			}

			// The HTTP endpoint: a bad signature and a stale timestamp are
			// refused and change nothing.
			silence4h := r.blockActions(ana, fr.Fingerprint, silenceMenu(fr.Fingerprint, "4h"))
			if code, body, _ := r.signed(silence4h, "wrong-secret", time.Now()); code != http.StatusUnauthorized {
				t.Fatalf("bad signature: %d %s", code, body)
			}
			if code, body, _ := r.signed(silence4h, signingSecret, time.Now().Add(-6*time.Minute)); code != http.StatusUnauthorized || !strings.Contains(body, "stale") {
				t.Fatalf("stale timestamp: %d %s", code, body)
			}
			r.get("/api/v1/silences", &sils)
			if len(sils) != 0 {
				t.Fatalf("refused requests created a silence: %+v", sils)
			}
			// Ana (in S0ONCALL) silences FR for 4h over HTTP.
			code, body, replay := r.signed(silence4h, signingSecret, time.Now())
			if code != http.StatusOK {
				t.Fatalf("signed request: %d %s", code, body)
			}
			r.get("/api/v1/silences", &sils)
			if len(sils) != 1 {
				t.Fatalf("silences: %+v", sils)
			}
			s := sils[0]
			want := map[string]string{"detector": "fraud-block-rate", "model": "fraud", "class": "model_behavior", "slice": "country=FR", "feature": ""}
			got := map[string]string{}
			for _, m := range s.Matchers {
				if m.Op != "=" {
					t.Errorf("matcher %+v", m)
				}
				got[m.Name] = m.Value
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || !strings.Contains(s.CreatedBy, "ana") || !s.EndsAt.Equal(s.StartsAt.Add(4*time.Hour)) {
				t.Fatalf("silence: %+v", s)
			}
			if !s.Matches(fr.Labels) || s.Matches(de.Labels) {
				t.Fatalf("silence matchers select the wrong alerts")
			}
			// The same request again (a replay within the 5 minutes) is refused.
			if code, body, _ := r.do(replay, ""); code != http.StatusUnauthorized {
				t.Fatalf("replay: %d %s", code, body)
			}
			r.get("/api/v1/silences", &sils)
			if len(sils) != 1 {
				t.Fatalf("replay created a silence: %d", len(sils))
			}
			r.step()
			if fr = r.alert("FR"); !fr.Silenced {
				t.Fatalf("FR not silenced")
			}
			if upd := r.message(fr.Fingerprint); !strings.Contains(unescaped(upd.Blocks), "silenced 4h by <@U0ANA>") || !strings.Contains(unescaped(upd.Blocks), "acked by") {
				t.Fatalf("message after silence: %s", upd.Blocks)
			}
			if acts := r.triage(fr.Fingerprint); len(acts) != 2 || acts[0].Action != alerts.ActionSilence || acts[0].SilenceID != s.ID || acts[0].Transport != slackapp.TransportHTTP {
				t.Fatalf("triage after silence: %+v", acts)
			}

			// False positive on DE over Socket Mode, then the reason from the modal.
			r.socket(r.blockActions(ana, de.Fingerprint, button(alerts.ActionIDFalsePositive, alerts.ButtonValue(de.Fingerprint, "fraud-product"))))
			views := r.fake.Calls("views.open")
			if len(views) != 1 || views[0].Text != "trig-ana" {
				t.Fatalf("modal: %+v", views)
			}
			var modal struct {
				CallbackID      string `json:"callback_id"`
				PrivateMetadata string `json:"private_metadata"`
			}
			if err := json.Unmarshal([]byte(views[0].View), &modal); err != nil {
				t.Fatal(err)
			}
			r.clock.Advance(20 * time.Second) // the reason is typed
			r.socket(map[string]any{"type": "view_submission", "user": map[string]any{"id": ana.id, "name": ana.name},
				"view": map[string]any{"id": "V0MODAL", "type": "modal", "callback_id": modal.CallbackID, "private_metadata": modal.PrivateMetadata,
					"state": map[string]any{"values": map[string]any{"reason": map[string]any{"reason": map[string]any{"type": "plain_text_input", "value": "Black Friday sale in DE"}}}}}})
			acts = r.triage(de.Fingerprint)
			if len(acts) != 2 || acts[0].Action != alerts.ActionFalsePositive || acts[0].Reason != "Black Friday sale in DE" || acts[1].Reason != "" {
				t.Fatalf("feedback: %+v", acts)
			}
			if upd := r.message(de.Fingerprint); !strings.Contains(unescaped(upd.Blocks), "marked false positive by <@U0ANA>") {
				t.Fatalf("message after feedback: %s", upd.Blocks)
			}

			// Expected over HTTP, and a silence until resolved that ends with the alert.
			r.clock.Advance(10 * time.Second)
			if code, body, _ := r.signed(r.blockActions(ana, de.Fingerprint, button(alerts.ActionIDExpected, alerts.ButtonValue(de.Fingerprint, "fraud-product"))), signingSecret, time.Now()); code != 200 {
				t.Fatalf("expected: %d %s", code, body)
			}
			r.clock.Advance(10 * time.Second)
			r.socket(r.blockActions(ana, de.Fingerprint, silenceMenu(de.Fingerprint, "until_resolved")))
			acts = r.triage(de.Fingerprint)
			if len(acts) != 4 || acts[1].Action != alerts.ActionExpected || acts[0].SilenceFor != "until_resolved" {
				t.Fatalf("triage of DE: %+v", acts)
			}
			untilID := acts[0].SilenceID
			r.app.Sweep(r.ctx) // DE still fires: the silence stays
			if st := r.silenceState(untilID); st != alerts.SilenceActive {
				t.Fatalf("until-resolved silence %s while DE fires", st)
			}
			r.clock.Advance(5 * time.Minute)
			r.step(finding("FR", 0.30)) // DE clear: resolved
			if v := r.alert("DE"); v.State != "resolved" {
				t.Fatalf("DE: %s", v.State)
			}
			r.app.Sweep(r.ctx)
			if st := r.silenceState(untilID); st != alerts.SilenceExpired {
				t.Fatalf("until-resolved silence %s after DE resolved", st)
			}

			// mlwatch report over the notified incidents and their triage.
			rows, err := monitor.ComputeQuality(r.ctx, r.db, r.tables, "test.yaml", r.clock.Now().Add(-24*time.Hour), r.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			ackAfter := acts0.At.Sub(*fr.FiredAt).Seconds()
			if len(rows) != 1 || rows[0].Detector != "fraud-block-rate" || rows[0].Class != "model_behavior" || rows[0].Alerts != 2 || rows[0].Pages != 2 ||
				rows[0].Acked != 1 || float64(rows[0].AckedShare) != 0.5 || float64(rows[0].AckMedian) != ackAfter ||
				rows[0].FalsePositive != 0 || rows[0].Expected != 1 || float64(rows[0].ExpectedShare) != 0.5 {
				t.Fatalf("quality: %+v (ack after %vs)", rows, ackAfter)
			}

			// DE's page outlives its place in memory (the Slack link stays alive).
			r.clock.Advance(20 * time.Minute)
			r.step(finding("FR", 0.30))
			r.step()
			var vs []alerts.View
			r.get("/api/v1/alerts", &vs)
			for _, v := range vs {
				if v.Fingerprint == de.Fingerprint {
					t.Fatalf("DE still held 20 minutes after it resolved: %+v", v)
				}
			}
			if page := r.page("/alerts/" + de.Fingerprint); !strings.Contains(page, "resolved") || !strings.Contains(page, "Black Friday sale in DE") {
				t.Fatalf("resolved alert's page: %.300s", page)
			}
		})
	}
}

func (r *rig) silenceState(id string) string {
	r.t.Helper()
	var sils []struct {
		alerts.Silence
		State string `json:"state"`
	}
	r.get("/api/v1/silences", &sils)
	for _, s := range sils {
		if s.ID == id {
			return s.State
		}
	}
	r.t.Fatalf("no silence %s", id)
	return ""
}

func (r *rig) page(path string) string {
	r.t.Helper()
	resp, err := http.Get(r.api.URL + path)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
