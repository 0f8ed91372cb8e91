package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
)

// alertRecord is an alert as stored in the data column of the alerts
// table: everything needed to rebuild it after a restart.
type alertRecord struct {
	Fingerprint     string            `json:"fingerprint"`
	Source          string            `json:"source"`
	Labels          map[string]string `json:"labels"`
	Finding         findingRecord     `json:"finding"`
	Owner           detectors.Owner   `json:"owner"`
	Severity        configs.Severity  `json:"severity"`
	RunbookURL      string            `json:"runbook_url"`
	State           string            `json:"state"`
	ActiveAt        time.Time         `json:"active_at"`
	FiredAt         time.Time         `json:"fired_at"`
	ResolvedAt      time.Time         `json:"resolved_at"`
	LastEvalAt      time.Time         `json:"last_eval_at"`
	KeepFiringSince time.Time         `json:"keep_firing_since"`
	CausedBy        string            `json:"caused_by"`
	SilencedBy      []string          `json:"silenced_by"`
	Sent            map[string]*Sent  `json:"sent"`
}

// findingRecord is a detectors.Finding whose NaNs survive JSON: its float
// fields are shadowed by Numbers (the outer field wins in encoding/json);
// fields the detectors add later are carried by the embedded Finding. The
// JSON keys are the Finding's, flat, as before Finding embedded
// detectors.Evaluation: rows stored by earlier versions restore (they
// lack baseline_low, baseline_high and firing; see newAlertRecord).
type findingRecord struct {
	detectors.Finding
	Value          Number `json:"value"`
	Baseline       Number `json:"baseline"`
	BaselineLow    Number `json:"baseline_low"`
	BaselineHigh   Number `json:"baseline_high"`
	PValue         Number `json:"p_value"`
	Effect         Number `json:"effect"`
	ShadowValue    Number `json:"shadow_value"`
	ShadowBaseline Number `json:"shadow_baseline"`
}

func toRecord(f detectors.Finding) findingRecord {
	return findingRecord{
		Finding: scrubNaN(f),
		Value:   Number(f.Value), Baseline: Number(f.Baseline), BaselineLow: Number(f.BaselineLow), BaselineHigh: Number(f.BaselineHigh),
		PValue: Number(f.PValue), Effect: Number(f.Effect),
		ShadowValue: Number(f.ShadowValue), ShadowBaseline: Number(f.ShadowBaseline),
	}
}

func (r findingRecord) finding() detectors.Finding {
	f := r.Finding
	f.Value, f.Baseline, f.PValue, f.Effect = float64(r.Value), float64(r.Baseline), float64(r.PValue), float64(r.Effect)
	f.BaselineLow, f.BaselineHigh = float64(r.BaselineLow), float64(r.BaselineHigh)
	f.ShadowValue, f.ShadowBaseline = float64(r.ShadowValue), float64(r.ShadowBaseline)
	return f
}

// newAlertRecord is the record a stored row decodes into: what rows of
// earlier versions lack keeps its meaning (a finding was firing, with no
// band).
func newAlertRecord() alertRecord {
	nan := Number(math.NaN())
	var rec alertRecord
	rec.Finding.BaselineLow, rec.Finding.BaselineHigh, rec.Finding.Firing = nan, nan, true
	return rec
}

// scrubNaN returns a copy of f whose float64 maps (second figures) hold no
// NaN or infinity, which JSON cannot carry; those entries are dropped.
func scrubNaN(f detectors.Finding) detectors.Finding {
	v := reflect.ValueOf(&f).Elem()
	for i := 0; i < v.NumField(); i++ {
		fv := v.Field(i)
		if fv.Kind() != reflect.Map || fv.Type().Elem().Kind() != reflect.Float64 || fv.IsNil() || !fv.CanSet() {
			continue
		}
		clean := reflect.MakeMap(fv.Type())
		for _, k := range fv.MapKeys() {
			x := fv.MapIndex(k).Float()
			if !math.IsNaN(x) && !math.IsInf(x, 0) {
				clean.SetMapIndex(k, fv.MapIndex(k))
			}
		}
		fv.Set(clean)
	}
	return f
}

// dt makes a time storable as DateTime: the zero time is the epoch.
func dt(t time.Time) time.Time {
	if t.IsZero() || t.Unix() < 0 {
		return time.Unix(0, 0).UTC()
	}
	return t.UTC()
}

// fin makes a float storable by both drivers (NaN stays NaN).
func fin(f float64) float64 {
	if math.IsInf(f, 0) {
		return math.NaN()
	}
	return f
}

// persistAlerts writes every dirty alert as a new version; on failure they
// stay dirty and are written by the next call. The caller holds m.mu
// (Restore, before the manager is shared).
func (m *Manager) persistAlerts(ctx context.Context) error {
	if len(m.dirty) == 0 {
		return nil
	}
	if m.db == nil {
		m.dirty = map[string]bool{}
		return nil
	}
	fps, rows, err := m.takeDirty()
	if err != nil {
		return err
	}
	if err := m.insertStates(ctx, rows); err != nil {
		m.redirty(fps)
		return err
	}
	return nil
}

// persist writes what changed under m.mu without holding it during the
// writes: the dirty outbox entries first, then the dirty alert states, so
// an alert's Sent record never reaches ClickHouse ahead of the
// notification it records (Restore replays the outbox onto the alerts for
// the opposite gap). Concurrent callers are batched (group commit): while
// one write is under way, what other detector runs, Process passes and
// deliveries change piles up, and the next caller writes all of it. Every
// caller returns once what was dirty when it called has been written, or
// with the error of the alert-state write that failed (its alerts stay
// dirty for the next write). An outbox write that fails is logged and its
// entries stay dirty for the next call; they are delivered from memory
// meanwhile (ClickHouse, which holds the outbox, may be what is down).
// 500 detectors firing at once made 500 INSERTs, each holding the
// manager's lock while it waited for a pooled connection; now they make a
// handful, and no write holds the lock.
func (m *Manager) persist(ctx context.Context) error {
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	m.mu.Lock()
	if m.db == nil {
		m.dirty = map[string]bool{}
		for _, e := range m.outbox {
			e.dirty, e.unwritten = false, false
		}
		m.mu.Unlock()
		return nil
	}
	es, erows, eerr := m.takeEntries()
	var (
		fps  []string
		rows [][]any
		err  error
	)
	if len(m.dirty) > 0 {
		fps, rows, err = m.takeDirty()
	}
	m.mu.Unlock()
	if eerr == nil && len(erows) > 0 {
		eerr = m.insertEntries(ctx, erows)
	}
	m.settleEntries(es, eerr)
	if err != nil || len(fps) == 0 {
		return err
	}
	m.stateWrites.Add(1)
	if err := m.insertStates(ctx, rows); err != nil {
		m.mu.Lock()
		m.redirty(fps)
		m.mu.Unlock()
		return err
	}
	return nil
}

// StateWrites is how many INSERTs of alert states syncStates has made
// (for the batching test and its figures).
func (m *Manager) StateWrites() int64 { return m.stateWrites.Load() }

// redirty marks alerts whose write failed as dirty again.
func (m *Manager) redirty(fps []string) {
	for _, fp := range fps {
		if m.alerts[fp] != nil {
			m.dirty[fp] = true
		}
	}
}

// takeDirty encodes every dirty alert as a row (each with a new version,
// so rows written later win whatever order INSERTs land in) and clears
// the dirty set. The caller holds m.mu.
func (m *Manager) takeDirty() ([]string, [][]any, error) {
	now := m.now()
	fps := sortedKeys(m.dirty)
	rows := make([][]any, 0, len(fps))
	for _, fp := range fps {
		a := m.alerts[fp]
		if a == nil {
			continue
		}
		rec := alertRecord{
			Fingerprint: a.Fingerprint, Source: a.source, Labels: a.Labels, Finding: toRecord(a.Finding),
			Owner: a.Owner, Severity: a.Severity, RunbookURL: a.RunbookURL, State: a.State.String(),
			ActiveAt: a.ActiveAt, FiredAt: a.FiredAt, ResolvedAt: a.ResolvedAt, LastEvalAt: a.LastEvalAt,
			KeepFiringSince: a.KeepFiringSince, CausedBy: a.CausedBy, SilencedBy: a.SilencedBy, Sent: a.Sent,
		}
		data, err := json.Marshal(rec)
		if err != nil {
			return nil, nil, fmt.Errorf("alert %s: encode: %w", fp, err)
		}
		labels, _ := json.Marshal(a.Labels)
		f := a.Finding
		rows = append(rows, []any{
			fp, m.ver.Next(), dt(now), a.State.String(), a.source, f.Detector, f.Model, string(f.Class), string(a.Owner), string(a.Severity),
			string(labels), dt(a.ActiveAt), dt(a.FiredAt), dt(a.ResolvedAt), dt(a.LastEvalAt),
			fin(f.Value), fin(f.Baseline), fin(f.PValue), f.Summary, a.CausedBy, strings.Join(a.SilencedBy, ","), string(data),
		})
	}
	m.dirty = map[string]bool{}
	return fps, rows, nil
}

// insertStates writes alert-state rows within stateTimeout.
func (m *Manager) insertStates(ctx context.Context, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, stateTimeout)
	defer cancel()
	if err := m.db.Insert(ctx, m.tables.Alerts(), alertColumns, rows); err != nil {
		return fmt.Errorf("store alert states: %w", err)
	}
	return nil
}

// takeEntries encodes every dirty outbox entry as a row (a new version)
// and clears its dirty mark. The caller holds m.mu.
func (m *Manager) takeEntries() ([]*entry, [][]any, error) {
	var es []*entry
	for _, e := range m.outbox {
		if e.dirty {
			es = append(es, e)
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].seq < es[j].seq })
	rows := make([][]any, 0, len(es))
	for _, e := range es {
		payload, err := encodePayload(&e.n)
		if err != nil {
			return es, nil, err
		}
		rows = append(rows, []any{
			e.n.ID, m.ver.Next(), e.seq, dt(e.n.CreatedAt), e.n.Receiver, e.n.GroupKey, e.n.Kind, e.n.Thread, payload,
			e.status, uint32(e.attempts), dt(e.next), e.lastErr, dt(e.sentAt), e.ref,
		})
	}
	for _, e := range es {
		e.dirty = false
	}
	return es, rows, nil
}

// insertEntries writes outbox rows within stateTimeout.
func (m *Manager) insertEntries(ctx context.Context, rows [][]any) error {
	ctx, cancel := context.WithTimeout(ctx, stateTimeout)
	defer cancel()
	if err := m.db.Insert(ctx, m.tables.Outbox(), outboxColumns, rows); err != nil {
		return fmt.Errorf("store outbox: %w", err)
	}
	return nil
}

// settleEntries records the outcome of writing es: on failure they are
// dirty again (written by the next persist). Either way new entries may
// now be delivered, from memory if their write failed.
func (m *Manager) settleEntries(es []*entry, err error) {
	if len(es) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	released := false
	for _, e := range es {
		if err != nil {
			e.dirty = true
		}
		if e.unwritten {
			e.unwritten, released = false, true
		}
	}
	if err != nil {
		m.log.Warn("outbox not stored; delivering from memory until it can be", zap.Int("entries", len(es)), zap.Error(err))
	}
	if released {
		m.wake()
	}
}

// Restore creates mlwatch's alert tables if missing and loads what a
// previous process left: alert states, silences, and the outbox. Sent
// records are replayed from the outbox too, so a crash between recording a
// notification and saving the alert does not send it twice; pending
// entries are delivered by the next Deliver. Without a store it does
// nothing. Its steps: createTables, loadAlerts, loadOutbox, the silences,
// replay, then retire, mute and store what a lost write may lack.
func (m *Manager) Restore(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.db == nil {
		return nil
	}
	if err := m.createTables(ctx); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	now := m.now()
	alerts, roots, err := m.loadAlerts(ctx)
	if err != nil {
		return fmt.Errorf("restore alerts: %w", err)
	}
	outbox, err := m.loadOutbox(ctx, now, roots)
	if err != nil {
		return fmt.Errorf("restore outbox: %w", err)
	}
	var silences []Silence
	if m.silenceS != nil {
		if silences, err = m.silenceS.List(ctx); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	m.alerts, m.outbox, m.silences = alerts, outbox, silences
	m.dirty = map[string]bool{}
	m.replay()
	// Alerts of detectors removed while the daemon was down resolve.
	m.retireRemoved()
	// Derived state a lost write may lack: silences and root causes.
	m.mute(now)
	m.publish()
	m.publishOutbox()
	if err := m.persistAlerts(ctx); err != nil {
		m.log.Warn("replayed alert states not stored", zap.Error(err))
	}
	pending, dead := 0, 0
	for _, e := range outbox {
		switch e.status {
		case statusPending:
			pending++
		case statusDead:
			dead++
		}
	}
	m.log.Info("alert state restored", zap.Int("alerts", len(alerts)), zap.Int("outbox_pending", pending), zap.Int("outbox_dead", dead), zap.Int("silences", len(silences)))
	return nil
}

// createTables creates the alerts, silences and outbox tables if missing.
func (m *Manager) createTables(ctx context.Context) error {
	return store.Apply(ctx, m.db, m.tables.Database, TableDefs(m.tables))
}

// loadAlerts reads the latest state of every alert that is not inactive,
// and the thread roots their Sent records name.
func (m *Manager) loadAlerts(ctx context.Context) (map[string]*Alert, []string, error) {
	res, err := m.db.Query(ctx, "SELECT version, data FROM "+m.tables.Alerts().Quoted()+" FINAL")
	if err != nil {
		return nil, nil, err
	}
	alerts := map[string]*Alert{}
	roots := []string{}
	for _, r := range res.Rows {
		m.ver.Seen(uint64(store.Int(r[0])))
		rec := newAlertRecord()
		if err := json.Unmarshal([]byte(store.Str(r[1])), &rec); err != nil {
			m.log.Warn("alert state unreadable, skipped", zap.Error(err))
			continue
		}
		a := &Alert{
			Fingerprint: rec.Fingerprint, Labels: rec.Labels, Finding: rec.Finding.finding(),
			Owner: rec.Owner, Severity: rec.Severity, RunbookURL: rec.RunbookURL, State: parseState(rec.State),
			ActiveAt: rec.ActiveAt, FiredAt: rec.FiredAt, ResolvedAt: rec.ResolvedAt, LastEvalAt: rec.LastEvalAt,
			KeepFiringSince: rec.KeepFiringSince, CausedBy: rec.CausedBy, SilencedBy: rec.SilencedBy, Sent: rec.Sent,
		}
		if a.Sent == nil {
			a.Sent = map[string]*Sent{}
		}
		if a.State == StateInactive {
			continue
		}
		alerts[a.Fingerprint] = a
		a.source = rec.Source
		for _, s := range a.Sent {
			roots = append(roots, s.Root)
		}
	}
	return alerts, roots, nil
}

// loadOutbox reads the outbox entries of the retention period and the
// (older) thread roots of open groups.
func (m *Manager) loadOutbox(ctx context.Context, now time.Time, roots []string) (map[string]*entry, error) {
	// created_at and id never change between versions of an entry, so
	// filtering on them before FINAL's merge is safe.
	q := "SELECT id, version, seq, status, attempts, next_attempt_at, last_error, sent_at, ref, payload FROM " +
		m.tables.Outbox().Quoted() + " FINAL WHERE created_at >= ?"
	args := []any{dt(now.Add(-outboxRetention))}
	if len(roots) > 0 {
		q += " OR has(?, id)"
		args = append(args, roots)
	}
	res, err := m.db.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	outbox := map[string]*entry{}
	for _, r := range res.Rows {
		m.ver.Seen(uint64(store.Int(r[1])))
		var n Notification
		if err := json.Unmarshal([]byte(store.Str(r[9])), &n); err != nil {
			m.log.Warn("outbox entry unreadable, skipped", zap.String("id", store.Str(r[0])), zap.Error(err))
			continue
		}
		e := &entry{
			n: n, seq: uint64(store.Int(r[2])), status: store.Str(r[3]), attempts: int(store.Int(r[4])),
			next: undt(store.Time(r[5])), lastErr: store.Str(r[6]), sentAt: undt(store.Time(r[7])), ref: store.Str(r[8]),
		}
		m.ver.Seen(e.seq)
		outbox[n.ID] = e
	}
	return outbox, nil
}

// replay applies the outbox, oldest first, onto the alerts' Sent records
// (idempotent): a notification recorded but not yet saved on its alerts
// is not sent again.
func (m *Manager) replay() {
	es := make([]*entry, 0, len(m.outbox))
	for _, e := range m.outbox {
		es = append(es, e)
	}
	sort.Slice(es, func(i, j int) bool { return es[i].seq < es[j].seq })
	for _, e := range es {
		root := e.n.Thread
		if root == "" {
			root = e.n.ID
		}
		for _, v := range e.n.Alerts {
			a := m.alerts[v.Fingerprint]
			if a == nil || e.n.CreatedAt.Before(a.ActiveAt) {
				continue
			}
			if s := a.Sent[e.n.Receiver]; s != nil && s.Root == root && !s.At.Before(e.n.CreatedAt) && (s.Resolved || v.Change != ChangeResolved) {
				continue
			}
			m.applyEffect(effect{fp: v.Fingerprint, receiver: e.n.Receiver, change: v.Change, group: e.n.GroupKey, root: root, at: e.n.CreatedAt})
		}
	}
}

func undt(t time.Time) time.Time {
	if t.Unix() <= 0 {
		return time.Time{}
	}
	return t
}
