package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/store/storetest"
)

// signedInteraction posts an empty block_actions payload to the daemon's
// /slack/interactions signed with secret; it returns the HTTP status.
func signedInteraction(t *testing.T, addr, secret string) int {
	t.Helper()
	body := url.Values{"payload": {`{"type":"block_actions","actions":[]}`}}.Encode()
	req, err := http.NewRequest("POST", "http://"+addr+"/slack/interactions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	stamp := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + stamp + ":" + body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSigningSecretFollowsSIGHUP: the daemon reads the signing secret
// from a file; rewriting the file and sending SIGHUP makes the endpoint
// accept the new secret and refuse the old one, and emptying it turns the
// endpoint off (404) with one warning in the log.
func TestSigningSecretFollowsSIGHUP(t *testing.T) {
	e := storetest.ServerEngine(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mlwatch.yaml")
	secret := filepath.Join(dir, "signing-secret")
	writeSecret := func(s string) {
		if err := os.WriteFile(secret, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeSecret("secret-one\n")
	writeConfig(t, cfg, storetest.ServerAddr(), e.Database, "    block_rate: {score_psi: false}")
	text, _ := os.ReadFile(cfg)
	withSlack := strings.Replace(string(text), "global:", "slack:\n  interactivity: {signing_secret_file: "+secret+"}\nglobal:", 1)
	if err := os.WriteFile(cfg, []byte(withSlack), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"E2E_SLACK_TOKEN=xoxb-e2e", "MLWATCH_API_TOKEN=e2e"}
	mlwatchCmd(t, env, "schema", "apply", "--config", cfg, "--predictions")
	d := startDaemon(t, cfg, env)
	if code := signedInteraction(t, d.addr, "secret-one"); code != http.StatusOK {
		t.Fatalf("signed with the secret in the file: %d", code)
	}
	reload := func() {
		t.Helper()
		before := strings.Count(d.logs.String(), "config reloaded")
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		d.waitFor("the reload", 60*time.Second, func() bool { return strings.Count(d.logs.String(), "config reloaded") > before })
	}
	writeSecret("secret-two\n")
	reload()
	if code := signedInteraction(t, d.addr, "secret-one"); code != http.StatusUnauthorized {
		t.Errorf("the old secret after SIGHUP: %d, want 401", code)
	}
	if code := signedInteraction(t, d.addr, "secret-two"); code != http.StatusOK {
		t.Errorf("the new secret after SIGHUP: %d, want 200", code)
	}
	writeSecret("")
	reload()
	if code := signedInteraction(t, d.addr, "secret-two"); code != http.StatusNotFound {
		t.Errorf("no secret after SIGHUP: %d, want 404", code)
	}
	if n := strings.Count(d.logs.String(), "slack interactivity endpoint disabled"); n != 1 {
		t.Errorf("%d warnings that the endpoint is off, want 1:\n%s", n, d.logs.String())
	}
	if strings.Contains(d.logs.String(), "secret-two") {
		t.Error("the signing secret reached the log")
	}
	d.stop()
}
