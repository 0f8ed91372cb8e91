package alerts

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
)

// TestSlackReadsForOnCall: what an on-call reads first. The text fallback
// (push notifications) names the slice, the figure and since when; the
// alert line says since when and for how long, rates as percentages and
// no p-value; a resolve line says how long the incident lasted; firing
// alerts carry the triage buttons only when interactivity is on.
func TestSlackReadsForOnCall(t *testing.T) {
	fired := t0.Add(-25 * time.Minute)
	resolved := t0.Add(40 * time.Minute)
	v := View{Fingerprint: "a6986ab9dd201a49", Detector: "fraud-block-rate", Class: "model_behavior", Model: "fraud", Severity: "page", Owner: "product",
		Slice: map[string]string{"country": "FR"}, Metric: "block_rate", Value: 0.3012, Baseline: 0.0498, PValue: 2e-177,
		NCurrent: 1000, NBaseline: 7000, ActiveAt: fired, FiredAt: &fired, Change: ChangeNew, Summary: "FR blocks 6x more"}
	for _, interactive := range []bool{false, true} {
		g := configs.Slack{}
		if interactive {
			g.Interactivity = &configs.Interactivity{AppToken: "xapp-1"}
		}
		s := NewSlack(SlackOptions{Name: "fraud-product", Receiver: configs.SlackReceiver{Channel: "C0PRODUCT", Token: "x"}, Global: g, ExternalURL: "http://mlwatch.test"})
		n := &Notification{Kind: KindFiring, CreatedAt: t0, Alerts: []View{v, v}}
		n.Alerts[1].Fingerprint, n.Alerts[1].Slice = "b", map[string]string{"country": "DE"}
		blocks, text := s.render(n, false)
		b, _ := json.Marshal(blocks)
		body := string(b)
		if want := "[PAGE] model_behavior fraud: country=FR block_rate 30.1% (baseline 5.0%) since 09:35 UTC (+1 more)"; text != want {
			t.Errorf("text fallback:\n got %q\nwant %q", text, want)
		}
		for _, want := range []string{"30.1% vs baseline 5.0%", "since Mar 2 09:35 UTC (25m)"} {
			if !strings.Contains(body, want) {
				t.Errorf("firing message lacks %q: %s", want, body)
			}
		}
		for _, not := range []string{"p=", "0.3012", "e-177"} {
			if strings.Contains(body, not) {
				t.Errorf("firing message shows %q", not)
			}
		}
		if got := strings.Contains(body, TriageBlockPrefix+v.Fingerprint); got != interactive {
			t.Errorf("interactive=%v: buttons shown=%v", interactive, got)
		}

		r := v
		r.Change, r.ResolvedAt = ChangeResolved, &resolved
		rn := &Notification{Kind: KindResolved, CreatedAt: resolved, Alerts: []View{r}}
		blocks, text = s.render(rn, false)
		b, _ = json.Marshal(blocks)
		if want := "[RESOLVED] model_behavior fraud: country=FR block_rate after 1h05m"; text != want {
			t.Errorf("resolve text: %q", text)
		}
		if !strings.Contains(string(b), "lasted 1h05m (09:35–10:40 UTC)") || strings.Contains(string(b), TriageBlockPrefix) {
			t.Errorf("resolve line: %s", b)
		}
	}
}
