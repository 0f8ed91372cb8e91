package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/alerts/fakeslack"
	"github.com/mlwatch/mlwatch/store/storetest"
)

// haConfig groups by detector, so that the next change (a new detector's
// alert) starts a thread of its own and the first detector's thread closes
// on its own.
const haConfig = `
clickhouse:
  addr: %ADDR%
  database: %DB%
  query_timeout: 30s
global:
  group_wait: 1s
  group_by: [model, detector]
  failure_threshold: 3
models:
  - name: fraud
    table: predictions
    slices: [country]
    owners: {product: product, infra: infra}
detectors:
%DETECTORS%
receivers:
  - name: product
    slack: {channel: C0PRODUCT, token_env: E2E_SLACK_TOKEN}
  - name: infra
    slack: {channel: C0INFRA, token_env: E2E_SLACK_TOKEN}
`

// haDetectors are the detector blocks of the HA tests: "block" finds the
// FR incident; "bound" breaks an absolute bound of the aggregate.
var haDetectors = map[string]string{
	"block": `  - name: block
    kind: block_rate
    model: fraud
    schedule: "@every 2s"
    window: 1h
    baseline: {mode: previous}
    block_rate: {score_psi: false}
`,
	"bound": `  - name: bound
    kind: block_rate
    model: fraud
    schedule: "@every 2s"
    window: 1h
    slices: []
    baseline: {mode: previous}
    block_rate: {score_psi: false, max_rate: 0.001}
`,
}

func writeHAConfig(t testing.TB, path, addr, db string, detectors ...string) {
	t.Helper()
	blocks := make([]string, len(detectors))
	for i, d := range detectors {
		blocks[i] = haDetectors[d]
	}
	writeHADetectors(t, path, addr, db, blocks...)
}

// writeHADetectors writes haConfig with these detector blocks ("[]" for
// none).
func writeHADetectors(t testing.TB, path, addr, db string, blocks ...string) {
	t.Helper()
	ds := strings.Join(blocks, "")
	if ds == "" {
		ds = "  []\n"
	}
	text := strings.NewReplacer("%ADDR%", addr, "%DB%", db, "%DETECTORS%", ds).Replace(haConfig)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// notifications is a replica's outbox as its API lists it.
func (p *proc) notifications() []alerts.NotificationStatus {
	var resp struct{ Data []alerts.NotificationStatus }
	if err := json.Unmarshal(p.get("/api/v1/notifications"), &resp); err != nil {
		p.t.Fatal(err)
	}
	return resp.Data
}

// sentBy returns the replica's sent notifications that it delivered
// itself (mine) and those a peer delivered (peers).
func (p *proc) sentBy() (mine, peers int) {
	for _, n := range p.notifications() {
		if n.State != alerts.NotificationSent {
			continue
		}
		if n.PeerOf != "" {
			peers++
		} else {
			mine++
		}
	}
	return mine, peers
}

// duplicates counts Slack posts that repeat an earlier one: the same
// channel, thread and text.
func duplicates(calls []fakeslack.Call) (int, []string) {
	seen := map[string]bool{}
	n := 0
	var which []string
	for _, c := range calls {
		k := c.Channel + "\x00" + c.ThreadTS + "\x00" + c.Text
		if seen[k] {
			n++
			which = append(which, fmt.Sprintf("%s thread=%q %.100s", c.Channel, c.ThreadTS, c.Text))
		}
		seen[k] = true
	}
	return n, which
}

// TestHAPairNotifiesOnceAndTakesOver runs two `mlwatch run` replicas of
// one config on one ClickHouse and one Slack: the FR incident is posted
// once (the second replica adopts the first's message from the shared
// outbox); then the replica that sent it is SIGKILLed, and the survivor
// sends the next change (a new detector's alert, after a reload) and
// closes the dead replica's thread by editing its message.
func TestHAPairNotifiesOnceAndTakesOver(t *testing.T) {
	e := storetest.ServerEngine(t)
	slack := fakeslack.New(t, "xoxb-ha", nil)
	cfg := filepath.Join(t.TempDir(), "mlwatch.yaml")
	writeHAConfig(t, cfg, storetest.ServerAddr(), e.Database, "block")
	env := []string{"E2E_SLACK_TOKEN=xoxb-ha", "MLWATCH_SLACK_API_URL=" + slack.URL(), "MLWATCH_API_TOKEN=ha"}
	now := time.Now().UTC().Truncate(time.Minute)
	mlwatchCmd(t, env, "schema", "apply", "--config", cfg, "--predictions")
	mlwatchCmd(t, env, "generate", "--config", cfg, "--from", now.Add(-3*time.Hour).Format(time.RFC3339), "--to", now.Add(5*time.Minute).Format(time.RFC3339),
		"--rate", "400", "--seed", "5", "--incident", "slice_block:+2h:+3h10m:FR")

	hold := []string{"--cluster.peer-timeout", "10s"}
	reps := []*proc{
		startDaemon(t, cfg, env, append(hold, "--cluster.peer-position", "0")...),
		startDaemon(t, cfg, env, append(hold, "--cluster.peer-position", "1")...),
	}
	isFR := func(c fakeslack.Call) bool {
		return c.Channel == "C0PRODUCT" && c.ThreadTS == "" && strings.Contains(c.Text+c.Blocks, "FR")
	}
	reps[0].waitFor("the FR page in Slack", 3*time.Minute, func() bool { return count(slack.Calls("chat.postMessage"), isFR) > 0 })
	// Both replicas account for every message: one sent it, the other
	// adopted it (after its hold of up to 10s and a delivery tick).
	var sender, survivor *proc
	reps[0].waitFor("both replicas to record the FR page", 2*time.Minute, func() bool {
		m0, p0 := reps[0].sentBy()
		m1, p1 := reps[1].sentBy()
		switch {
		case m0 > 0 && p1 > 0:
			sender, survivor = reps[0], reps[1]
		case m1 > 0 && p0 > 0:
			sender, survivor = reps[1], reps[0]
		}
		return sender != nil
	})
	time.Sleep(5 * time.Second) // a few more evaluations and pipeline ticks
	posts := slack.Calls("chat.postMessage")
	if n, which := duplicates(posts); n > 0 || count(posts, isFR) != 1 {
		t.Fatalf("with both replicas up: %d FR pages and %d duplicate posts %q", count(posts, isFR), n, which)
	}
	frTS := ""
	for _, c := range posts {
		if isFR(c) {
			frTS = c.TS
		}
	}

	// SIGKILL the sender. The survivor alone: the bound detector replaces
	// block (reload), so FR resolves and the bound fires.
	if err := sender.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-sender.done
	before := len(slack.Calls("chat.postMessage"))
	writeHAConfig(t, cfg, storetest.ServerAddr(), e.Database, "bound")
	killedAt := time.Now()
	if err := survivor.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	survivor.dump = func() {
		t.Logf("survivor's alerts: %s", survivor.get("/api/v1/alerts"))
		t.Logf("survivor's notifications: %s", survivor.get("/api/v1/notifications"))
		for _, m := range []string{"chat.postMessage", "chat.update"} {
			for _, c := range slack.Calls(m) {
				t.Logf("slack %s: channel=%s thread=%q ts=%s %.200s", m, c.Channel, c.ThreadTS, c.TS, c.Text)
			}
		}
	}
	isBound := func(c fakeslack.Call) bool { return c.ThreadTS == "" && strings.Contains(c.Text+c.Blocks, "bound") }
	survivor.waitFor("the survivor to page the next change", 5*time.Minute, func() bool {
		return count(slack.Calls("chat.postMessage")[before:], isBound) > 0
	})
	t.Logf("first page after the kill: %.1fs", time.Since(killedAt).Seconds())
	survivor.waitFor("the survivor to edit the dead replica's FR message on resolve", 5*time.Minute, func() bool {
		return count(slack.Calls("chat.update"), func(c fakeslack.Call) bool { return c.TS == frTS }) > 0
	})
	posts = slack.Calls("chat.postMessage")
	if n, which := duplicates(posts); n > 0 || count(posts[before:], isBound) != 1 {
		t.Errorf("after the kill: %d bound pages and %d duplicate posts %q", count(posts, isBound), n, which)
	}
	resolvedReply := count(posts, func(c fakeslack.Call) bool { return c.ThreadTS == frTS })
	if resolvedReply == 0 {
		t.Errorf("no reply in the FR thread %s on resolve: %+v", frTS, posts)
	}
	survivor.stop()
}

func count(calls []fakeslack.Call, match func(fakeslack.Call) bool) int {
	n := 0
	for _, c := range calls {
		if match(c) {
			n++
		}
	}
	return n
}

// TestHAFlagsChecked: bad HA flags exit 2 naming the flag, before the
// daemon starts.
func TestHAFlagsChecked(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "mlwatch.yaml")
	writeHAConfig(t, cfg, "127.0.0.1:1", "ha", "block")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster.peer-position", "-3"}, "--cluster.peer-position: -3 is negative"},
		{[]string{"--cluster.peer-position", "1", "--cluster.peer-timeout", "-1s"}, "--cluster.peer-timeout: -1s is negative"},
		{[]string{"--cluster.peer-id", "a\tb"}, "--cluster.peer-id"},
	} {
		out, code := runMlwatch(t, nil, append([]string{"run", "--config", cfg}, tc.args...)...)
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("mlwatch run %v: exit %d, output %q; want exit 2 naming %q", tc.args, code, out, tc.want)
		}
	}
}
