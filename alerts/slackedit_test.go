package alerts

import (
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/alerts/fakeslack"
)

var alertLinkRe = regexp.MustCompile(`/alerts/([0-9a-f]{16})`)

// editChecker checks every chat.update the local Slack API receives
// against the alert state at that moment: the edited message's thread
// (first message and replies) names its alerts; none of them may still
// fire when the edit says RESOLVED, and the edit keeps the first
// message's title (class · model).
type editChecker struct {
	t    *testing.T
	fake *fakeSlack
	m    *Manager

	mu      sync.Mutex
	edits   []fakeslack.Call
	failure []string
}

func checkEdits(t *testing.T, fake *fakeSlack, m *Manager) *editChecker {
	c := &editChecker{t: t, fake: fake, m: m}
	fake.OnCall(c.check)
	return c
}

func headerOf(t *testing.T, blocks string) string {
	var bs []struct {
		Type string `json:"type"`
		Text struct {
			Text string `json:"text"`
		} `json:"text"`
	}
	if err := json.Unmarshal([]byte(blocks), &bs); err != nil {
		t.Errorf("blocks %q: %v", blocks, err)
		return ""
	}
	for _, b := range bs {
		if b.Type == "header" {
			return b.Text.Text
		}
	}
	return ""
}

// titleOf is a header's "class · model" part.
func titleOf(header string) string {
	parts := strings.Split(header, " · ")
	if len(parts) < 3 {
		return header
	}
	return strings.Join(parts[len(parts)-2:], " · ")
}

func (c *editChecker) check(call fakeslack.Call) {
	if call.Method != "chat.update" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.edits = append(c.edits, call)
	var root *fakeslack.Call
	fps := map[string]bool{}
	for _, p := range c.fake.Calls("chat.postMessage") {
		if p.TS == call.TS && p.ThreadTS == "" {
			p := p
			root = &p
		}
		if p.TS == call.TS || p.ThreadTS == call.TS {
			for _, m := range alertLinkRe.FindAllStringSubmatch(p.Blocks, -1) {
				fps[m[1]] = true
			}
		}
	}
	if root == nil {
		c.failure = append(c.failure, "chat.update of a message never posted: "+call.TS)
		return
	}
	header := headerOf(c.t, call.Blocks)
	if strings.Contains(header, "RESOLVED") || strings.Contains(call.Blocks, "All alerts of this group resolved") {
		for _, v := range c.m.Alerts() {
			if fps[v.Fingerprint] && v.State == "firing" {
				c.failure = append(c.failure, "edit of "+call.TS+" reads "+header+" while "+v.Class+" "+SliceLabel(v.Slice)+" fires")
			}
		}
	}
	if want := titleOf(headerOf(c.t, root.Blocks)); titleOf(header) != want {
		c.failure = append(c.failure, "edit of "+call.TS+" titled "+header+", the message was posted as "+want)
	}
}

func (c *editChecker) done() []fakeslack.Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.failure {
		c.t.Error(f)
	}
	return c.edits
}

// TestSlackEditNeverReadsResolvedWhileMembersFire: a group whose members
// resolve one by one, and an infra page whose caused product alert
// resolves in its thread before it does. No edit of a first message may
// say RESOLVED while any alert of its thread fires, and the edit keeps
// the first message's own title.
func TestSlackEditNeverReadsResolvedWhileMembersFire(t *testing.T) {
	clock := newClock()
	fake := newFakeSlack(t, clock)
	m, _ := slackManager(t, fake, clock, baseYAML)
	checker := checkEdits(t, fake, m)
	step := func(d time.Duration, obs map[string][]detectorsFinding) {
		t.Helper()
		at := clock.Advance(d)
		for name, fs := range obs {
			mustObserve(t, m, name, at, fs...)
		}
		mustProcess(t, m, at)
		mustDeliver(t, m)
	}
	br := func(country string) detectorsFinding {
		return finding("fraud-block-rate", "model_behavior", "fraud", "country="+country, 0.3, 0.05, 1e-9)
	}
	nulls := finding("fraud-features", "feature_pipeline", "fraud", "", 0.62, 0.01, 1e-30)
	nulls.Feature, nulls.Metric = "merchant_risk", "null_rate"
	div := finding("fraud-shadow", "model_divergence", "fraud", "", 0.3, 0.05, 1e-9)

	// FR and BR fire in one product group.
	step(0, map[string][]detectorsFinding{"fraud-block-rate": {br("FR"), br("BR")}})
	step(time.Minute, nil)
	// BR resolves while FR fires: a reply, no RESOLVED edit.
	step(5*time.Minute, map[string][]detectorsFinding{"fraud-block-rate": {br("FR")}})
	if n := len(fake.Calls("chat.update")); n != 0 {
		t.Fatalf("%d edits while FR fires", n)
	}
	// An infra null spike, then a product alert it causes (in its thread).
	step(time.Minute, map[string][]detectorsFinding{"fraud-features": {nulls}, "fraud-block-rate": {br("FR")}})
	step(time.Minute, map[string][]detectorsFinding{"fraud-features": {nulls}, "fraud-block-rate": {br("FR")}, "fraud-shadow": {div}})
	step(time.Minute, map[string][]detectorsFinding{"fraud-features": {nulls}, "fraud-block-rate": {br("FR")}, "fraud-shadow": {div}})
	divFP := Fingerprint("fraud-shadow", "fraud", "model_divergence", nil, "")
	if v := viewByFP(m.Alerts(), divFP); v == nil || v.CausedBy == "" {
		t.Fatalf("divergence not attributed to the null spike: %+v", v)
	}
	// The caused alert resolves in the infra thread: the null spike fires.
	step(5*time.Minute, map[string][]detectorsFinding{"fraud-features": {nulls}, "fraud-block-rate": {br("FR")}, "fraud-shadow": nil})
	// The null spike resolves while FR still fires in the product group.
	step(5*time.Minute, map[string][]detectorsFinding{"fraud-features": nil, "fraud-block-rate": {br("FR")}})
	// FR resolves: every group is closed.
	step(5*time.Minute, map[string][]detectorsFinding{"fraud-block-rate": nil})

	edits := checker.done()
	if len(edits) != 2 {
		t.Fatalf("%d chat.update calls, want 2 (one per group, once all its members resolved)", len(edits))
	}
	var infra bool
	for _, e := range edits {
		h := headerOf(t, e.Blocks)
		if !strings.Contains(h, "RESOLVED") {
			t.Errorf("closing edit %q does not say RESOLVED", h)
		}
		if e.Channel == "C0INFRA" {
			infra = true
			if titleOf(h) != "feature_pipeline · fraud" || strings.Contains(e.Blocks, "model_divergence") || !strings.Contains(e.Blocks, "owner *infra*") {
				t.Errorf("infra root edited into %q (%s), want the null spike's own title and alert", h, e.Blocks)
			}
		}
	}
	if !infra {
		t.Error("the infra page was never closed")
	}
}
