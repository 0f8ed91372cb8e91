package alerts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Notification kinds.
const (
	// KindFiring starts a group: a new message (a new Slack message).
	KindFiring = "firing"
	// KindUpdate adds to an open group: new members, repeats, partial
	// resolutions and caused alerts (a Slack thread reply).
	KindUpdate = "update"
	// KindResolved closes a group: every member resolved (Slack edits the
	// first message and replies in its thread).
	KindResolved = "resolved"
)

// Changes of an alert within a notification.
const (
	ChangeNew      = "new"
	ChangeFiring   = "firing"
	ChangeCaused   = "caused"
	ChangeResolved = "resolved"
)

// Notification is one message to one receiver about one group of alerts.
// It is stored as JSON in the outbox before it is sent, and it is the body
// the webhook receiver posts (see webhook.go).
type Notification struct {
	ID       string `json:"id"`
	Receiver string `json:"receiver"`
	// Kind is firing (a group's first message), update or resolved.
	Kind string `json:"kind"`
	// Status is the group's status after this message: firing or resolved.
	Status      string            `json:"status"`
	GroupKey    string            `json:"group_key"`
	GroupLabels map[string]string `json:"group_labels"`
	// Thread is the outbox ID of the group's first message ("" for a
	// first message); ThreadRef is that message's receiver reference
	// (Slack "CHANNEL/TS"), filled in at delivery.
	Thread    string `json:"thread,omitempty"`
	ThreadRef string `json:"thread_ref,omitempty"`
	// Alerts are the group's alerts in this message, worst first.
	Alerts []View `json:"alerts"`
	// RootAlerts, on a resolved notification, are the alerts of the
	// group's first message: what an edit of that message describes.
	RootAlerts  []View    `json:"root_alerts,omitempty"`
	ExternalURL string    `json:"external_url"`
	CreatedAt   time.Time `json:"created_at"`
	// RepeatInterval is the route's repeat interval (Alertmanager uses it
	// to keep alerts alive between re-sends).
	RepeatInterval time.Duration `json:"repeat_interval"`
	// FallbackFor is set on a copy sent to a fallback receiver: the
	// notification its own receiver refused, so the page reaches someone.
	FallbackFor *Fallback `json:"fallback_for,omitempty"`
	// Replica names the replica of an HA group that planned it (its
	// --cluster.peer-id, else an id of the process), so that its peers
	// can tell its records from their own (peer.go).
	Replica         string `json:"replica,omitempty"`
	ReplicaPosition int    `json:"replica_position,omitempty"`
}

// Fallback names a notification that went dead and why, on the copy that
// its fallback receiver gets.
type Fallback struct {
	ID       string `json:"id"`
	Receiver string `json:"receiver"`
	Error    string `json:"error"`
}

// Counts returns how many alerts of the notification fire and resolve.
func (n *Notification) Counts() (firing, resolved int) {
	for _, a := range n.Alerts {
		if a.Change == ChangeResolved {
			resolved++
		} else {
			firing++
		}
	}
	return firing, resolved
}

// Notifier delivers one notification to one receiver. It returns the
// receiver's reference to the message it created (Slack "CHANNEL/TS"; ""
// when the receiver has none), and on failure whether a retry may
// succeed: the caller, not the notifier, owns the retry policy.
type Notifier interface {
	Notify(ctx context.Context, n *Notification) (ref string, retryable bool, err error)
}

// NotifierFunc adapts a function to Notifier (handy for tests and eval).
type NotifierFunc func(ctx context.Context, n *Notification) (string, bool, error)

// Notify implements Notifier.
func (f NotifierFunc) Notify(ctx context.Context, n *Notification) (string, bool, error) {
	return f(ctx, n)
}

// RetryAfterError is a retryable failure that says how long to wait
// (HTTP 429 with Retry-After); the deliverer holds the receiver that long.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("rate limited, retry after %s: %v", e.After, e.Err)
}

// Unwrap returns the underlying error.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// LimitedRetryError is a failure that may be transient but is retried
// only Attempts times (an HTML page where Slack's JSON should be: a proxy
// in the way, or a wrong API URL); then the notification is dead.
type LimitedRetryError struct {
	Attempts int
	Err      error
}

func (e *LimitedRetryError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *LimitedRetryError) Unwrap() error { return e.Err }

// httpRetryable classifies an HTTP response status: 429 and 5xx retry.
func httpRetryable(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500
}

// retryAfter reads a Retry-After header (seconds or an HTTP date).
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// netRetryable reports transport failures worth retrying: timeouts,
// refused or reset connections.
func netRetryable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var ue *url.Error
	return errors.As(err, &ue)
}
