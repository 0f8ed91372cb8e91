package alerts

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
)

// Defaults of the delivery policy.
const (
	// resolvedRetention keeps a resolved alert in memory (and in Alerts)
	// this long after its resolution was notified.
	resolvedRetention = 15 * time.Minute
	// outboxRetention keeps delivered outbox entries in memory this long
	// (thread roots of open groups stay longer).
	outboxRetention = 7 * 24 * time.Hour
	backoffBase     = time.Second
	backoffMax      = 5 * time.Minute
	// deliveryMaxAge gives up on a notification its receiver never took.
	deliveryMaxAge = 24 * time.Hour
	// stateTimeout bounds each read or write of mlwatch's own tables: a
	// frozen ClickHouse must stall a detector run or a delivery for
	// seconds, not query_timeout (60 s) per write. Writes run outside
	// the manager's lock (persist); one that times out stays dirty and is
	// retried.
	stateTimeout = 5 * time.Second
)

// KindMonitor is the detector kind of the monitor's own findings
// (monitoring_failure: a detector's query failing run after run).
const KindMonitor = "monitor"

// Options configure a Manager.
type Options struct {
	Config *configs.Config
	// Store keeps alert state, silences and the outbox; nil keeps them in
	// memory only (mlwatch eval and backtest must not touch the daemon's
	// state).
	Store  store.Store
	Logger *zap.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Sleep waits (Slack's per-channel pacing); a context-aware real sleep
	// when nil. Tests pass one that advances their clock.
	Sleep func(ctx context.Context, d time.Duration) error
	// Notifiers replace the receivers of the same name (tests, eval).
	Notifiers map[string]Notifier
	// HTTPClient is used by the built-in notifiers; a client with each
	// receiver's timeout when nil.
	HTTPClient *http.Client
	// OneShot is for mlwatch eval: one evaluation cannot show duration, so
	// `for` and the group wait are not applied.
	OneShot bool
	// OnDelivery, when set, is told the outcome of every delivery attempt
	// (OutcomeSent, OutcomeRetry, OutcomeDead, OutcomeFallback), for the
	// mlwatch_notifications_total counter.
	OnDelivery func(receiver, outcome string)
	// Peer, when set, makes the manager one replica of an HA group that
	// shares its store with the others and notifies once (peer.go).
	Peer *Peer
}

// Manager is the alert pipeline: it observes detector runs, keeps each
// alert's lifecycle, and turns what changed into notifications in a
// durable outbox that Deliver drains. Safe for concurrent use.
type Manager struct {
	mu        sync.Mutex
	cfg       *configs.Config
	router    *Router
	detectors map[string]*configs.Detector
	removed   map[string]bool // detectors a reload removed or disabled (observe.go)
	models    map[string]*configs.Model
	notifiers map[string]Notifier
	overrides map[string]Notifier
	httpc     *http.Client
	pacer     *pacer

	db       store.Store
	tables   store.Tables
	silenceS *Silences
	log      *zap.Logger
	now      func() time.Time
	sleep    func(context.Context, time.Duration) error
	oneShot  bool
	ver      *store.Versions
	peer     *Peer
	peerPos  atomic.Int64 // position in the HA group (peer.go)
	replica  string       // this replica's name in the HA group
	lastBeat time.Time    // last peer heartbeat (Dispatch's goroutine only)

	alerts   map[string]*Alert
	dirty    map[string]bool
	silences []Silence
	outbox   map[string]*entry
	holdoff  map[string]time.Time // receiver → no delivery before

	onDelivery func(receiver, outcome string)
	kick       chan struct{}            // wakes Dispatch
	slots      map[string]chan struct{} // receiver → one delivery at a time

	pub          atomic.Pointer[published]
	pubOutbox    atomic.Pointer[[]NotificationStatus]
	pubReceivers atomic.Pointer[[]string]

	// writeMu serialises the writes of persist.
	writeMu     sync.Mutex
	stateWrites atomic.Int64
}

// published is what the read side shows (Alerts, Alert, Silences):
// rebuilt under the lock after every change and read without it, so the
// API never waits behind a ClickHouse write the manager makes while
// holding its lock (a frozen ClickHouse stalled /api/v1/alerts for 20 s).
type published struct {
	views    []View
	silences []Silence
}

// New builds a manager. Call Restore before the first Observe to pick up
// the state a previous process left in ClickHouse.
func New(opt Options) (*Manager, error) {
	if opt.Config == nil {
		return nil, fmt.Errorf("alerts: config is required")
	}
	if opt.Peer != nil {
		if err := opt.Peer.Check(); err != nil {
			return nil, fmt.Errorf("alerts: %w", err)
		}
	}
	m := &Manager{
		db:        opt.Store,
		log:       opt.Logger,
		now:       opt.Now,
		sleep:     opt.Sleep,
		oneShot:   opt.OneShot,
		overrides: opt.Notifiers,
		httpc:     opt.HTTPClient,
		ver:       &store.Versions{},
		peer:      opt.Peer,
		alerts:    map[string]*Alert{},
		dirty:     map[string]bool{},
		outbox:    map[string]*entry{},
		holdoff:   map[string]time.Time{},

		onDelivery: opt.OnDelivery,
		kick:       make(chan struct{}, 1),
		slots:      map[string]chan struct{}{},
	}
	m.pubOutbox.Store(&[]NotificationStatus{})
	if opt.Peer != nil {
		m.replica = opt.Peer.ID
		if m.replica == "" {
			m.replica = newID()
		}
		m.peerPos.Store(int64(opt.Peer.Position))
		if opt.Peer.Position == AutoPosition {
			// Until the first heartbeat ranks it: hold as the second.
			m.peerPos.Store(1)
		}
	}
	if m.log == nil {
		m.log = zap.NewNop()
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.sleep == nil {
		m.sleep = sleepCtx
	}
	m.pacer = &pacer{last: map[string]time.Time{}, now: m.now, sleep: m.sleep}
	if err := m.apply(opt.Config); err != nil {
		return nil, err
	}
	return m, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// apply installs a config: router, detector settings, notifiers.
func (m *Manager) apply(cfg *configs.Config) error {
	notifiers := map[string]Notifier{}
	for i := range cfg.Receivers {
		r := &cfg.Receivers[i]
		if n, ok := m.overrides[r.Name]; ok {
			notifiers[r.Name] = n
			continue
		}
		n, err := m.newNotifier(cfg, r)
		if err != nil {
			return err
		}
		notifiers[r.Name] = n
	}
	for name, n := range m.overrides {
		if _, ok := notifiers[name]; !ok {
			notifiers[name] = n
		}
	}
	dets := map[string]*configs.Detector{}
	for i := range cfg.Detectors {
		dets[cfg.Detectors[i].Name] = &cfg.Detectors[i]
	}
	models := map[string]*configs.Model{}
	for i := range cfg.Models {
		models[cfg.Models[i].Name] = &cfg.Models[i]
	}
	m.cfg = cfg
	m.router = NewRouter(cfg)
	m.detectors = dets
	m.models = models
	m.notifiers = notifiers
	names := sortedKeys(notifiers)
	m.pubReceivers.Store(&names)
	m.pacer.setGap(cfg.Slack.RateLimit.D())
	m.tables = store.Tables{Database: cfg.State.Database, Prefix: cfg.State.TablePrefix}
	if m.db != nil {
		m.silenceS = NewSilences(m.db, m.tables)
		m.silenceS.ver = m.ver
	}
	m.publish()
	return nil
}

func (m *Manager) newNotifier(cfg *configs.Config, r *configs.Receiver) (Notifier, error) {
	switch {
	case r.Slack != nil:
		return NewSlack(SlackOptions{Name: r.Name, Receiver: *r.Slack, Global: cfg.Slack, HTTPClient: m.httpc, pacer: m.pacer, ExternalURL: cfg.Global.ExternalURL}), nil
	case r.Webhook != nil:
		return NewWebhook(r.Name, *r.Webhook, m.httpc), nil
	case r.Alertmanager != nil:
		return NewAlertmanager(r.Name, *r.Alertmanager, m.httpc), nil
	}
	return nil, fmt.Errorf("alerts: receiver %s: no slack, webhook or alertmanager settings", r.Name)
}

// Reload swaps in a new config (routes, receivers, detector settings),
// keeping every alert's state; the alerts of removed detectors resolve. A config that cannot be applied leaves the
// old one running.
func (m *Manager) Reload(cfg *configs.Config) error {
	if err := m.reload(cfg); err != nil {
		return err
	}
	// Revived notifications and retired alerts are written outside the lock.
	if err := m.persist(context.Background()); err != nil {
		m.log.Warn("alert states not stored after reload", zap.Error(err))
	}
	return nil
}

func (m *Manager) reload(cfg *configs.Config) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.cfg
	if err := m.apply(cfg); err != nil {
		return err
	}
	m.reviveChanged(old)
	m.noteRemoved(old)
	m.retireRemoved()
	return nil
}

// UncheckedHold bounds how long an alert whose slice goes unchecked (too
// few samples) keeps its state without being evaluated; past it, it
// resolves as if clear.
const UncheckedHold = 6 * time.Hour

// Observe records one successful detector run at `at`: each finding makes
// or keeps its alert active; active alerts of that run (by name) missing
// from the findings are clear at `at`, unless their slice and feature are
// among the unchecked ones (then they hold, for up to UncheckedHold since
// their last evaluation). The run's success also clears the detector's
// monitoring_failure (see ObserveFailure). A failed run must not be
// observed, so a broken query never resolves anything. The changed state
// is written to ClickHouse before Observe returns (when a store is
// configured), batched with the writes of concurrent runs.
func (m *Manager) Observe(ctx context.Context, name string, at time.Time, findings []detectors.Finding, unchecked ...detectors.Unchecked) error {
	m.observe(name, at, findings, unchecked)
	m.observe(failureSource(name), at, nil, nil)
	return m.persist(ctx)
}

// ObserveFailure records a failed run of detector name at `at` that
// reports f (its monitoring_failure). The failure is a source of its own,
// so it never resolves what the detector had found; the detector's next
// successful Observe resolves it.
func (m *Manager) ObserveFailure(ctx context.Context, name string, at time.Time, f detectors.Finding) error {
	m.observe(failureSource(name), at, []detectors.Finding{f}, nil)
	return m.persist(ctx)
}

// Process runs the pipeline at now over the current alerts: silences,
// root-cause inhibition, routing, the settle wait, grouping and repeats.
// What needs saying goes into the outbox, held back from delivery until
// its write to ClickHouse was tried; Deliver sends it. It returns the
// notifications it queued.
func (m *Manager) Process(ctx context.Context, now time.Time) ([]Notification, error) {
	all := m.process(ctx, now)
	// The outbox entries and alert states the pass changed (and delivery
	// results whose write failed earlier) are written outside the lock,
	// batched with the writes of concurrent detector runs.
	if err := m.persist(ctx); err != nil {
		return all, err
	}
	return all, nil
}

// process is Process's pass under the lock: mute, then plan (twice),
// queue the notifications in the outbox and apply their effects. It
// writes nothing; Process persists afterwards.
func (m *Manager) process(ctx context.Context, now time.Time) []Notification {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refreshSilences(ctx)
	mutes := m.mute(now)
	// Two passes: alerts caused by an infra alert first notified in the
	// first pass go into its thread in the second.
	var all []Notification
	for pass := 0; pass < 2; pass++ {
		notes, effects := plan(m.planState(mutes), now)
		if len(notes) == 0 {
			break
		}
		for i := range notes {
			e := m.newEntry(notes[i])
			m.outbox[e.n.ID] = e
		}
		for _, ef := range effects {
			m.applyEffect(ef)
		}
		all = append(all, notes...)
	}
	m.prune(now)
	m.publish()
	m.publishOutbox()
	if len(all) > 0 {
		m.wake()
	}
	return all
}

// newEntry makes a pending outbox entry for n, to be written by the next
// persist before it is delivered (ClickHouse, which holds the outbox,
// may be the very thing that is down: monitoring_failure is then the
// page; a failed write releases it to be delivered from memory, and it is
// stored once ClickHouse is back. A crash before then can repeat a
// message; it cannot lose one that a restart would not raise again).
func (m *Manager) newEntry(n Notification) *entry {
	return &entry{n: n, seq: m.ver.Next(), status: statusPending, dirty: true, unwritten: m.db != nil}
}

// refreshSilences reloads silences from ClickHouse so that silences added
// by the CLI take effect; on failure the last known set stays.
func (m *Manager) refreshSilences(ctx context.Context) {
	if m.silenceS == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, stateTimeout)
	defer cancel()
	s, err := m.silenceS.List(ctx)
	if err != nil {
		m.log.Warn("silences not refreshed", zap.Error(err))
		return
	}
	m.silences = s
}

// applyEffect records what one notification changed in its alert.
func (m *Manager) applyEffect(ef effect) {
	a := m.alerts[ef.fp]
	if a == nil {
		return
	}
	if a.Sent == nil {
		a.Sent = map[string]*Sent{}
	}
	s := a.Sent[ef.receiver]
	switch ef.change {
	case ChangeNew, ChangeCaused, ChangeFiring:
		if s == nil || s.Resolved || s.Root != ef.root {
			a.Sent[ef.receiver] = &Sent{Group: ef.group, Root: ef.root, At: ef.at}
		} else if ef.at.After(s.At) {
			s.At = ef.at
		}
	case ChangeResolved:
		if s != nil {
			s.Resolved = true
		}
	}
	m.dirty[ef.fp] = true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// prune forgets, in memory only, alerts that went inactive and resolved
// alerts whose resolution was notified a while ago, and old outbox entries.
func (m *Manager) prune(now time.Time) {
	open := m.openIncidents()
	for fp, a := range m.alerts {
		if m.dirty[fp] || open[fp] {
			continue
		}
		switch a.State {
		case StateInactive:
			delete(m.alerts, fp)
		case StateResolved:
			done := true
			for _, s := range a.Sent {
				if !s.Resolved {
					done = false
				}
			}
			if done && now.Sub(a.ResolvedAt) > resolvedRetention {
				delete(m.alerts, fp)
			}
		}
	}
	roots := m.openRoots()
	for id, e := range m.outbox {
		if e.status != statusPending && !e.dirty && now.Sub(e.n.CreatedAt) > outboxRetention && !roots[id] {
			delete(m.outbox, id)
		}
	}
}

func (m *Manager) openRoots() map[string]bool {
	roots := map[string]bool{}
	for _, a := range m.alerts {
		for _, s := range a.Sent {
			if !s.Resolved {
				roots[s.Root] = true
			}
		}
	}
	return roots
}

// Alerts returns every current alert (pending, firing, and recently
// resolved), firing first and worst first, with the receivers its
// notifications go to.
func (m *Manager) Alerts() []View {
	return append([]View(nil), m.pub.Load().views...)
}

// Alert returns one current alert by fingerprint (the alert page).
func (m *Manager) Alert(fingerprint string) (View, bool) {
	for _, v := range m.pub.Load().views {
		if v.Fingerprint == fingerprint {
			return v, true
		}
		for _, f := range v.Folded {
			if f.Fingerprint == fingerprint {
				return f, true
			}
		}
	}
	return View{}, false
}

// publish rebuilds what the read side shows; call it with m.mu held (or
// before the manager is shared) after alerts or silences changed.
func (m *Manager) publish() {
	var alerts []*Alert
	for _, a := range m.alerts {
		if a.State != StateInactive {
			alerts = append(alerts, a)
		}
	}
	sort.Slice(alerts, func(i, j int) bool {
		si, sj := stateRank[alerts[i].State], stateRank[alerts[j].State]
		if si != sj {
			return si < sj
		}
		if alerts[i].Finding.Detector != alerts[j].Finding.Detector {
			return alerts[i].Finding.Detector < alerts[j].Finding.Detector
		}
		if worse(&alerts[i].Finding, &alerts[j].Finding, alerts[i].Severity, alerts[j].Severity) {
			return true
		}
		if worse(&alerts[j].Finding, &alerts[i].Finding, alerts[j].Severity, alerts[i].Severity) {
			return false
		}
		return alerts[i].Fingerprint < alerts[j].Fingerprint
	})
	m.pub.Store(&published{views: m.views(alerts), silences: append([]Silence(nil), m.silences...)})
}

var stateRank = map[State]int{StateFiring: 0, StatePending: 1, StateResolved: 2}

// receiversOf is where an alert's notifications go: its cause's receivers
// when it has one, else its routes'.
func (m *Manager) receiversOf(a *Alert) []string {
	labels := a.Labels
	if a.CausedBy != "" {
		if c := m.alerts[a.CausedBy]; c != nil {
			labels = c.Labels
		}
	}
	var out []string
	for _, d := range m.router.Route(labels) {
		out = append(out, d.Receiver)
	}
	return out
}

// Silences returns the silences as last read (or written) by the manager.
func (m *Manager) Silences() []Silence {
	return append([]Silence(nil), m.pub.Load().silences...)
}

// AddSilence stores a silence and applies it from the next Process.
func (m *Manager) AddSilence(ctx context.Context, s Silence) (Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if s.StartsAt.IsZero() {
		s.StartsAt = now
	}
	if m.silenceS != nil {
		added, err := m.silenceS.Add(ctx, s, now)
		if err != nil {
			return Silence{}, err
		}
		s = added
	} else {
		if err := s.Validate(); err != nil {
			return Silence{}, err
		}
		if err := checkCount(m.silences, now); err != nil {
			return Silence{}, err
		}
		if s.ID == "" {
			s.ID = newID()
		}
		s.UpdatedAt = now
	}
	m.silences = append(m.silences, s)
	m.publish()
	return s, nil
}

// ExpireSilence ends a silence now; notification of what it muted resumes
// at the next Process.
func (m *Manager) ExpireSilence(ctx context.Context, id string) (Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if m.silenceS != nil {
		s, err := m.silenceS.Expire(ctx, id, now)
		if err != nil {
			return Silence{}, err
		}
		m.refreshSilences(ctx)
		m.publish()
		return s, nil
	}
	for i := range m.silences {
		if m.silences[i].ID == id {
			if m.silences[i].EndsAt.After(now) {
				m.silences[i].EndsAt = now
			}
			m.publish()
			return m.silences[i], nil
		}
	}
	return Silence{}, fmt.Errorf("expire %s: %w", id, ErrSilenceNotFound)
}
