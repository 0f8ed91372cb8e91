package alerts

import (
	"math"
	"sort"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/detectors"
)

// Consolidation: one incident, one alert. A detector run already keeps the
// root of a move across its own slices (detectors/attribute.go); what one
// cause moves in the other detectors of the model (a merchant category's
// block in the shadow comparison of every country, a broken feature in the
// block rate) is decided here, over the model's active alerts, after every
// run: the daemon, `mlwatch eval` and `mlwatch backtest` all go through
// Process, so they agree on which alerts are roots. An explained alert
// keeps its figures and its page; its CausedBy names its root, it is not
// notified on its own, and the root's summary says what else it moved.

// explainSlack is how much more than a root's own extra events its
// consequences in another detector may add up to (the two detectors'
// baselines are not the same windows); noise is allowed on top.
const explainSlack = 1.1

// broadMove: a slice moved like an aggregate root when its change is at
// most this many times the root's (as in detectors' broad-move rule).
const broadMove = 2.0

// move is what an alert says about the model's production decisions.
type move struct {
	a *Alert
	// family groups metrics whose events are the same: "blocks" for block
	// rates, bounds, golden rows and divergence, "scores" for score PSI;
	// "" takes no part in product consolidation.
	family string
	// driver: the alert measures production's decisions themselves (a
	// block rate, the golden rows), so it can be a root; divergence and
	// score drift are consequences.
	driver bool
	// dir is the sign of production's change in blocks (+1 more, -1
	// fewer, 0 unknown).
	dir float64
	// delta is the change of the rate (absolute), excess the extra events
	// (delta times the requests), both positive.
	delta, excess float64
	period        time.Duration
}

// moveOf reads an alert's move from its finding.
func (m *Manager) moveOf(a *Alert) move {
	f := &a.Finding
	mv := move{a: a, period: m.period(f.Detector)}
	d := f.Value - f.Baseline
	if math.IsNaN(d) {
		return mv
	}
	mv.delta = math.Abs(d)
	mv.excess = mv.delta * float64(f.NCurrent)
	switch f.Metric {
	case detectors.MetricBlockRate, detectors.MetricRateBound, detectors.MetricExpected:
		mv.family, mv.driver, mv.dir = "blocks", f.Class == detectors.ClassModelBehavior || f.Metric != detectors.MetricBlockRate, math.Copysign(1, d)
	case detectors.MetricBlockedBound:
		mv.family, mv.driver, mv.dir, mv.excess = "blocks", true, math.Copysign(1, d), math.Abs(d)
	case detectors.MetricProdBlocks:
		mv.family, mv.dir = "blocks", 1 // production blocks what the shadow passes
	case detectors.MetricShadowBlocks:
		mv.family, mv.dir = "blocks", -1 // production passes what the shadow blocks
	case detectors.MetricScorePSI:
		mv.family = "scores"
	}
	return mv
}

// period is a detector's evaluation period (one minute when unknown).
func (m *Manager) period(detector string) time.Duration {
	d := m.detectors[detector]
	if d == nil || d.Cron == nil {
		return time.Minute
	}
	t := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	next := d.Cron.Next(t)
	if p := d.Cron.Next(next).Sub(next); p > 0 {
		return p
	}
	return time.Minute
}

// startedBy says whether root r started no later than alert a, allowing
// one evaluation period of a (a cause and its effect may be seen in the
// same run or in a's next one).
func startedBy(r, a *Alert, period time.Duration) bool {
	return !r.ActiveAt.After(a.ActiveAt.Add(period))
}

// explains says whether root r explains alert a of the same model, both
// product alerts: r drives production's decisions, started no later than
// a, is at least as severe, and a is its consequence in the same slice,
// inside it (a narrower root explains the aggregate) or, for an aggregate
// root, a slice that moved no more than it did.
func explains(r, a move) bool {
	if !r.driver || a.family == "" || severityRank[r.a.Severity] < severityRank[a.a.Severity] {
		return false
	}
	if !startedBy(r.a, a.a, a.period) {
		return false
	}
	if a.family == "blocks" && a.dir != r.dir {
		return false
	}
	rs, as := r.a.Finding.Slice, a.a.Finding.Slice
	if twin(r.a, a.a) {
		// The same metric through another detector's windows (a 12-hour
		// drift window against a 1-hour seasonal one): extra events are
		// not comparable, rates are.
		switch {
		case detectors.SliceKey(rs) == detectors.SliceKey(as):
			return true
		case len(rs) == 0:
			return a.delta <= broadMove*r.delta
		case len(as) == 0:
			return a.delta <= r.delta // a mixture moves less than its part
		}
		return false
	}
	switch {
	case detectors.SliceKey(rs) == detectors.SliceKey(as):
		// The same slice: a's events are r's (a divergence is at most the
		// extra blocks the shadow did not share).
		return a.family == "scores" || a.excess <= budget(r.excess)
	case len(rs) == 0:
		// A broad move seen through a narrower window.
		return a.family == "scores" || a.delta <= broadMove*r.delta
	case len(as) == 0:
		// The aggregate's extra events, all inside r's slice.
		return a.family == "scores" || a.excess <= budget(r.excess)
	}
	return false
}

// budget is how many extra events a root's own can account for elsewhere.
func budget(excess float64) float64 { return explainSlack*excess + 3*math.Sqrt(excess) }

// inhibit decides every active alert's root (CausedBy) and the roots'
// "also moves" notes; see consolidate.
func (m *Manager) inhibit() {
	byModel := map[string][]*Alert{}
	closed := m.openIncidents()
	for _, a := range m.alerts {
		if a.State == StateFiring || a.State == StatePending || closed[a.Fingerprint] {
			byModel[a.Finding.Model] = append(byModel[a.Finding.Model], a)
		} else {
			a.moves = ""
		}
	}
	models := make([]string, 0, len(byModel))
	for k := range byModel {
		models = append(models, k)
	}
	sort.Strings(models)
	for _, model := range models {
		m.consolidate(byModel[model], closed)
	}
}

// openIncidents are the roots that stopped firing while alerts they
// explain still fire: the incident goes on. Such a root stays known (prune
// keeps it) and keeps explaining: a new alert of the same incident (its
// rollout, or a move it explains) joins its thread instead of paging anew.
// Without this a broad move flaps between its levels: a version rollout's
// first page is a category (digital_goods, where the new version's extra
// blocks show first), the next run the overall block rate takes over as
// the broad move and the category, now part of it, clears; the overall
// then paged as a new root while the category's thread was still open.
func (m *Manager) openIncidents() map[string]bool {
	out := map[string]bool{}
	for _, a := range m.alerts {
		if a.CausedBy == "" || (a.State != StateFiring && a.State != StatePending) {
			continue
		}
		// A twin lags its root (a 12-hour window) and holds nothing open;
		// a slice that moved with its root is the incident going on.
		if r := m.alerts[a.CausedBy]; r != nil && r.State == StateResolved && r.CausedBy == "" && (!a.folded || a.ownMove) {
			out[r.Fingerprint] = true
		}
	}
	return out
}

// consolidate decides the roots among one model's active alerts:
//
//  1. An infra cause (feature_pipeline, pipeline_outage) explains a product
//     alert that started no earlier than it, less one evaluation period
//     of the product alert, when the cause affects decisions (see
//     affectsDecisions): a product page firing since 23:35 is not "caused
//     by" a null spike that started at 23:49; both stand, each with its
//     owner.
//  2. Among product alerts, a root that drives production's decisions (a
//     block rate that the shadow did not share, the golden rows) explains
//     the divergence, score drift and second block-rate alerts it moves
//     (see explains).
//  3. A version rollout (Finding.Rollout) is the root of the model's
//     simultaneous product alerts: the most telling of them speaks for
//     it, the others are explained by it.
//  4. A product alert already notified on its own is not explained by
//     another product alert, and an explained alert keeps its root while
//     that root is known: a thread never moves.
//  5. A root that stopped firing while alerts it explains still fire
//     keeps the incident open (see openIncidents).
//  6. A twin (another detector of the same metric) folds into its root
//     (see twin).
//
// Roots are tried in a stable order: earlier first, then drivers, more
// severe, larger moves, fingerprint.
func (m *Manager) consolidate(as []*Alert, closed map[string]bool) {
	c := m.newConsolidation(as, closed)
	// The rules, walked in this order; each decides some alerts' roots
	// and leaves the others to the next.
	for _, rule := range []func(){
		c.keepLinks,    // 4, 5, 6: kept links, open incidents, twins
		c.infraCauses,  // 1
		c.rollouts,     // 3
		c.productRoots, // 2
		c.chainRoots,
	} {
		rule()
	}
	notes, twins := c.link()
	c.summarize(notes, twins)
}

// consolidation is one model's consolidate: its active alerts, their
// moves, the stable order roots are tried in, and each alert's root
// (root[i], "" for a root) once decided[i].
type consolidation struct {
	m       *Manager
	as      []*Alert
	moves   []move
	order   []int
	byFP    map[string]int
	closed  map[string]bool
	root    []string
	decided []bool
}

// newConsolidation reads the alerts' moves and orders them: earlier
// first, then drivers, more severe, narrower, larger moves, fingerprint.
func (m *Manager) newConsolidation(as []*Alert, closed map[string]bool) *consolidation {
	c := &consolidation{m: m, as: as, moves: make([]move, len(as)), order: make([]int, len(as)), byFP: map[string]int{},
		closed: closed, root: make([]string, len(as)), decided: make([]bool, len(as))}
	for i, a := range as {
		c.moves[i] = m.moveOf(a)
	}
	for i := range c.order {
		c.order[i] = i
	}
	moves, order := c.moves, c.order
	sort.SliceStable(order, func(i, j int) bool {
		a, b := moves[order[i]], moves[order[j]]
		if !a.a.ActiveAt.Equal(b.a.ActiveAt) {
			return a.a.ActiveAt.Before(b.a.ActiveAt)
		}
		if a.driver != b.driver {
			return a.driver
		}
		if sa, sb := severityRank[a.a.Severity], severityRank[b.a.Severity]; sa != sb {
			return sa > sb
		}
		if la, lb := len(a.a.Finding.Slice), len(b.a.Finding.Slice); la != lb {
			return la > lb // a narrower root first: FR explains the aggregate
		}
		if a.excess != b.excess {
			return a.excess > b.excess
		}
		return a.a.Fingerprint < b.a.Fingerprint
	})
	for i, a := range as {
		c.byFP[a.Fingerprint] = i
	}
	return c
}

// keepLinks: an explained alert keeps its root while that root is known
// (firing, pending or recently resolved: the tail of an incident does not
// page anew), and a notified root stays a root. Alerts not owned by
// product keep no root.
func (c *consolidation) keepLinks() {
	for i, a := range c.as {
		if c.closed[a.Fingerprint] {
			c.decided[i] = true // a root that stopped firing stays one
			continue
		}
		if a.folded && a.CausedBy != "" {
			// A twin is the tail of its root's incident, even once the
			// root is gone: its window (12 hours for a drift detector)
			// lags the root's. It stays folded, never notified.
			c.root[i], c.decided[i] = a.CausedBy, true
			continue
		}
		if a.CausedBy != "" {
			if r := c.m.alerts[a.CausedBy]; r != nil && r.State != StateInactive {
				c.root[i], c.decided[i] = a.CausedBy, true
				continue
			}
		}
		if a.Owner != detectors.OwnerProduct {
			c.decided[i] = true
		}
	}
}

// infraCauses: an infra cause that affects decisions explains a product
// alert that started no earlier than it (rule 1).
func (c *consolidation) infraCauses() {
	for _, i := range c.order {
		a := c.as[i]
		if c.decided[i] || a.Finding.Kind == KindMonitor {
			continue
		}
		for _, j := range c.order {
			r := c.as[j]
			if i == j || !detectors.Classes[r.Finding.Class].Cause || !startedBy(r, a, c.moves[i].period) || !affectsDecisions(r) {
				continue
			}
			c.root[i], c.decided[i] = r.Fingerprint, true
			break
		}
	}
}

// rollouts: a rollout is the root of the model's simultaneous moves (rule
// 3): the product alerts whose window holds the same version change
// (Finding.Rollout) are one incident, told by the most telling of them (a
// driver, the most severe, the broadest) unless one of them already
// speaks for it.
func (c *consolidation) rollouts() {
	open := c.openRollouts()
	groups := map[string][]int{}
	var keys []string
	for _, i := range c.order {
		a := c.as[i]
		r := rolloutOf(a, open)
		if r == nil || c.root[i] != "" || a.Owner != detectors.OwnerProduct || a.Finding.Kind == KindMonitor ||
			a.ActiveAt.Before(r.At.Add(-c.moves[i].period)) {
			continue
		}
		k := r.Role + "\x00" + r.To + "\x00" + r.At.UTC().Format(time.RFC3339)
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], i)
	}
	for _, k := range keys {
		g := groups[k]
		sort.SliceStable(g, func(x, y int) bool { return c.tellsRollout(c.moves[g[x]], c.moves[g[y]]) })
		c.decided[g[0]] = true
		for _, i := range g[1:] {
			// A speaker kept for its thread (a drift ticket notified
			// first) does not hold back a more severe alert of the
			// rollout: a page is never explained by a ticket.
			if !c.decided[i] && !notifiedAsRoot(c.as[i]) && severityRank[c.as[g[0]].Severity] >= severityRank[c.as[i].Severity] {
				c.root[i], c.decided[i] = c.as[g[0]].Fingerprint, true
			}
		}
	}
}

// openRollouts are the rollouts of the model's open incidents, latest
// first. An alert keeps the rollout it was first seen with (a finding
// names it only while the switch is inside its window), and an alert that
// starts while the rollout's incident is open (one of its alerts still
// active) joins it: the rollout stays the root after its hour.
func (c *consolidation) openRollouts() []*detectors.Rollout {
	var open []*detectors.Rollout
	for _, a := range c.as {
		if r := a.Finding.Rollout; r != nil && (a.rollout == nil || !a.rolloutAt.Equal(a.ActiveAt)) {
			a.rollout, a.rolloutAt = r, a.ActiveAt
		}
		if a.rollout != nil && !a.rolloutAt.Equal(a.ActiveAt) {
			a.rollout = nil // active anew since
		}
		if a.rollout != nil && a.Owner == detectors.OwnerProduct {
			open = append(open, a.rollout)
		}
	}
	sort.SliceStable(open, func(i, j int) bool { return open[i].At.After(open[j].At) })
	return open
}

// rolloutOf is the rollout alert a belongs to: its own, else the latest
// open one of its model before it started; nil when none.
func rolloutOf(a *Alert, open []*detectors.Rollout) *detectors.Rollout {
	if r := a.rollout; r != nil {
		return r
	}
	for _, r := range open {
		if r.Model == a.Finding.Model && !a.ActiveAt.Before(r.At) {
			return r // the latest rollout before it started
		}
	}
	return nil
}

// tellsRollout says whether a speaks for a rollout before b: the
// incident's root though it stopped firing, a notified root, a driver,
// the more severe, the broader, then by fingerprint.
func (c *consolidation) tellsRollout(a, b move) bool {
	if ca, cb := c.closed[a.a.Fingerprint], c.closed[b.a.Fingerprint]; ca != cb {
		return ca // the incident's root, though it stopped firing
	}
	if na, nb := notifiedAsRoot(a.a), notifiedAsRoot(b.a); na != nb {
		return na
	}
	if a.driver != b.driver {
		return a.driver
	}
	if sa, sb := severityRank[a.a.Severity], severityRank[b.a.Severity]; sa != sb {
		return sa > sb
	}
	if la, lb := len(a.a.Finding.Slice), len(b.a.Finding.Slice); la != lb {
		return la < lb // the broadest: a rollout moves everything
	}
	return a.a.Fingerprint < b.a.Fingerprint
}

// productRoots: product roots, decided in order; only a root explains
// (rule 2), and a notified root is explained by no other (rule 4).
func (c *consolidation) productRoots() {
	for _, i := range c.order {
		if c.decided[i] || c.as[i].Finding.Kind == KindMonitor {
			continue
		}
		c.decided[i] = true
		if notifiedAsRoot(c.as[i]) {
			continue
		}
		for _, j := range c.order {
			if j == i || c.root[j] != "" || c.as[j].Owner != detectors.OwnerProduct ||
				!explains(c.moves[j], c.moves[i]) && !c.m.movesWith(c.as[j], c.as[i], c.moves[i].period) {
				continue
			}
			c.root[i] = c.as[j].Fingerprint
			break
		}
	}
}

// chainRoots makes links point at the root of a chain.
func (c *consolidation) chainRoots() {
	root := c.root
	for i := range c.as {
		for k := 0; k < len(c.as) && root[i] != ""; k++ {
			j, ok := c.byFP[root[i]]
			if !ok || root[j] == "" {
				break
			}
			root[i] = root[j]
		}
	}
}

// link sets every alert's CausedBy and folds twins (rule 6); it returns
// the explained alerts and the folded twins by root fingerprint.
func (c *consolidation) link() (notes, twins map[string][]*Alert) {
	notes, twins = map[string][]*Alert{}, map[string][]*Alert{}
	for _, i := range c.order {
		a := c.as[i]
		if c.root[i] != a.CausedBy {
			a.CausedBy = c.root[i]
			c.m.dirty[a.Fingerprint] = true
		}
		kept := a.folded && !a.ownMove && c.root[i] == a.CausedBy
		a.folded, a.ownMove, a.foldInto = false, false, ""
		if c.root[i] == "" {
			continue
		}
		if r := c.m.alerts[c.root[i]]; (r != nil && twin(r, a)) || (r == nil && kept) {
			a.folded, a.foldInto = true, c.root[i]
			twins[c.root[i]] = append(twins[c.root[i]], a)
			continue
		}
		// A slice of the root's own detector that moved with a broad root
		// (a rollout's, or the aggregate's) is the root's move: folded
		// into it, and named in its "also moves".
		if r := c.m.alerts[c.root[i]]; r != nil && c.m.movesWith(r, a, c.moves[i].period) {
			a.folded, a.ownMove, a.foldInto = true, true, c.root[i]
			notes[c.root[i]] = append(notes[c.root[i]], a)
			continue
		}
		// A twin of another alert of the same incident, in the same slice
		// and direction and no more severe (a null spike explains both
		// block-rate detectors' overall move), folds into that one.
		if s := c.m.sibling(c.as, c.moves, c.order, c.root, i); s != nil {
			a.folded, a.foldInto = true, s.Fingerprint
			twins[s.Fingerprint] = append(twins[s.Fingerprint], a)
			continue
		}
		notes[c.root[i]] = append(notes[c.root[i]], a)
	}
	return notes, twins
}

// movesWith says whether explained alert a, a slice, is the move of its
// broad root r in r's own detector, as attribution drops such slices
// within one run (detectors.BroadBeyond): the same detector, metric and
// feature; r the aggregate or a rollout's root; the same direction;
// started with r, not before it (one period of grace); and not
// significantly beyond twice r's change (p above the detector's fdr),
// small or not. A rollout that shows first in digital_goods then moves
// AR and MX in later runs: they are its move, not alerts of their own.
// An aggregate root evaluated in the same run as a already decided it in
// attribution: a slice that fires beside it is beyond it.
func (m *Manager) movesWith(r, a *Alert, period time.Duration) bool {
	rf, af := &r.Finding, &a.Finding
	if rf.Detector != af.Detector || rf.Metric != af.Metric || rf.Feature != af.Feature || len(af.Slice) == 0 || !detectors.BroadRate(af.Metric) ||
		detectors.SliceKey(rf.Slice) == detectors.SliceKey(af.Slice) || (len(rf.Slice) > 0 && r.rollout == nil) {
		return false
	}
	if len(rf.Slice) == 0 && rf.At.Equal(af.At) {
		return false
	}
	dr, da := rf.Value-rf.Baseline, af.Value-af.Baseline
	if math.IsNaN(dr) || math.IsNaN(da) || dr == 0 || math.Signbit(dr) != math.Signbit(da) || a.ActiveAt.Before(r.ActiveAt.Add(-period)) {
		return false
	}
	sd := af.Details["seasonal_sd"]
	if math.IsNaN(sd) {
		sd = 0
	}
	p := detectors.BroadBeyond(detectors.RateMove{Value: af.Value, Baseline: af.Baseline,
		NCurrent: float64(af.NCurrent), NBaseline: float64(af.NBaseline), Spread: sd * sd},
		math.Abs(dr)/math.Max(rf.Baseline, 1e-4), dr)
	return !math.IsNaN(p) && p > m.fdr(af.Detector)
}

// fdr is a detector's false discovery rate (0.05 when unknown).
func (m *Manager) fdr(detector string) float64 {
	if d := m.detectors[detector]; d != nil && d.FDR > 0 {
		return d.FDR
	}
	return 0.05
}

// summarize writes the roots' "also moves" notes and the "also seen by"
// of the twins folded into an alert.
func (c *consolidation) summarize(notes, twins map[string][]*Alert) {
	for _, a := range c.as {
		a.moves = ""
		if a.CausedBy != "" {
			if tw := twins[a.Fingerprint]; len(tw) > 0 && !a.folded {
				a.moves = seenByText(tw)
			}
			continue
		}
		if ex := notes[a.Fingerprint]; len(ex) > 0 {
			metrics := make([]string, len(ex))
			slices := make([]map[string]string, len(ex))
			for k, e := range ex {
				metrics[k], slices[k] = e.Finding.Metric, e.Finding.Slice
			}
			a.moves = detectors.MovesText(a.Finding.Metric, metrics, slices)
		}
		if tw := twins[a.Fingerprint]; len(tw) > 0 {
			a.moves = summaryWith(a.moves, seenByText(tw))
		}
	}
}

// twin says whether explained alert a repeats its root r: another detector
// of the same model watching the same metric (a drift detector beside the
// seasonal one on block rate) that saw r's move. Within one detector the
// slices such a root moved are dropped by attribution
// (detectors/attribute.go); across two detectors of one metric they are
// folded into the root: a twin is no alert of its own (no view, no Slack
// line, not counted among the explained), its figures stay in the
// evaluations table and on the root's page (View.Folded).
func twin(r, a *Alert) bool {
	return r.Finding.Detector != a.Finding.Detector && r.Finding.Model == a.Finding.Model && r.Finding.Kind == a.Finding.Kind &&
		r.Finding.Metric == a.Finding.Metric && r.Finding.Feature == a.Finding.Feature
}

// sibling returns the alert of as[i]'s incident (the same root) that
// as[i] repeats: an earlier one in order, not itself folded, of another
// detector of the same metric, in the same slice, moving the same way, at
// least as severe. Nil when there is none.
func (m *Manager) sibling(as []*Alert, moves []move, order []int, root []string, i int) *Alert {
	a := as[i]
	for _, j := range order {
		if j == i {
			return nil // only earlier ones: the first of a pair carries it
		}
		b := as[j]
		if root[j] != root[i] || b.folded || !twin(b, a) || moves[j].dir != moves[i].dir ||
			detectors.SliceKey(b.Finding.Slice) != detectors.SliceKey(a.Finding.Slice) ||
			severityRank[b.Severity] < severityRank[a.Severity] {
			continue
		}
		return b
	}
	return nil
}

// seenByText names the twins folded into a root: "also seen by
// fraud-block-rate-drift (overall, country FR)".
func seenByText(tw []*Alert) string {
	var dets []string
	by := map[string][]string{}
	for _, a := range tw {
		d := a.Finding.Detector
		if by[d] == nil {
			dets = append(dets, d)
		}
		s := SliceLabel(a.Finding.Slice)
		if s == "" {
			s = "overall"
		}
		by[d] = append(by[d], s)
	}
	sort.Strings(dets)
	parts := make([]string, len(dets))
	for i, d := range dets {
		sort.Strings(by[d])
		parts[i] = d + " (" + strings.Join(by[d], ", ") + ")"
	}
	return "also seen by " + strings.Join(parts, ", ")
}

// views renders the alerts the read side shows, in the given order: a
// folded twin is not an alert of its own but part of its root's view.
func (m *Manager) views(as []*Alert) []View {
	folded := map[string][]View{}
	for _, a := range as {
		if a.folded && m.alerts[a.foldInto] != nil {
			folded[a.foldInto] = append(folded[a.foldInto], a.view(m.receiversOf(a)))
		}
	}
	var out []View
	for _, a := range as {
		if a.folded && m.alerts[a.foldInto] != nil {
			continue
		}
		v := a.view(m.receiversOf(a))
		v.Folded = folded[a.Fingerprint]
		out = append(out, v)
	}
	return out
}

// notifiedAsRoot says whether an alert was notified on its own (not under
// a cause): its thread is its owner's and stays so.
func notifiedAsRoot(a *Alert) bool {
	if a.CausedBy != "" {
		return false
	}
	for _, s := range a.Sent {
		if !s.Resolved {
			return true
		}
	}
	return false
}

// affectsDecisions says whether an infra cause can explain product moves.
// Where its detector measured it (feature_health: the block rate among the
// rows where the feature is broken against the rest, in the same query),
// only when the broken rows are blocked differently from the rest;
// elsewhere (a volume collapse, no decisions logged) timing alone decides.
func affectsDecisions(c *Alert) bool {
	d := c.Finding.Details
	moved, ok := d[detectors.DetailAffectedMoved]
	if !ok || math.IsNaN(moved) {
		return true
	}
	return moved != 0
}
