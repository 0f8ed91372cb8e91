package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/mlwatch/mlwatch/alerts/fakeslack"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/monitor"
	"github.com/mlwatch/mlwatch/store"
)

// The secrets of TestSecretsNeverLeak: each is distinctive so that any
// piece of it in a log line or a response is found.
const (
	secretCH    = "chpw-S3CRET-4f1a"
	secretSlack = "xoxb-S3CRET-slack-77"
	secretWrong = "xoxb-S3CRET-wrong-99"
	secretHook  = "hook-S3CRET-bearer-31"
	secretAPI   = "api-S3CRET-token-58"
	secretApp   = "xapp-S3CRET-app-11"
	secretSign  = "sign-S3CRET-secret-99"
)

var secrets = []string{secretCH, secretSlack, secretWrong, secretHook, secretAPI, secretApp, secretSign, "S3CRET"}

// TestSecretsNeverLeak runs the daemon in-process with every secret set
// (ClickHouse password over TLS, Slack tokens, a webhook bearer token, the
// API token) and every path that logs errors exercised: Slack 500s, a
// Slack token the API refuses, a webhook answering 500, wrong API tokens,
// a reload. zap's observer records every entry at debug level; no entry,
// field, API response, metric or page may contain any secret. The daemon
// also serves HTTPS (server TLS options) and reaches ClickHouse over TLS
// with a CA file.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	ch := startClickHouse(t, chOptions{TLS: true, Users: map[string]string{"mlw": secretCH}})
	dir := t.TempDir()
	cert, key := writeTLSFiles(t, dir, "web", filepath.Join(dir, "web-ca.pem"))
	slack := fakeslack.New(t, secretSlack, nil)
	slack.SetAppToken(secretApp)
	slack.Fail(500, "")
	slack.Fail(500, "")
	var hookCalls, hookAuthOK atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hookCalls.Add(1)
		if r.Header.Get("Authorization") == "Bearer "+secretHook {
			hookAuthOK.Add(1)
		}
		http.Error(w, "receiver broken", http.StatusInternalServerError)
	}))
	defer hook.Close()

	cfgPath := filepath.Join(dir, "mlwatch.yaml")
	text := fmt.Sprintf(`clickhouse: {addr: %q, database: default, user: mlw, password_env: CH_PW, secure: true, ca_file: %q, query_timeout: 20s}
server: {api_token_env: API_T, tls_cert_file: %q, tls_key_file: %q}
global: {group_wait: 1s, group_by: [model, class, slice]}
slack: {interactivity: {app_token_env: APP_T, signing_secret_env: SIGN_T}}
models:
  - name: fraud
    table: predictions
    slices: [country]
    owners: {product: product, infra: product}
detectors:
  - {name: block, kind: block_rate, model: fraud, schedule: "@every 2s", baseline: {mode: previous}, block_rate: {score_psi: false}}
receivers:
  - {name: product, slack: {channel: C0PRODUCT, token_env: SLACK_T}}
  - {name: wrong, slack: {channel: C0INFRA, token_env: WRONG_T}}
  - {name: hook, webhook: {url: %q, bearer_token_env: HOOK_T}}
route:
  routes:
    - {receiver: hook, matchers: [class=model_behavior], continue: true}
    - {receiver: wrong, matchers: [class=model_behavior], continue: true}
`, ch.tlsAddr, ch.caFile, cert, key, hook.URL+"/hook")
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	envMap := map[string]string{"CH_PW": secretCH, "SLACK_T": secretSlack, "WRONG_T": secretWrong, "HOOK_T": secretHook,
		"API_T": secretAPI, "APP_T": secretApp, "SIGN_T": secretSign, configs.EnvSlackAPIURL: slack.URL()}
	var env []string
	for k, v := range envMap {
		env = append(env, k+"="+v)
	}
	var cmdOut strings.Builder
	cmdOut.WriteString(mlwatchCmd(t, env, "schema", "apply", "--config", cfgPath, "--predictions"))
	now := time.Now().UTC().Truncate(time.Minute)
	cmdOut.WriteString(mlwatchCmd(t, env, "generate", "--config", cfgPath, "--from", now.Add(-2*time.Hour).Format(time.RFC3339),
		"--to", now.Add(2*time.Minute).Format(time.RFC3339), "--rate", "300", "--incident", "slice_block:+1h:+2h5m:FR"))

	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrCh := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- monitor.RunDaemon(ctx, monitor.DaemonOptions{
			ConfigPath: cfgPath, Env: func(k string) (string, bool) { v, ok := envMap[k]; return v, ok },
			ListenAddress: "127.0.0.1:0", Logger: log, PipelineInterval: time.Second,
			Listening: func(a string) { addrCh <- a },
			Open: func(ctx context.Context, cfg *configs.Config, hooks ...store.Hook) (*store.DB, error) {
				return openStore(ctx, cfg, log, hooks...)
			},
		})
	}()
	var addr string
	select {
	case addr = <-addrCh:
	case err := <-done:
		t.Fatalf("daemon: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not listen within 30s")
	}

	// HTTPS with the configured certificate; plain HTTP is refused.
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(filepath.Join(dir, "web-ca.pem"))
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}, Timeout: 10 * time.Second}
	base := "https://" + addr
	call := func(method, path, token string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(`{"matchers":["class=x"],"duration":"1h","created_by":"t","comment":"c"}`))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if resp, err := http.Get("http://" + addr + "/-/healthy"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP answered on the TLS listener: %s", b)
		}
	}

	deadline := time.Now().Add(90 * time.Second)
	for len(postsTo(slack, "C0PRODUCT")) == 0 || hookCalls.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no notification reached Slack and the webhook within 90s (slack %d calls, webhook %d)", len(slack.Calls("")), hookCalls.Load())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if hookAuthOK.Load() == 0 {
		t.Error("the webhook never got its bearer token")
	}
	var responses strings.Builder
	for _, c := range []struct {
		method, path, token string
		code                int
	}{
		{"POST", "/api/v1/silences", "", 401},
		{"POST", "/api/v1/silences", secretAPI + "x", 401},
		{"POST", "/api/v1/silences", secretSlack, 401},
		{"POST", "/-/reload", "", 401},
		{"DELETE", "/api/v1/silences/x", "", 401},
		{"POST", "/-/reload", secretAPI, 200},
		{"POST", "/slack/interactions", "", 401}, // unsigned
	} {
		code, body := call(c.method, c.path, c.token)
		if code != c.code {
			t.Errorf("%s %s with token %q: %d %s, want %d", c.method, c.path, c.token, code, body, c.code)
		}
		responses.WriteString(body)
	}
	for _, path := range []string{"/api/v1/alerts", "/api/v1/silences", "/api/v1/detectors", "/metrics", "/", "/-/ready", "/-/healthy"} {
		_, body := call("GET", path, "")
		responses.WriteString(body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("daemon: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("daemon did not stop within 40s")
	}

	if slack.Opens() == 0 {
		t.Error("Socket Mode never opened a connection with the app-level token")
	}
	entries := logs.AllUntimed()
	var text2 strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&text2, "%s %s %v\n", e.Level, e.Message, e.ContextMap())
	}
	all := text2.String()
	for _, want := range []string{"notification failed, will retry", "notification dead: not delivered", "invalid_auth", "HTTP 500", "query"} {
		if !strings.Contains(all, want) {
			t.Errorf("the logs lack %q: the error paths this test relies on did not run", want)
		}
	}
	t.Logf("%d log entries, %d bytes of API output, %d Slack calls, %d webhook calls checked", len(entries), responses.Len(), len(slack.Calls("")), hookCalls.Load())
	for _, s := range secrets {
		if i := strings.Index(all, s); i >= 0 {
			t.Errorf("a log entry holds the secret %q: …%s…", s, all[max(0, i-200):min(len(all), i+100)])
		}
		if strings.Contains(responses.String(), s) {
			t.Errorf("an API response holds the secret %q", s)
		}
		if strings.Contains(cmdOut.String(), s) {
			t.Errorf("schema apply or generate printed the secret %q", s)
		}
	}
}

// TestClickHouseTLSOptions: secure with the right CA connects; without
// the CA, or in plain text to the TLS port, or with a wrong password,
// start-up fails with a message that says why and holds no secret.
func TestClickHouseTLSOptions(t *testing.T) {
	t.Parallel()
	ch := startClickHouse(t, chOptions{TLS: true, Users: map[string]string{"mlw": secretCH}})
	dir := t.TempDir()
	for _, tc := range []struct {
		name, ch, password, want string
	}{
		{"secure without the CA", fmt.Sprintf("{addr: %q, user: mlw, password_env: CH_PW, secure: true}", ch.tlsAddr), secretCH,
			"tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{"plain text to the TLS port", fmt.Sprintf("{addr: %q, user: mlw, password_env: CH_PW}", ch.tlsAddr), secretCH,
			"clickhouse unavailable"},
		{"wrong password", fmt.Sprintf("{addr: %q, user: mlw, password_env: CH_PW, secure: true, ca_file: %q}", ch.tlsAddr, ch.caFile), secretCH + "-wrong",
			"clickhouse rejected the user or password (code 193)"},
		{"secure with the CA", fmt.Sprintf("{addr: %q, user: mlw, password_env: CH_PW, secure: true, ca_file: %q}", ch.tlsAddr, ch.caFile), secretCH,
			"mlwatch tables ready in default (server engine)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			text := "clickhouse: " + tc.ch + "\nmodels: [{name: fraud, table: predictions, owners: {product: r, infra: r}}]\nreceivers: [{name: r, webhook: {url: \"http://127.0.0.1:9/\"}}]\n"
			if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(binary(t), "schema", "apply", "--config", cfg)
			cmd.Env = append(os.Environ(), "CH_PW="+tc.password)
			out, err := cmd.CombinedOutput()
			got := string(out)
			if ok := err == nil; ok != (tc.name == "secure with the CA") {
				t.Errorf("schema apply: %v", err)
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, got)
			}
			if strings.Contains(got, "S3CRET") {
				t.Errorf("output holds the password:\n%s", got)
			}
		})
	}
}

// TestListensOnLoopbackByDefault: with no listen address anywhere, the
// daemon binds 127.0.0.1:9107 and nothing else (if another process holds
// that port, the refusal names the loopback address all the same).
func TestListensOnLoopbackByDefault(t *testing.T) {
	t.Parallel()
	cfg, err := configs.Parse("x.yaml", []byte("models: [{name: fraud, table: predictions, owners: {product: r, infra: r}}]\nreceivers: [{name: r, webhook: {url: \"http://127.0.0.1:9/\"}}]\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.ListenAddress != "127.0.0.1:9107" {
		t.Fatalf("default listen address %q", cfg.Server.ListenAddress)
	}
	ch := startClickHouse(t, chOptions{})
	path := filepath.Join(t.TempDir(), "mlwatch.yaml")
	text := fmt.Sprintf("clickhouse: {addr: %q}\nmodels: [{name: fraud, table: predictions, owners: {product: r, infra: r}}]\nreceivers: [{name: r, webhook: {url: \"http://127.0.0.1:9/\"}}]\n", ch.addr)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	mlwatchCmd(t, nil, "schema", "apply", "--config", path, "--predictions")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrCh := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- monitor.RunDaemon(ctx, monitor.DaemonOptions{ConfigPath: path, Env: noEnv, Listening: func(a string) { addrCh <- a },
			Open: func(ctx context.Context, cfg *configs.Config, hooks ...store.Hook) (*store.DB, error) {
				return openStore(ctx, cfg, zap.NewNop(), hooks...)
			}})
	}()
	select {
	case a := <-addrCh:
		if a != "127.0.0.1:9107" {
			t.Errorf("listening on %s, want 127.0.0.1:9107", a)
		}
		for _, ip := range nonLoopbackIPs() {
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "9107"), time.Second); err == nil {
				c.Close()
				t.Errorf("the daemon answers on %s:9107; it must listen on loopback only", ip)
			}
		}
		cancel()
		<-done
	case err := <-done:
		// Another process holds the port: the refusal still shows the
		// daemon tried loopback only.
		if err == nil || !strings.Contains(err.Error(), "listen on 127.0.0.1:9107: ") || !strings.Contains(err.Error(), "address already in use") {
			t.Errorf("daemon ended: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not start within 30s")
	}
}

func nonLoopbackIPs() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			out = append(out, n.IP.String())
		}
	}
	return out
}
