package alerts

import (
	"sort"
	"strings"
	"time"
)

// The plan step: grouping and timing. plan reads a snapshot of the
// alerts' state and decides which notifications are due at now and what
// each changes in its alerts' Sent records; it changes nothing itself
// (Process stores the notifications in the outbox and applies the
// effects). It is to this pipeline what Alertmanager's dispatch/ is to
// its own: group_by, group_wait, repeat_interval and threads.

// planState is the snapshot plan reads: the alerts (read only), the
// routing tree and the timing settings in force.
type planState struct {
	alerts map[string]*Alert
	router *Router
	// wait is the group wait (zero in one-shot mode).
	wait           time.Duration
	groupBy        []string
	externalURL    string
	repeatInterval time.Duration
	// first returns the first notification of a thread (its root), nil
	// when it is not in the outbox.
	first func(id string) *Notification
	// newID names a new notification once its content is known.
	newID func(n *Notification) string
	// mutes are the mute step's stages (mute.go), called for each alert.
	mutes mutes
}

// planState is the snapshot of the manager's state plan reads, with the
// mute step's stages. The caller holds m.mu while plan runs.
func (m *Manager) planState(mu mutes) planState {
	wait := m.cfg.Global.GroupWait.D()
	if m.oneShot {
		wait = 0
	}
	return planState{
		alerts: m.alerts, router: m.router, wait: wait, groupBy: m.cfg.Global.GroupBy,
		externalURL: m.cfg.Global.ExternalURL, repeatInterval: m.cfg.Global.RepeatInterval.D(),
		first: func(id string) *Notification {
			if e := m.outbox[id]; e != nil {
				return &e.n
			}
			return nil
		},
		newID: m.notificationID, mutes: mu,
	}
}

// effect is what one notification changes in one alert's Sent records.
type effect struct {
	fp, receiver, change, group, root string
	at                                time.Time
}

// planItem is one alert's part in one group's next notification.
type planItem struct {
	a      *Alert
	change string
	group  string
	root   string
	labels map[string]string // group labels
	repeat time.Duration
	// carried: listed because it belongs to the thread's incident, not
	// because it changed (withFiringMembers).
	carried bool
}

// groupID names a group's thread: its receiver, its group key and the ID
// of its first notification ("" for a group not notified yet).
type groupID struct{ receiver, group, root string }

// planner is one plan in progress.
type planner struct {
	s     planState
	now   time.Time
	fps   []string // the alerts' fingerprints, sorted
	open  map[string]map[string]string
	items map[groupID][]planItem
	// members are each open group's alerts.
	members map[groupID][]*Alert
}

// plan decides the notifications at now and their effects, without
// changing anything: it finds the open groups, collects what each alert
// has to say (collect), and renders one notification per group (render).
func plan(s planState, now time.Time) ([]Notification, []effect) {
	p := &planner{s: s, now: now, open: map[string]map[string]string{}, items: map[groupID][]planItem{}, members: map[groupID][]*Alert{}}
	p.fps = sortedKeys(s.alerts)
	p.openGroups()
	for _, fp := range p.fps {
		p.collect(s.alerts[fp])
	}
	p.attachExplained() // thread.go
	keys := make([]groupID, 0, len(p.items))
	for k := range p.items {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].receiver != keys[j].receiver {
			return keys[i].receiver < keys[j].receiver
		}
		if keys[i].group != keys[j].group {
			return keys[i].group < keys[j].group
		}
		return keys[i].root < keys[j].root
	})
	var notes []Notification
	var effects []effect
	for _, k := range keys {
		n, efs := p.render(k)
		notes = append(notes, n)
		effects = append(effects, efs...)
	}
	return notes, effects
}

// openGroups finds the open groups (receiver → group → root) and their
// members from the alerts' unresolved Sent records.
func (p *planner) openGroups() {
	for _, fp := range p.fps {
		a := p.s.alerts[fp]
		for r, s := range a.Sent {
			if s.Resolved {
				continue
			}
			if p.open[r] == nil {
				p.open[r] = map[string]string{}
			}
			p.open[r][s.Group] = s.Root
			k := groupID{r, s.Group, s.Root}
			p.members[k] = append(p.members[k], a)
		}
	}
}

func (p *planner) add(r string, it planItem) {
	k := groupID{r, it.group, it.root}
	p.items[k] = append(p.items[k], it)
}

// collect adds what one alert has to say: a muted alert nothing; one
// inhibited by a root joins the root's threads (caused); a firing one is
// new after the group wait or repeats after its route's interval; a
// resolved one closes its part of the threads it was notified in.
func (p *planner) collect(a *Alert) {
	switch a.State {
	case StateFiring:
		switch p.s.mutes.of(a) {
		case mutedBySilence:
			return
		case mutedByInhibition:
			p.collectCaused(a)
			return
		}
		for _, d := range p.s.router.Route(a.Labels) {
			s := a.Sent[d.Receiver]
			switch {
			case s == nil:
				if p.now.Sub(a.FiredAt) < p.s.wait {
					continue
				}
				g := groupKey(d.GroupBy, a.Labels)
				p.add(d.Receiver, planItem{a: a, change: ChangeNew, group: g, root: p.open[d.Receiver][g], labels: groupLabels(d.GroupBy, a.Labels), repeat: d.RepeatInterval})
			case p.now.Sub(s.At) >= d.RepeatInterval && !a.acked(): // an ack mutes the reminders (triage.go)
				p.add(d.Receiver, planItem{a: a, change: ChangeFiring, group: s.Group, root: s.Root, labels: groupLabels(d.GroupBy, a.Labels), repeat: d.RepeatInterval})
			}
		}
	case StateResolved:
		for _, r := range sortedKeys(a.Sent) {
			if s := a.Sent[r]; !s.Resolved {
				p.add(r, planItem{a: a, change: ChangeResolved, group: s.Group, root: s.Root})
			}
		}
	}
}

// collectCaused puts an alert explained by a root into each open thread
// of its root that it is not in yet.
func (p *planner) collectCaused(a *Alert) {
	cause := p.s.alerts[a.CausedBy]
	if cause == nil || a.folded {
		return // a folded twin is part of its root's view, never told
	}
	for _, r := range sortedKeys(cause.Sent) {
		cs := cause.Sent[r]
		if cs.Resolved {
			continue
		}
		if s := a.Sent[r]; s == nil || s.Resolved || s.Root != cs.Root {
			p.add(r, planItem{a: a, change: ChangeCaused, group: cs.Group, root: cs.Root, labels: groupLabels(nil, cause.Labels)})
		}
	}
}

// render turns one group's items into its notification and effects.
func (p *planner) render(k groupID) (Notification, []effect) {
	its := p.withFiringMembers(k, p.items[k])
	root := k.root
	kind := KindUpdate
	if root == "" {
		kind = KindFiring
	} else if groupCloses(p.members[k], its) {
		kind = KindResolved
	}
	sort.SliceStable(its, func(i, j int) bool {
		ri, rj := changeRank[its[i].change], changeRank[its[j].change]
		if ri != rj {
			return ri < rj
		}
		return worse(&its[i].a.Finding, &its[j].a.Finding, its[i].a.Severity, its[j].a.Severity)
	})
	n := Notification{
		Receiver: k.receiver, Kind: kind, Status: "firing", GroupKey: k.group,
		Thread: k.root, ExternalURL: p.s.externalURL, CreatedAt: p.now,
		RepeatInterval: p.s.repeatInterval,
	}
	if kind == KindResolved {
		n.Status = "resolved"
	}
	var effects []effect
	for _, it := range its {
		if n.GroupLabels == nil && it.labels != nil {
			n.GroupLabels = it.labels
		}
		if it.repeat > 0 {
			n.RepeatInterval = it.repeat
		}
		v := it.a.view([]string{k.receiver})
		v.Change, v.Carried = it.change, it.carried
		n.Alerts = append(n.Alerts, v)
		effects = append(effects, effect{fp: it.a.Fingerprint, receiver: k.receiver, change: it.change, group: k.group, root: root, at: p.now})
	}
	n.ID = p.s.newID(&n)
	if k.root == "" {
		for i := range effects {
			effects[i].root = n.ID
		}
	}
	// A thread speaks for the group its first message was posted for:
	// its labels, and on closing the alerts that message showed.
	if k.root != "" {
		if first := p.s.first(k.root); first != nil {
			n.GroupLabels = first.GroupLabels
			if kind == KindResolved {
				n.RootAlerts = first.Alerts
			}
		}
	}
	if n.GroupLabels == nil {
		n.GroupLabels = groupLabels(p.s.groupBy, its[0].a.Labels)
	}
	return n, effects
}

// withFiringMembers: a message in an open thread lists all the group's
// firing members (carried), so it shows the whole incident (Slack counts
// them) and repeats of its members stay in step.
func (p *planner) withFiringMembers(k groupID, its []planItem) []planItem {
	in := map[string]bool{}
	for _, it := range its {
		in[it.a.Fingerprint] = true
	}
	if k.root == "" {
		return its
	}
	for _, a := range p.members[k] {
		how := p.s.mutes.of(a)
		if in[a.Fingerprint] || a.State != StateFiring || how == mutedBySilence {
			continue
		}
		ch := ChangeFiring
		if how == mutedByInhibition {
			ch = ChangeCaused
		}
		its = append(its, planItem{a: a, change: ch, group: k.group, root: k.root, carried: true})
		in[a.Fingerprint] = true
	}
	return its
}

// groupCloses reports whether a notification closes its open group: no
// member still fires once its items apply. Every member counts, caused
// ones included (a product alert attributed to an infra incident lives in
// that incident's thread), and so do silenced ones: a muted alert still
// fires, and a firing page must never read RESOLVED.
func groupCloses(members []*Alert, its []planItem) bool {
	for _, it := range its {
		if it.change != ChangeResolved {
			return false
		}
	}
	for _, a := range members {
		if a.State == StateFiring && changeOf(its, a.Fingerprint) != ChangeResolved {
			return false
		}
	}
	return true
}

var changeRank = map[string]int{ChangeNew: 0, ChangeFiring: 0, ChangeCaused: 1, ChangeResolved: 2}

func changeOf(its []planItem, fp string) string {
	for _, it := range its {
		if it.a.Fingerprint == fp {
			return it.change
		}
	}
	return ""
}

// groupKey renders the group_by labels' values; alerts with the same key
// for the same receiver share one notification.
func groupKey(by []string, labels map[string]string) string {
	parts := make([]string, len(by))
	for i, l := range by {
		parts[i] = l + "=" + labels[l]
	}
	return strings.Join(parts, ",")
}

func groupLabels(by []string, labels map[string]string) map[string]string {
	if by == nil {
		by = []string{"model", "class"}
	}
	out := make(map[string]string, len(by))
	for _, l := range by {
		out[l] = labels[l]
	}
	return out
}
