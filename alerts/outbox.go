package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/configs"
)

// Outbox entry statuses.
const (
	statusPending = "pending"
	statusSent    = "sent"
	statusDead    = "dead"
)

// entry is one notification in the outbox: recorded before it is sent,
// updated after each attempt.
type entry struct {
	n        Notification
	seq      uint64
	status   string
	attempts int
	next     time.Time
	lastErr  string
	sentAt   time.Time
	ref      string
	// revived is when Retry or a reload sent a dead entry back to
	// pending (memory only): the give-up age counts from there.
	revived time.Time
	// dirty marks an entry whose latest state did not reach ClickHouse
	// (Manager.persist writes it).
	dirty bool
	// peerOf is the twin a peer replica delivered in its place (memory
	// only; peer.go).
	peerOf string
	// unwritten marks a new entry whose first write was not tried yet:
	// it is not delivered before (recorded before it is sent).
	unwritten bool
}

// DeliverStats counts what one Deliver call did.
type DeliverStats struct {
	Sent    int
	Retried int
	Dead    int
	// Fallback counts dead notifications handed to a fallback receiver.
	Fallback int
	// Peer counts notifications a peer replica had delivered (peer.go).
	Peer int
}

func (st *DeliverStats) add(o DeliverStats) {
	st.Sent += o.Sent
	st.Retried += o.Retried
	st.Dead += o.Dead
	st.Fallback += o.Fallback
	st.Peer += o.Peer
}

// Delivery outcomes, as counted by Options.OnDelivery.
const (
	OutcomeSent     = "sent"
	OutcomeRetry    = "retry"
	OutcomeDead     = "dead"
	OutcomeFallback = "fallback"
)

// Deliver sends the outbox entries that are due, each receiver in its own
// goroutine (a slow receiver delays only its own notifications), and
// returns when every receiver is done or ctx ends. Dead notifications
// handed to a fallback receiver are sent in the same call. Per receiver,
// entries go oldest first and in order, a thread's replies after its
// first message. A retryable failure is retried later with exponential
// backoff (or after the receiver's Retry-After, during which the receiver
// is held); a permanent failure, or one older than a day, is dead: it
// stays visible (Notifications, the gauges), goes to the fallback
// receiver when one is configured, and is sent again by Retry or by a
// reload that changes its receiver. Each due entry is tried at most once
// per call.
func (m *Manager) Deliver(ctx context.Context) (DeliverStats, error) {
	var total DeliverStats
	for round := 0; round < 2; round++ {
		m.mu.Lock()
		receivers := m.dueReceivers()
		m.mu.Unlock()
		var (
			wg sync.WaitGroup
			mu sync.Mutex
			st DeliverStats
		)
		for _, r := range receivers {
			wg.Add(1)
			go func(r string) {
				defer wg.Done()
				s := m.DeliverTo(ctx, r)
				mu.Lock()
				st.add(s)
				mu.Unlock()
			}(r)
		}
		wg.Wait()
		total.add(st)
		if st.Fallback == 0 {
			break
		}
	}
	return total, ctx.Err()
}

// dueReceivers lists the receivers with pending entries.
func (m *Manager) dueReceivers() []string {
	seen := map[string]bool{}
	for _, e := range m.outbox {
		if e.status == statusPending {
			seen[e.n.Receiver] = true
		}
	}
	return sortedKeys(seen)
}

// Dispatch delivers until ctx ends with one goroutine per receiver, woken
// after each Process (and every interval, for retries that come due): a
// hanging webhook delays its own notifications, never a Slack page. It
// returns once every goroutine did, which is as soon as their sends see
// ctx end.
func (m *Manager) Dispatch(ctx context.Context, interval time.Duration) {
	workers := map[string]chan struct{}{}
	var wg sync.WaitGroup
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m.peerBeat(ctx, interval)
		m.mu.Lock()
		receivers := m.dueReceivers()
		m.mu.Unlock()
		for _, r := range receivers {
			wake := workers[r]
			if wake == nil {
				wake = make(chan struct{}, 1)
				workers[r] = wake
				wg.Add(1)
				go func(r string, wake chan struct{}) {
					defer wg.Done()
					for {
						select {
						case <-ctx.Done():
							return
						case <-wake:
						}
						m.DeliverTo(ctx, r)
					}
				}(r, wake)
			}
			select {
			case wake <- struct{}{}:
			default:
			}
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		case <-m.kick:
		}
	}
}

// wake tells Dispatch that entries may be due.
func (m *Manager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// receiverSlot serialises deliveries to one receiver (Deliver and
// Dispatch may overlap): a buffered channel so that waiting for it
// respects ctx.
func (m *Manager) receiverSlot(r string) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.slots[r]
	if c == nil {
		c = make(chan struct{}, 1)
		m.slots[r] = c
	}
	return c
}

// DeliverTo sends the due entries of one receiver (see Deliver).
func (m *Manager) DeliverTo(ctx context.Context, receiver string) DeliverStats {
	var st DeliverStats
	slot := m.receiverSlot(receiver)
	select {
	case slot <- struct{}{}:
	case <-ctx.Done():
		return st
	}
	defer func() { <-slot }()
	tried := map[string]bool{}
	for ctx.Err() == nil {
		m.mu.Lock()
		e, n, notifier := m.nextDue(receiver, tried)
		m.mu.Unlock()
		if e == nil {
			return st
		}
		tried[e.n.ID] = true
		var (
			ref       string
			retryable bool
			err       error
		)
		if handled, adopted := m.peerDelivered(ctx, e, &n); handled {
			if adopted {
				st.Peer++
			}
			continue
		}
		if notifier == nil {
			err = fmt.Errorf("receiver %q is not in the config (removed by a reload?): add it back, or retry the notification once routes no longer need it", n.Receiver)
		} else {
			ref, retryable, err = notifier.Notify(ctx, &n)
		}
		held := m.record(ctx, e, ref, retryable, err, &st)
		// The attempt's outcome is written outside the lock.
		_ = m.persist(context.WithoutCancel(ctx))
		if held {
			return st
		}
	}
	return st
}

// record applies the outcome of one attempt to its entry (and creates the
// fallback copy of a dead one); true means the receiver is held for the
// rest of this call.
func (m *Manager) record(ctx context.Context, e *entry, ref string, retryable bool, err error, st *DeliverStats) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := &e.n
	now := m.now()
	e.attempts++
	changed := []*entry{e}
	held := true
	outcome := ""
	var limited *LimitedRetryError
	since := n.CreatedAt
	if e.revived.After(since) {
		since = e.revived
	}
	switch {
	case err == nil:
		e.status, e.ref, e.sentAt, e.lastErr = statusSent, ref, now, ""
		st.Sent++
		outcome, held = OutcomeSent, false
	case retryable && ctx.Err() != nil:
		// Cancelled mid-send: not an attempt the receiver refused.
		e.attempts--
		return true
	case retryable && now.Sub(since) < deliveryMaxAge && !(errors.As(err, &limited) && e.attempts >= limited.Attempts):
		e.lastErr = err.Error()
		wait := backoff(e.attempts)
		var ra *RetryAfterError
		if errors.As(err, &ra) && ra.After > 0 {
			wait = ra.After
			m.holdoff[n.Receiver] = now.Add(wait)
		}
		e.next = now.Add(wait)
		st.Retried++
		outcome = OutcomeRetry
		m.log.Warn("notification failed, will retry", zap.String("receiver", n.Receiver), zap.String("id", n.ID),
			zap.Int("attempts", e.attempts), zap.Duration("retry_in", wait), zap.Error(err))
	default:
		e.status, e.lastErr = statusDead, err.Error()
		if retryable {
			e.lastErr = fmt.Sprintf("gave up after %d attempts: %s", e.attempts, e.lastErr)
		}
		st.Dead++
		outcome = OutcomeDead
		fb := m.fallbackOf(n)
		m.log.Error("notification dead: not delivered", zap.String("receiver", n.Receiver), zap.String("id", n.ID),
			zap.Int("attempts", e.attempts), zap.String("fallback_receiver", fb), zap.String("error", e.lastErr))
		if fb != "" {
			f := m.newEntry(*n)
			f.n.ID, f.n.Receiver, f.n.Kind, f.n.Thread, f.n.ThreadRef, f.n.CreatedAt = newID(), fb, KindFiring, "", "", now
			f.n.FallbackFor = &Fallback{ID: n.ID, Receiver: n.Receiver, Error: e.lastErr}
			m.outbox[f.n.ID] = f
			changed = append(changed, f)
			st.Fallback++
			m.countDelivery(n.Receiver, OutcomeFallback)
			m.wake()
		}
	}
	m.countDelivery(n.Receiver, outcome)
	for _, c := range changed {
		c.dirty = true
	}
	m.publishOutbox()
	return held
}

func (m *Manager) countDelivery(receiver, outcome string) {
	if m.onDelivery != nil {
		m.onDelivery(receiver, outcome)
	}
}

// fallbackOf is the receiver a dead notification goes to: its receiver's
// fallback_receiver, else global.fallback_receiver; none for a copy that
// is itself a fallback, for one with nothing firing (a resolution the
// fallback never saw the page of), or for the receiver itself.
func (m *Manager) fallbackOf(n *Notification) string {
	if n.FallbackFor != nil {
		return ""
	}
	if firing, _ := n.Counts(); firing == 0 {
		return ""
	}
	fb := m.cfg.Global.FallbackReceiver
	for i := range m.cfg.Receivers {
		if r := &m.cfg.Receivers[i]; r.Name == n.Receiver && r.FallbackReceiver != "" {
			fb = r.FallbackReceiver
		}
	}
	if fb == n.Receiver || m.notifiers[fb] == nil {
		return ""
	}
	return fb
}

// nextDue picks the receiver's oldest pending entry if it may be sent
// now (per receiver strictly in order: a later entry waits for an earlier
// one), with a copy of its notification (thread reference filled in) and
// its notifier.
func (m *Manager) nextDue(receiver string, tried map[string]bool) (*entry, Notification, Notifier) {
	var e *entry
	for _, x := range m.outbox {
		if x.status == statusPending && x.n.Receiver == receiver && (e == nil || x.seq < e.seq) {
			e = x
		}
	}
	now := m.now()
	if e == nil || e.unwritten || tried[e.n.ID] || e.next.After(now) || m.holdoff[receiver].After(now) || m.held(e, now) {
		return nil, Notification{}, nil
	}
	n := e.n
	if n.Thread != "" {
		if root := m.outbox[n.Thread]; root != nil {
			if root.status == statusPending {
				return nil, Notification{}, nil
			}
			if root.status == statusSent {
				n.ThreadRef = root.ref
			}
		}
	}
	return e, n, m.notifiers[receiver]
}

func backoff(attempts int) time.Duration {
	d := backoffBase
	for i := 1; i < attempts && d < backoffMax; i++ {
		d *= 2
	}
	if d > backoffMax {
		d = backoffMax
	}
	return d
}

// Outbox returns the notifications not yet delivered (pending), oldest
// first, for the status page and tests.
func (m *Manager) Outbox() []Notification {
	m.mu.Lock()
	defer m.mu.Unlock()
	var es []*entry
	for _, e := range m.outbox {
		if e.status == statusPending {
			es = append(es, e)
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].seq < es[j].seq })
	out := make([]Notification, len(es))
	for i, e := range es {
		out[i] = e.n
	}
	return out
}

func encodePayload(n *Notification) (string, error) {
	b, err := json.Marshal(n)
	if err != nil {
		return "", fmt.Errorf("encode notification %s: %w", n.ID, err)
	}
	return string(b), nil
}

// Outbox entry states as the API shows them.
const (
	NotificationPending = statusPending
	NotificationSent    = statusSent
	NotificationDead    = statusDead
)

// NotificationStatus is one outbox entry as the API, the status page and
// `mlwatch notifications list` show it.
type NotificationStatus struct {
	ID       string `json:"id"`
	Receiver string `json:"receiver"`
	// State is pending, sent or dead.
	State     string    `json:"state"`
	Kind      string    `json:"kind"`
	GroupKey  string    `json:"group_key"`
	Thread    string    `json:"thread,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Attempts  int       `json:"attempts"`
	// LastError says why the last attempt failed, its cause and its fix.
	LastError     string     `json:"last_error,omitempty"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	SentAt        *time.Time `json:"sent_at,omitempty"`
	// Alerts are the notification's alerts, one line each.
	Alerts []string `json:"alerts"`
	// FallbackFor is the dead notification this one carries to a fallback
	// receiver; FallbackID the copy that carried this one (dead only).
	FallbackFor *Fallback `json:"fallback_for,omitempty"`
	FallbackID  string    `json:"fallback_id,omitempty"`
	// PeerOf is the notification a peer replica delivered in this one's
	// place (an HA group; sent only).
	PeerOf string `json:"peer_of,omitempty"`
}

// ErrNotificationNotFound is returned for an unknown notification ID.
var ErrNotificationNotFound = errors.New("no such notification")

// Notifications returns the outbox entries in one state ("" for all),
// newest first, without waiting for the manager's lock.
func (m *Manager) Notifications(state string) []NotificationStatus {
	all := *m.pubOutbox.Load()
	out := make([]NotificationStatus, 0, len(all))
	for _, s := range all {
		if state == "" || s.State == state {
			out = append(out, s)
		}
	}
	return out
}

// DeadByReceiver counts dead notifications per configured receiver (0 for
// those with none), for the mlwatch_notifications_dead gauge.
func (m *Manager) DeadByReceiver() map[string]int {
	receivers := *m.pubReceivers.Load()
	out := make(map[string]int, len(receivers))
	for _, r := range receivers {
		out[r] = 0
	}
	for _, s := range *m.pubOutbox.Load() {
		if s.State == statusDead {
			out[s.Receiver]++
		}
	}
	return out
}

// publishOutbox rebuilds what Notifications shows; call it with m.mu held
// after entries changed.
func (m *Manager) publishOutbox() {
	carried := map[string]string{}
	for _, e := range m.outbox {
		if f := e.n.FallbackFor; f != nil {
			carried[f.ID] = e.n.ID
		}
	}
	es := make([]*entry, 0, len(m.outbox))
	for _, e := range m.outbox {
		es = append(es, e)
	}
	sort.Slice(es, func(i, j int) bool { return es[i].seq > es[j].seq })
	out := make([]NotificationStatus, len(es))
	for i, e := range es {
		s := NotificationStatus{
			ID: e.n.ID, Receiver: e.n.Receiver, State: e.status, Kind: e.n.Kind, GroupKey: e.n.GroupKey, Thread: e.n.Thread,
			CreatedAt: e.n.CreatedAt, Attempts: e.attempts, LastError: e.lastErr, FallbackFor: e.n.FallbackFor, PeerOf: e.peerOf,
			Alerts: make([]string, 0, len(e.n.Alerts)),
		}
		if e.status == statusPending && !e.next.IsZero() {
			t := e.next
			s.NextAttemptAt = &t
		}
		if e.status == statusSent && !e.sentAt.IsZero() {
			t := e.sentAt
			s.SentAt = &t
		}
		if e.status == statusDead {
			s.FallbackID = carried[e.n.ID]
		}
		for _, v := range e.n.Alerts {
			line := v.Change + " " + v.Class + " " + v.Model
			if sl := SliceLabel(v.Slice); sl != "" {
				line += " " + sl
			}
			if v.Feature != "" {
				line += " feature " + v.Feature
			}
			s.Alerts = append(s.Alerts, line)
		}
		out[i] = s
	}
	m.pubOutbox.Store(&out)
}

// Retry sends a dead (or waiting) notification again as soon as its
// receiver is free: after the token or channel was fixed. A sent one is
// refused.
func (m *Manager) Retry(ctx context.Context, id string) (NotificationStatus, error) {
	st, err := m.retry(id)
	if err != nil {
		return NotificationStatus{}, err
	}
	if err := m.persist(context.WithoutCancel(ctx)); err != nil {
		m.log.Warn("alert states not stored", zap.Error(err))
	}
	return st, nil
}

// retry sends one entry back to pending under the lock and returns its
// status as of then (see Retry).
func (m *Manager) retry(id string) (NotificationStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.outbox[id]
	if e == nil {
		return NotificationStatus{}, fmt.Errorf("retry %s: %w", id, ErrNotificationNotFound)
	}
	if e.status == statusSent {
		return NotificationStatus{}, fmt.Errorf("retry %s: already delivered to %s", id, e.n.Receiver)
	}
	m.revive([]*entry{e})
	for _, s := range *m.pubOutbox.Load() {
		if s.ID == id {
			return s, nil
		}
	}
	return NotificationStatus{}, fmt.Errorf("retry %s: %w", id, ErrNotificationNotFound)
}

// revive sends entries back to pending, due now; call it with m.mu held,
// and Manager.persist after releasing it.
func (m *Manager) revive(es []*entry) {
	if len(es) == 0 {
		return
	}
	now := m.now()
	for _, e := range es {
		e.status, e.attempts, e.next, e.revived, e.dirty = statusPending, 0, time.Time{}, now, true
		delete(m.holdoff, e.n.Receiver)
	}
	m.publishOutbox()
	m.wake()
}

// reviveChanged retries the dead notifications of every receiver whose
// settings a reload changed (a fixed token or channel) or added back.
func (m *Manager) reviveChanged(old *configs.Config) {
	before := map[string]configs.Receiver{}
	for _, r := range old.Receivers {
		before[r.Name] = r
	}
	changed := map[string]bool{}
	for _, r := range m.cfg.Receivers {
		if b, ok := before[r.Name]; !ok || !reflect.DeepEqual(b, r) {
			changed[r.Name] = true
		}
	}
	var es []*entry
	for _, e := range m.outbox {
		if e.status == statusDead && changed[e.n.Receiver] {
			es = append(es, e)
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].seq < es[j].seq })
	if len(es) > 0 {
		m.log.Info("receiver changed: retrying its dead notifications", zap.Int("notifications", len(es)))
	}
	m.revive(es)
}
