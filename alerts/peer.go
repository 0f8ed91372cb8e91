package alerts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/store"
)

// The HA pair (issue 13), after Alertmanager's cluster/ and nflog/: two
// or more `mlwatch run` replicas with one config evaluate independently,
// share mlwatch's tables in ClickHouse (alert state, silences, the
// outbox), and notify once. Three parts:
//
//   - A notification's ID is derived from its content (receiver, group,
//     thread, kind, and each alert's fingerprint, change and evaluation
//     time), so replicas that evaluated the same cron times name the same
//     message alike.
//   - Each replica has a position; position p holds a new notification
//     p × Peer.Timeout after it was created before it may send it.
//   - Before sending, a replica looks in the shared outbox for a twin a
//     peer already delivered: the same receiver and group, the same
//     thread (by the receiver's reference of its first message, so two
//     replicas' thread IDs that differ still match), what it says covered
//     by the twin's alerts, created within Peer.Window of it. It then
//     adopts the twin instead of sending: it records the twin's reference
//     (the Slack CHANNEL/TS), so its later replies go to that thread and
//     its resolution edits that message. When the replica that was
//     sending dies, nobody delivers the twins, and the survivor sends
//     after its hold: it takes over the threads it did not start.
//
// No membership protocol: ClickHouse, which holds the state anyway, is
// the log both replicas read. A replica that cannot read it sends (a
// duplicate beats a missed page).

// Peer makes a Manager one replica of an HA group (mlwatch run
// --cluster.peer-position).
type Peer struct {
	// Position orders the replicas, 0 first: position p holds each new
	// notification p × Timeout before it checks the shared outbox and
	// sends. AutoPosition derives it from ID.
	Position int
	// ID names the replica stably (--cluster.peer-id). Each replica with
	// an ID writes a heartbeat to the shared peers table at every
	// delivery tick; with AutoPosition its position is its rank among
	// the IDs seen alive (within three ticks), so when the first replica
	// dies the next one becomes position 0 and stops holding.
	ID string
	// Timeout is the hold per position (Alertmanager's peer_timeout);
	// DefaultPeerTimeout when zero. It must be longer than a replica
	// takes to deliver a message, or both send.
	Timeout time.Duration
	// Window bounds how far apart two replicas may create the same
	// message (created_at) and still be twins; DefaultPeerWindow when
	// zero, and never more than half the notification's repeat interval
	// (so a repeat is not mistaken for the previous one).
	Window time.Duration
}

// AutoPosition derives a replica's position from its ID (Peer.ID).
const AutoPosition = -1

// Defaults of Peer.
const (
	DefaultPeerTimeout = 15 * time.Second
	DefaultPeerWindow  = 10 * time.Minute
)

// OutcomePeer counts a notification a peer replica delivered: adopted,
// not sent again (Options.OnDelivery).
const OutcomePeer = "peer"

// Check reports a bad peer setting, naming the flag.
func (p *Peer) Check() error {
	switch {
	case p.Position == AutoPosition && p.ID == "":
		return fmt.Errorf("--cluster.peer-id is required when --cluster.peer-position is not given (the position is derived from the IDs of the live replicas)")
	case p.Position < AutoPosition:
		return fmt.Errorf("--cluster.peer-position: %d is negative; positions start at 0", p.Position)
	case len(p.ID) > 200 || strings.ContainsFunc(p.ID, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return fmt.Errorf("--cluster.peer-id: %q must be at most 200 printable characters", p.ID)
	case p.Position > 64:
		return fmt.Errorf("--cluster.peer-position: %d is more than 64 replicas", p.Position)
	case p.Timeout < 0:
		return fmt.Errorf("--cluster.peer-timeout: %s is negative", p.Timeout)
	case p.Window < 0:
		return fmt.Errorf("peer window %s is negative", p.Window)
	}
	return nil
}

func (p *Peer) timeout() time.Duration {
	if p.Timeout == 0 {
		return DefaultPeerTimeout
	}
	return p.Timeout
}

// hold is how long after its creation a replica at position pos waits
// before sending a notification.
func (p *Peer) hold(pos int64) time.Duration { return time.Duration(pos) * p.timeout() }

// window is how far apart in creation time a twin may be.
func (p *Peer) window(n *Notification) time.Duration {
	w := p.Window
	if w == 0 {
		w = DefaultPeerWindow
	}
	if r := n.RepeatInterval / 2; r > 0 && r < w {
		w = r
	}
	return w
}

// notificationID names a planned notification: from its content for a
// replica of an HA group, random otherwise.
func (m *Manager) notificationID(n *Notification) string {
	if m.peer == nil {
		return newID()
	}
	n.Replica, n.ReplicaPosition = m.replica, int(m.peerPos.Load())
	id := contentID(n)
	if m.outbox[id] != nil {
		// The same content at the same evaluation times twice (a thread
		// re-opened within one evaluation): keep the IDs apart.
		return newID()
	}
	return id
}

// contentID derives a notification's ID from what it says: receiver,
// group, thread, kind, and per alert its fingerprint, its change and the
// evaluation times behind it (the finding's time, when it fired or
// resolved). Two replicas that evaluated the same cron times give the
// same ID.
func contentID(n *Notification) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", n.Receiver, n.GroupKey, n.Thread, n.Kind)
	lines := make([]string, len(n.Alerts))
	for i, v := range n.Alerts {
		lines[i] = fmt.Sprintf("%s %s %d %d %d", v.Fingerprint, v.Change, v.At.Unix(), unixOf(v.FiredAt), unixOf(v.ResolvedAt))
	}
	sort.Strings(lines)
	fmt.Fprint(h, strings.Join(lines, "\n"))
	return hex.EncodeToString(h.Sum(nil))[:24]
}

func unixOf(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.Unix()
}

// held reports whether an entry is still within this replica's hold;
// the caller holds m.mu.
func (m *Manager) held(e *entry, now time.Time) bool {
	return m.peer != nil && e.n.FallbackFor == nil && now.Before(e.n.CreatedAt.Add(m.peer.hold(m.peerPos.Load())))
}

// peerTwin is a notification a peer delivered that says what one of ours
// says (ref set), or one a live peer is still delivering (inflight).
type peerTwin struct {
	id, ref  string
	inflight bool
}

// findTwin looks in the shared outbox for a delivered twin of n (see the
// package comment above), or for one a peer recorded whose hold ended
// before ours and that it is still delivering (peerSendsFirst), so a
// slow peer (a long queue, a loaded machine) is waited for, and a dead
// one's leftovers are not. rootRef is the receiver's reference of n's
// thread ("" for a first message or an unknown one). A read that fails
// is an error; the caller then sends.
func (m *Manager) findTwin(ctx context.Context, n *Notification, rootRef string) (*peerTwin, error) {
	w := m.peer.window(n)
	// No FINAL: a replica that planned the same content-derived ID may
	// have written a newer pending version over the peer's sent one; a
	// sent version of an ID is never undone.
	q := "SELECT id, ref, payload, status, created_at FROM " + m.tables.Outbox().Quoted() +
		" WHERE receiver = ? AND group_key = ? AND ((status = 'sent' AND ref != '') OR status = 'pending')" +
		" AND created_at >= ? AND created_at <= ?"
	args := []any{n.Receiver, n.GroupKey, dt(n.CreatedAt.Add(-w)), dt(n.CreatedAt.Add(w))}
	if n.Thread == "" {
		q += " AND thread = ''"
	} else {
		q += " AND (thread = ? OR thread IN (SELECT id FROM " + m.tables.Outbox().Quoted() + " WHERE status = 'sent' AND ref = ? AND ref != ''))"
		args = append(args, n.Thread, rootRef)
	}
	q += " ORDER BY version LIMIT 100"
	ctx, cancel := context.WithTimeout(ctx, stateTimeout)
	defer cancel()
	res, err := m.db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read the shared outbox for a peer's twin of %s: %w", n.ID, err)
	}
	want := news(n)
	now, pos := m.now(), m.peerPos.Load()
	due := n.CreatedAt.Add(m.peer.hold(pos))
	var inflight *peerTwin
	for _, r := range res.Rows {
		id, ref, sent := store.Str(r[0]), store.Str(r[1]), store.Str(r[3]) == statusSent
		if sent && id == n.ID {
			return &peerTwin{id: id, ref: ref}, nil
		}
		var o Notification
		if err := json.Unmarshal([]byte(store.Str(r[2])), &o); err != nil || !covers(news(&o), want, m.peer.timeout()) {
			continue
		}
		switch {
		case sent:
			return &peerTwin{id: id, ref: ref}, nil
		case o.Replica != "" && o.Replica != m.replica && m.peerSendsFirst(store.Time(r[4]), int64(o.ReplicaPosition), due, pos, now):
			inflight = &peerTwin{id: id, inflight: true}
		}
	}
	return inflight, nil
}

// peerSendsFirst reports whether a peer's pending twin, created at
// created by the replica at position peerPos, is the one to wait for:
// its hold ended before ours (due), or at the same time and the peer's
// position is lower, and it ended less than two peer timeouts ago (a
// peer that has not delivered by then is taken for dead). One order
// for all replicas, so two of them never wait for each other: whichever
// is due first sends, however far behind the other evaluates (a lagging
// position 0 waits for the twin position 1 is already sending).
func (m *Manager) peerSendsFirst(created time.Time, peerPos int64, due time.Time, pos int64, now time.Time) bool {
	peerDue := created.Add(m.peer.hold(peerPos))
	first := peerDue.Before(due) || (peerDue.Equal(due) && peerPos < pos)
	return first && now.Before(peerDue.Add(2*m.peer.timeout()))
}

// news is what a notification tells: each alert's fingerprint with its
// view (change, incident start), leaving out the firing members a message
// lists beside its news (unless it is nothing but those: a repeat).
func news(n *Notification) map[string]*View {
	out := map[string]*View{}
	for i, v := range n.Alerts {
		if v.Change != ChangeFiring {
			out[v.Fingerprint] = &n.Alerts[i]
		}
	}
	if len(out) == 0 {
		for i, v := range n.Alerts {
			out[v.Fingerprint] = &n.Alerts[i]
		}
	}
	return out
}

// covers reports whether a delivered message said everything of want,
// about the same incidents: each alert's incident started (ActiveAt)
// within tol of ours. Replicas evaluate one incident at the same cron
// times, or within a schedule interval of each other; an alert that
// resolved and fired again is a new incident, whose first message must
// not be taken for the previous one's.
func covers(said, want map[string]*View, tol time.Duration) bool {
	for fp, w := range want {
		s, ok := said[fp]
		if !ok || (s.Change == ChangeResolved) != (w.Change == ChangeResolved) {
			return false
		}
		if d := s.ActiveAt.Sub(w.ActiveAt); d > tol || d < -tol {
			return false
		}
	}
	return len(want) > 0
}

// peerDelivered checks, just before a send, whether a peer replica
// already delivered the entry's twin; if so the entry is adopted (sent,
// with the twin's reference): handled and adopted. A twin a live peer is
// still delivering defers the entry (handled, still pending, next
// attempt in a fifth of the peer timeout). Without a peer, or when the
// shared outbox cannot be read, it is not handled: send.
func (m *Manager) peerDelivered(ctx context.Context, e *entry, n *Notification) (handled, adopted bool) {
	if m.peer == nil || m.db == nil || n.FallbackFor != nil {
		return false, false
	}
	tw, err := m.findTwin(ctx, n, n.ThreadRef)
	if err != nil {
		m.log.Warn("peer check failed: sending", zap.String("receiver", n.Receiver), zap.String("id", n.ID), zap.Error(err))
		return false, false
	}
	if tw == nil {
		return false, false
	}
	m.mu.Lock()
	now := m.now()
	if tw.inflight {
		e.next = now.Add(m.peer.timeout() / 5)
		m.mu.Unlock()
		return true, false
	}
	e.status, e.ref, e.sentAt, e.lastErr, e.peerOf, e.dirty = statusSent, tw.ref, now, "", tw.id, true
	m.countDelivery(n.Receiver, OutcomePeer)
	m.publishOutbox()
	m.mu.Unlock()
	m.log.Info("notification delivered by a peer replica", zap.String("receiver", n.Receiver), zap.String("id", n.ID), zap.String("peer_id", tw.id))
	// Written outside the lock, as a delivery's outcome is.
	_ = m.persist(context.WithoutCancel(ctx))
	return true, true
}

// PeerPosition is the replica's position in its HA group (-1 without
// one), for the status log and metrics.
func (m *Manager) PeerPosition() int {
	if m.peer == nil {
		return -1
	}
	return int(m.peerPos.Load())
}

// peerBeat writes this replica's heartbeat and, with AutoPosition,
// derives its position from the live replicas' IDs (sorted: the first
// is 0). At most once per tick; a failed read keeps the position.
func (m *Manager) peerBeat(ctx context.Context, tick time.Duration) {
	if m.peer == nil || m.peer.ID == "" || m.db == nil {
		return
	}
	now := m.now()
	if now.Sub(m.lastBeat) < tick {
		return
	}
	m.lastBeat = now
	ctx, cancel := context.WithTimeout(ctx, stateTimeout)
	defer cancel()
	if err := m.db.Insert(ctx, m.tables.Peers(), peersTable.ColumnNames(), [][]any{{m.peer.ID, dt(now), m.ver.Next()}}); err != nil {
		m.log.Warn("peer heartbeat not stored", zap.Error(err))
		return
	}
	if m.peer.Position != AutoPosition {
		return
	}
	live := 3 * tick
	if live < 3*time.Second {
		live = 3 * time.Second
	}
	res, err := m.db.Query(ctx, "SELECT id FROM "+m.tables.Peers().Quoted()+" FINAL WHERE seen_at >= ? ORDER BY id", dt(now.Add(-live)))
	if err != nil {
		m.log.Warn("peers not read; position kept", zap.Int64("position", m.peerPos.Load()), zap.Error(err))
		return
	}
	for i, r := range res.Rows {
		if store.Str(r[0]) != m.peer.ID {
			continue
		}
		if old := m.peerPos.Swap(int64(i)); old != int64(i) {
			m.log.Info("peer position changed", zap.String("peer_id", m.peer.ID), zap.Int64("from", old), zap.Int("to", i), zap.Int("live_peers", len(res.Rows)))
		}
		return
	}
}
