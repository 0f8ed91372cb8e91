package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.uber.org/zap"
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
	// dirty marks an entry whose latest state did not reach ClickHouse.
	dirty bool
}

// DeliverStats counts what one Deliver call did.
type DeliverStats struct {
	Sent    int
	Retried int
	Dead    int
}

// Deliver sends the outbox entries that are due, oldest first and in
// order per receiver, waiting for a thread's first message before its
// replies. A retryable failure is retried later with exponential backoff
// (or after the receiver's Retry-After, during which the receiver is held);
// a permanent failure, or one older than a day, is dead. Call it from a
// loop; each due entry is tried at most once per call.
func (m *Manager) Deliver(ctx context.Context) (DeliverStats, error) {
	var st DeliverStats
	tried := map[string]bool{}
	blocked := map[string]bool{} // receivers with a failure or a wait in this call
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		m.mu.Lock()
		e, n, notifier := m.nextDue(tried, blocked)
		m.mu.Unlock()
		if e == nil {
			return st, nil
		}
		tried[e.n.ID] = true
		var (
			ref       string
			retryable bool
			err       error
		)
		if notifier == nil {
			err = fmt.Errorf("unknown receiver %q", n.Receiver)
		} else {
			ref, retryable, err = notifier.Notify(ctx, &n)
		}
		m.mu.Lock()
		now := m.now()
		e.attempts++
		switch {
		case err == nil:
			e.status, e.ref, e.sentAt, e.lastErr = statusSent, ref, now, ""
			st.Sent++
		case retryable && now.Sub(e.n.CreatedAt) < deliveryMaxAge && ctx.Err() == nil:
			e.lastErr = err.Error()
			wait := backoff(e.attempts)
			var ra *RetryAfterError
			if errors.As(err, &ra) && ra.After > 0 {
				wait = ra.After
				m.holdoff[n.Receiver] = now.Add(wait)
			}
			e.next = now.Add(wait)
			blocked[n.Receiver] = true
			st.Retried++
			m.log.Warn("notification failed, will retry", zap.String("receiver", n.Receiver), zap.String("id", n.ID),
				zap.Int("attempts", e.attempts), zap.Duration("retry_in", wait), zap.Error(err))
		case retryable && ctx.Err() != nil:
			// Cancelled mid-send: not an attempt the receiver refused.
			e.attempts--
			blocked[n.Receiver] = true
		default:
			e.status, e.lastErr = statusDead, err.Error()
			blocked[n.Receiver] = true
			st.Dead++
			m.log.Error("notification dropped", zap.String("receiver", n.Receiver), zap.String("id", n.ID),
				zap.Int("attempts", e.attempts), zap.Error(err))
		}
		e.dirty = true
		perr := m.persistEntries(context.WithoutCancel(ctx), []*entry{e})
		m.mu.Unlock()
		if perr != nil {
			m.log.Warn("outbox update not stored", zap.String("id", n.ID), zap.Error(perr))
		}
	}
}

// nextDue picks the oldest pending entry that may be sent now, with a copy
// of its notification (thread reference filled in) and its notifier.
func (m *Manager) nextDue(tried, blocked map[string]bool) (*entry, Notification, Notifier) {
	now := m.now()
	pending := make([]*entry, 0)
	for _, e := range m.outbox {
		if e.status == statusPending {
			pending = append(pending, e)
		}
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].seq < pending[j].seq })
	held := map[string]bool{}
	for _, e := range pending {
		r := e.n.Receiver
		if held[r] || blocked[r] {
			continue
		}
		// Per receiver, strictly in order: a later entry waits for an
		// earlier one.
		held[r] = true
		if tried[e.n.ID] || e.next.After(now) || m.holdoff[r].After(now) {
			continue
		}
		n := e.n
		if n.Thread != "" {
			if root := m.outbox[n.Thread]; root != nil {
				if root.status == statusPending {
					continue
				}
				if root.status == statusSent {
					n.ThreadRef = root.ref
				}
			}
		}
		return e, n, m.notifiers[r]
	}
	return nil, Notification{}, nil
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
