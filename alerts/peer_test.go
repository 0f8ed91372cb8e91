package alerts

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store/storetest"
)

const peerHold = 30 * time.Second

// peerSetup is the replicas' shared world: a clock, a local Slack API
// and one config whose state lives in eng's database.
func peerSetup(t *testing.T, eng storetest.Engine) (*fakeClock, *fakeSlack, *configs.Config) {
	t.Helper()
	clock := newClock()
	fake := newFakeSlack(t, clock)
	env := map[string]string{configs.EnvSlackAPIURL: fake.URL()}
	return clock, fake, loadConfig(t, baseYAML+"state: {database: "+eng.Database+"}\n", env)
}

func peerManager(t *testing.T, cfg *configs.Config, eng storetest.Engine, clock *fakeClock, seen *outcomes, pos int) *Manager {
	t.Helper()
	m, err := New(Options{Config: cfg, Store: eng.DB, Now: clock.Now, Sleep: clock.Sleep, OnDelivery: seen.add,
		HTTPClient: &http.Client{Timeout: 20 * time.Second}, Peer: &Peer{Position: pos, Timeout: peerHold}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPeerPairNotifiesOnce: two replicas on one store and one config
// observe the same incident; the first posts, the second (position 1)
// holds, finds the twin in the shared outbox and adopts it. The first
// then dies: the survivor sends the next change into the first's thread
// after its hold and, on resolve, edits the first's message.
func TestPeerPairNotifiesOnce(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			clock, fake, cfg := peerSetup(t, eng)
			seen := &outcomes{}
			a := peerManager(t, cfg, eng, clock, seen, 0)
			b := peerManager(t, cfg, eng, clock, seen, 1)

			fr := finding("fraud-block-rate", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9)
			at := clock.Now()
			for _, m := range []*Manager{a, b} {
				mustObserve(t, m, "fraud-block-rate", at, fr)
			}
			pa, pb := mustProcess(t, a, clock.Advance(time.Minute)), mustProcess(t, b, clock.Now())
			if len(pa) != 1 || len(pb) != 1 || pa[0].ID != pb[0].ID {
				t.Fatalf("replicas planned %+v and %+v: want one notification each, with one content-derived ID", ids(pa), ids(pb))
			}
			if st := mustDeliver(t, b); st != (DeliverStats{}) {
				t.Fatalf("position 1 sent within its hold: %+v", st)
			}
			if st := mustDeliver(t, a); st.Sent != 1 {
				t.Fatalf("position 0: %+v, want the page sent", st)
			}
			clock.Advance(peerHold)
			if st := mustDeliver(t, b); st.Peer != 1 || st.Sent != 0 {
				t.Fatalf("position 1 after its hold: %+v, want the page adopted from the peer", st)
			}
			posts := fake.Calls("chat.postMessage")
			if len(posts) != 1 {
				t.Fatalf("%d messages posted, want 1: %+v", len(posts), posts)
			}
			first := posts[0].TS
			if ns := b.Notifications(NotificationSent); len(ns) != 1 || ns[0].PeerOf != pa[0].ID {
				t.Fatalf("survivor's outbox %+v, want the page sent by the peer %s", ns, pa[0].ID)
			}
			if seen.get("fraud-product/peer") != 1 {
				t.Errorf("outcomes %v, want one peer delivery", seen.n)
			}

			// a dies. b alone sees DE join FR: a reply in a's thread,
			// after b's hold.
			at = clock.Advance(time.Minute)
			de := finding("fraud-block-rate", "model_behavior", "fraud", "country=DE", 0.3, 0.05, 1e-9)
			mustObserve(t, b, "fraud-block-rate", at, fr, de)
			mustProcess(t, b, clock.Advance(time.Minute))
			if st := mustDeliver(t, b); st.Sent != 0 {
				t.Fatalf("sent within the hold: %+v", st)
			}
			clock.Advance(peerHold)
			if st := mustDeliver(t, b); st.Sent != 1 {
				t.Fatalf("after the hold, with the peer dead: %+v, want the change sent", st)
			}
			posts = fake.Calls("chat.postMessage")
			if len(posts) != 2 || posts[1].ThreadTS != first || !strings.Contains(posts[1].Text+posts[1].Blocks, "DE") {
				t.Fatalf("the next change: %+v, want a reply about DE in thread %s", posts, first)
			}

			// Both clear: b closes the group by editing a's message.
			at = clock.Advance(time.Minute)
			mustObserve(t, b, "fraud-block-rate", at)
			mustProcess(t, b, clock.Advance(time.Minute))
			clock.Advance(peerHold)
			mustDeliver(t, b)
			edits := fake.Calls("chat.update")
			if len(edits) != 1 || edits[0].TS != first {
				t.Fatalf("resolve: edits %+v, want a's message %s edited", edits, first)
			}
		})
	}
}

// TestPeerTwinFoundByContent: replicas whose cron times differ plan the
// same message under different IDs; the twin is still found (same group,
// same news) and its reference adopted, so the thread is shared.
func TestPeerTwinFoundByContent(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			clock, fake, cfg := peerSetup(t, eng)
			seen := &outcomes{}
			a := peerManager(t, cfg, eng, clock, seen, 0)
			b := peerManager(t, cfg, eng, clock, seen, 1)
			fr := finding("fraud-block-rate", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9)
			mustObserve(t, a, "fraud-block-rate", clock.Now(), fr)
			mustObserve(t, b, "fraud-block-rate", clock.Now().Add(2*time.Second), fr)
			pa := mustProcess(t, a, clock.Advance(time.Minute))
			pb := mustProcess(t, b, clock.Advance(3*time.Second))
			if len(pa) != 1 || len(pb) != 1 || pa[0].ID == pb[0].ID {
				t.Fatalf("planned %v and %v: want one each, IDs apart", ids(pa), ids(pb))
			}
			mustDeliver(t, a)
			clock.Advance(peerHold)
			if st := mustDeliver(t, b); st.Peer != 1 {
				t.Fatalf("b: %+v, want the twin adopted", st)
			}
			// A different group is no twin: b sends it.
			us := finding("fraud-block-rate", "model_behavior", "churn", "", 0.3, 0.05, 1e-9)
			us.Detector = "churn-block-rate"
			mustObserve(t, b, "churn-block-rate", clock.Now(), us)
			mustProcess(t, b, clock.Advance(time.Minute))
			clock.Advance(peerHold)
			if st := mustDeliver(t, b); st.Sent != 1 || st.Peer != 0 {
				t.Fatalf("b, another group: %+v, want it sent", st)
			}
			if n := len(fake.Calls("chat.postMessage")); n != 2 {
				t.Fatalf("%d posts, want 2 (FR once, churn once)", n)
			}
		})
	}
}

// TestPeerPositionFromIDs: replicas with IDs and no fixed position rank
// themselves by the live IDs in the shared peers table; when the first
// stops beating, the second becomes position 0 and no longer holds.
func TestPeerPositionFromIDs(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			clock := newClock()
			cfg := loadConfig(t, baseYAML+"state: {database: "+eng.Database+"}\n", nil)
			mk := func(id string) *Manager {
				m, err := New(Options{Config: cfg, Store: eng.DB, Now: clock.Now, Sleep: clock.Sleep, Peer: &Peer{Position: AutoPosition, ID: id, Timeout: peerHold}})
				if err != nil {
					t.Fatal(err)
				}
				if err := m.Restore(context.Background()); err != nil {
					t.Fatal(err)
				}
				return m
			}
			ctx := context.Background()
			b, a := mk("replica-b"), mk("replica-a")
			if b.PeerPosition() != 1 {
				t.Fatalf("before any heartbeat: position %d, want 1 (hold)", b.PeerPosition())
			}
			b.peerBeat(ctx, 5*time.Second)
			a.peerBeat(ctx, 5*time.Second)
			b.lastBeat = time.Time{}
			b.peerBeat(ctx, 5*time.Second)
			if a.PeerPosition() != 0 || b.PeerPosition() != 1 {
				t.Fatalf("positions a=%d b=%d, want 0 and 1", a.PeerPosition(), b.PeerPosition())
			}
			// a dies: after three ticks without its heartbeat b leads.
			for i := 0; i < 4; i++ {
				clock.Advance(5 * time.Second)
				b.peerBeat(ctx, 5*time.Second)
			}
			if b.PeerPosition() != 0 {
				t.Fatalf("a silent for 20s: b at position %d, want 0", b.PeerPosition())
			}
		})
	}
}

// TestPeerRefireIsNoTwin: an alert that resolved and fires again two
// minutes later is a new incident: its first message is posted, not
// taken for the previous incident's (same receiver, group and alert,
// within the twin window).
func TestPeerRefireIsNoTwin(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			clock, fake, cfg := peerSetup(t, eng)
			a := peerManager(t, cfg, eng, clock, &outcomes{}, 0)
			fr := finding("fraud-block-rate", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9)
			for i, fs := range [][]detectors.Finding{{fr}, nil, {fr}} {
				mustObserve(t, a, "fraud-block-rate", clock.Advance(time.Minute), fs...)
				mustProcess(t, a, clock.Advance(time.Minute))
				if st := mustDeliver(t, a); st.Sent != 1 || st.Peer != 0 {
					t.Fatalf("step %d: %+v, want one message sent", i, st)
				}
			}
			posts := fake.Calls("chat.postMessage")
			if len(posts) != 3 || posts[2].ThreadTS != "" || posts[2].TS == posts[0].TS {
				t.Fatalf("posts %+v, want the re-fire as a new message", posts)
			}
		})
	}
}

// TestPeerWaitsForSlowPeer: position 1 finds position 0's twin recorded
// but not yet delivered (a long queue on a loaded machine): it waits
// rather than sending too; once that record is older than (position + 2)
// peer timeouts, position 0 is taken for dead and position 1 sends.
func TestPeerWaitsForSlowPeer(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			clock, _, cfg := peerSetup(t, eng)
			a := peerManager(t, cfg, eng, clock, &outcomes{}, 0)
			b := peerManager(t, cfg, eng, clock, &outcomes{}, 1)
			fr := finding("fraud-block-rate", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9)
			for _, m := range []*Manager{a, b} {
				mustObserve(t, m, "fraud-block-rate", clock.Now(), fr)
			}
			mustProcess(t, a, clock.Advance(time.Minute))
			mustProcess(t, b, clock.Now())
			clock.Advance(peerHold + time.Second)
			if st := mustDeliver(t, b); st != (DeliverStats{}) {
				t.Fatalf("b with a's twin in flight: %+v, want it to wait", st)
			}
			clock.Advance(2 * peerHold)
			if st := mustDeliver(t, b); st.Sent != 1 {
				t.Fatalf("b after a's record went stale: %+v, want it sent", st)
			}
		})
	}
}

// TestPeerLaggingFirstWaitsForSecond: position 0 evaluates so late that
// position 1's hold has ended when position 0 plans the same message;
// position 1 is sending it, so position 0 waits for that delivery and
// adopts it instead of sending a second copy.
func TestPeerLaggingFirstWaitsForSecond(t *testing.T) {
	for _, eng := range storetest.Engines(t) {
		t.Run(eng.Name, func(t *testing.T) {
			clock, fake, cfg := peerSetup(t, eng)
			a := peerManager(t, cfg, eng, clock, &outcomes{}, 0)
			b := peerManager(t, cfg, eng, clock, &outcomes{}, 1)
			fr := finding("fraud-block-rate", "model_behavior", "fraud", "country=FR", 0.3, 0.05, 1e-9)
			at := clock.Now()
			mustObserve(t, b, "fraud-block-rate", at, fr)
			mustProcess(t, b, clock.Advance(time.Minute))
			clock.Advance(peerHold + time.Second)
			mustObserve(t, a, "fraud-block-rate", at, fr)
			mustProcess(t, a, clock.Now())
			if st := mustDeliver(t, a); st != (DeliverStats{}) {
				t.Fatalf("lagging position 0 with position 1's twin due first: %+v, want it to wait", st)
			}
			if st := mustDeliver(t, b); st.Sent != 1 {
				t.Fatalf("position 1 after its hold: %+v, want the page sent", st)
			}
			clock.Advance(peerHold / 5)
			if st := mustDeliver(t, a); st.Peer != 1 || st.Sent != 0 {
				t.Fatalf("position 0 after the peer's delivery: %+v, want the page adopted", st)
			}
			if posts := fake.Calls("chat.postMessage"); len(posts) != 1 {
				t.Fatalf("%d messages posted, want 1: %+v", len(posts), posts)
			}
		})
	}
}

// TestPeerOptionsChecked: bad peer settings are refused naming the flag.
func TestPeerOptionsChecked(t *testing.T) {
	cfg := loadConfig(t, baseYAML, nil)
	for _, tc := range []struct {
		p    Peer
		want string
	}{
		{Peer{Position: -1}, "--cluster.peer-position"},
		{Peer{Position: 1, Timeout: -time.Second}, "--cluster.peer-timeout"},
		{Peer{Position: AutoPosition}, "--cluster.peer-id is required"},
		{Peer{Position: AutoPosition, ID: "a\nb"}, "--cluster.peer-id"},
	} {
		if _, err := New(Options{Config: cfg, Peer: &tc.p}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc.p, err, tc.want)
		}
	}
}

func ids(ns []Notification) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}
