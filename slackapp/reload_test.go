package slackapp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/alerts/fakeslack"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/monitor"
	"github.com/mlwatch/mlwatch/slackapp"
	"github.com/mlwatch/mlwatch/store"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// parseWith reads the test config with env as the environment.
func parseWith(t *testing.T, fake *fakeslack.Server, env map[string]string) *configs.Config {
	t.Helper()
	cfg, err := configs.Parse("test.yaml", []byte(fmt.Sprintf(configYAML, fake.URL())), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// warnings counts the log entries at warn level whose message contains s.
func warnings(logs *observer.ObservedLogs, s string) int {
	n := 0
	for _, e := range logs.All() {
		if e.Level == zapcore.WarnLevel && strings.Contains(e.Message, s) {
			n++
		}
	}
	return n
}

const (
	socketOff = "slack socket mode disabled: app-level token not set"
	httpOff   = "slack interactivity endpoint disabled: signing secret not set"
)

// TestTransportsFollowTheirSecrets: an unset secret disables its
// transport with one warning, and a reload (SetConfig, what SIGHUP and
// POST /-/reload call) that sets, rotates or unsets a secret starts,
// reconnects or stops its transport: clicks work over each transport
// exactly while its secret is set, with the secret in force; one warning
// per transport that goes off, none for a reload that changes nothing.
func TestTransportsFollowTheirSecrets(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			c := &clock{t: time.Now().UTC().Truncate(time.Second)}
			fake := fakeslack.New(t, botToken, c.Now)
			fake.SetUserGroup("S0ONCALL", "U0ANA")
			env := map[string]string{"SLACK_BOT_TOKEN": botToken, "SLACK_SIGNING_SECRET": "secret-one"}
			cfg := parseWith(t, fake, env)
			cfg.State.Database = eng.Database
			tables := store.Tables{Database: eng.Database, Prefix: "reload_"}
			cfg.State.TablePrefix = tables.Prefix
			if err := store.Apply(ctx, eng.DB, eng.Database, monitor.TableDefs(tables)); err != nil {
				t.Fatal(err)
			}
			mgr, err := alerts.New(alerts.Options{Config: cfg, Store: eng.DB, Now: c.Now, Sleep: c.Sleep})
			if err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zapcore.InfoLevel)
			log := alerts.NewTriageLog(eng.DB, tables)
			app := slackapp.New(slackapp.Options{Config: cfg, Alerts: mgr, Silences: mgr, Log: log, Now: c.Now, Logger: zap.New(core)})
			if warnings(logs, socketOff) != 1 || warnings(logs, httpOff) != 0 {
				t.Fatalf("start without an app-level token: want one socket mode warning, got:\n%v", logs.All())
			}
			socketDone := make(chan struct{})
			go func() { defer close(socketDone); _ = app.RunSocketMode(ctx) }()
			t.Cleanup(func() { cancel(); <-socketDone })
			api := httptest.NewServer(monitor.Handler(monitor.ServerOptions{Alerts: mgr, Silencer: mgr, Triage: log.List, SlackInteractions: app,
				Now: c.Now, StoredAlert: mgr.StoredAlert, Token: func() string { return apiToken }}))
			t.Cleanup(api.Close)
			r := &rig{t: t, db: eng.DB, tables: tables, clock: c, fake: fake, mgr: mgr, app: app, api: api, ctx: ctx}
			r.step(finding("FR", 0.30))
			r.clock.Advance(time.Minute)
			r.step(finding("FR", 0.30))
			fp := r.alert("FR").Fingerprint
			silences := func() int { return len(mgr.Silences()) }
			click := func(choice string) map[string]any { return r.blockActions(ana, fp, silenceMenu(fp, choice)) }

			// HTTP with the first secret works; no Socket Mode connection.
			if code, body, _ := r.signed(click("1h"), "secret-one", time.Now()); code != http.StatusOK || silences() != 1 {
				t.Fatalf("signed click: %d %s, %d silences", code, body, silences())
			}
			if fake.Opens() != 0 {
				t.Fatalf("Socket Mode opened %d connections without a token", fake.Opens())
			}

			// Reload: an app-level token appears, the signing secret rotates.
			fake.SetAppToken(appToken)
			env["SLACK_APP_TOKEN"], env["SLACK_SIGNING_SECRET"] = appToken, "secret-two"
			app.SetConfig(parseWith(t, fake, env))
			r.socket(click("4h"))
			if silences() != 2 {
				t.Fatalf("click over Socket Mode after the reload: %d silences, want 2", silences())
			}
			if code, _, _ := r.signed(click("1h"), "secret-one", time.Now()); code != http.StatusUnauthorized {
				t.Fatalf("the old signing secret still accepted after the reload: %d", code)
			}
			if code, body, _ := r.signed(click("24h"), "secret-two", time.Now()); code != http.StatusOK || silences() != 3 {
				t.Fatalf("the new signing secret: %d %s, %d silences", code, body, silences())
			}

			// Reload: the app-level token rotates: a new connection with it.
			fake.SetAppToken(appToken + "-rotated")
			env["SLACK_APP_TOKEN"] = appToken + "-rotated"
			app.SetConfig(parseWith(t, fake, env))
			waitFor(t, "a connection with the rotated token", func() bool { return fake.Opens() == 2 && fake.Conns() == 1 })
			r.socket(click("1h"))
			if silences() != 4 {
				t.Fatalf("click over the reconnected Socket Mode: %d silences, want 4", silences())
			}

			// Reload: both secrets unset: both transports stop, one warning each.
			delete(env, "SLACK_APP_TOKEN")
			delete(env, "SLACK_SIGNING_SECRET")
			app.SetConfig(parseWith(t, fake, env))
			waitFor(t, "the Socket Mode connection to close", func() bool { return fake.Conns() == 0 })
			if code, body, _ := r.signed(click("1h"), "secret-two", time.Now()); code != http.StatusNotFound || !strings.Contains(body, "no signing secret") {
				t.Fatalf("endpoint without a signing secret: %d %s", code, body)
			}
			app.SetConfig(parseWith(t, fake, env)) // a reload that changes nothing
			if s, h := warnings(logs, socketOff), warnings(logs, httpOff); s != 2 || h != 1 {
				t.Fatalf("warnings: socket mode %d (want 2: start and reload), endpoint %d (want 1)", s, h)
			}
			if fake.Opens() != 2 || silences() != 4 {
				t.Fatalf("after both went off: %d opens, %d silences", fake.Opens(), silences())
			}
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
