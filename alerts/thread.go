package alerts

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// Threads that stay readable (issue 14 part 3, issue 11 item 6). A
// group's Slack thread hears from mlwatch only when the set of its firing
// or explained alerts changes: a root joins or resolves, alerts join the
// explained ones or leave them. Evaluation runs that change nothing post
// nothing; the one other line is the reminder of unacknowledged roots
// after repeat_interval of quiet. The first message lists the roots in
// full (with the triage buttons) and one line summarizing what they
// explain, a thread reply says only what changed plus the group's
// totals, and a resolve edits the first message and replies with one
// line that says how long the incident lasted.

// maxExplainedNamed is how many explained alerts a summary line names.
const maxExplainedNamed = 3

// attachExplained puts the firing alerts a root explains into the message
// that tells the root for the first time (a new group's first message, or
// the reply a new root joins a thread with), instead of a second reply
// right after it: one message, the root and what it explains.
func (p *planner) attachExplained() {
	byCause := map[string][]*Alert{}
	for _, fp := range p.fps {
		a := p.s.alerts[fp]
		if a.State == StateFiring && !a.folded && p.s.mutes.of(a) == mutedByInhibition {
			byCause[a.CausedBy] = append(byCause[a.CausedBy], a)
		}
	}
	if len(byCause) == 0 {
		return
	}
	keys := make([]groupID, 0, len(p.items))
	for k := range p.items {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].receiver+"\x00"+keys[i].group+"\x00"+keys[i].root < keys[j].receiver+"\x00"+keys[j].group+"\x00"+keys[j].root
	})
	for _, k := range keys {
		in := map[string]bool{}
		for _, it := range p.items[k] {
			in[it.a.Fingerprint] = true
		}
		for _, it := range p.items[k] {
			if it.change != ChangeNew {
				continue
			}
			for _, c := range byCause[it.a.Fingerprint] {
				if s := c.Sent[k.receiver]; in[c.Fingerprint] || (s != nil && !s.Resolved) {
					continue // already told in a thread of this receiver
				}
				in[c.Fingerprint] = true
				p.items[k] = append(p.items[k], planItem{a: c, change: ChangeCaused, group: k.group, root: k.root, labels: it.labels})
			}
		}
	}
}

// shortName names an alert inside a summary line: its metric and where
// ("block_rate in country=FR", "null_rate of merchant_risk overall").
func shortWhere(v View) string {
	where := SliceLabel(v.Slice)
	if where == "" {
		where = "overall"
	}
	if v.Feature != "" {
		return "of " + v.Feature + " " + where
	}
	return "in " + where
}

// namesOf names up to max alerts, grouped by metric in the order they
// come (worst first): "block_rate in country=FR, country=BR; score_psi in
// overall" and how many more.
func namesOf(vs []View, max int) string {
	type group struct {
		metric string
		wheres []string
	}
	var groups []*group
	byMetric := map[string]*group{}
	named := 0
	for _, v := range vs {
		if named == max {
			break
		}
		g := byMetric[v.Metric]
		if g == nil {
			g = &group{metric: v.Metric}
			byMetric[v.Metric] = g
			groups = append(groups, g)
		}
		w := shortWhere(v)
		if len(g.wheres) > 0 {
			w = strings.TrimPrefix(strings.TrimPrefix(w, "in "), "of ")
		}
		g.wheres = append(g.wheres, w)
		named++
	}
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = "`" + esc(g.metric) + "` " + esc(strings.Join(g.wheres, ", "))
	}
	out := strings.Join(parts, "; ")
	if more := len(vs) - named; more > 0 {
		out += fmt.Sprintf(" and %d more", more)
	}
	return out
}

// plural is "1 alert" or "n alerts".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// explainedSummary is the line under a message's roots: how many alerts
// they explain, the first few named, and the page that lists them all
// (the root's alert page).
func (s *Slack) explainedSummary(vs []View, roots []View, more bool) string {
	if len(vs) == 0 {
		return ""
	}
	by := "this cause"
	rootFP := vs[0].CausedBy
	causes := map[string]bool{}
	for _, v := range vs {
		causes[v.CausedBy] = true
	}
	if len(causes) > 1 {
		by = "these causes"
	} else if len(roots) > 1 {
		for _, r := range roots {
			if r.Fingerprint == rootFP {
				by = "`" + esc(r.Metric) + "` " + esc(shortWhere(r))
			}
		}
	}
	count := plural(len(vs), "alert", "alerts")
	if more {
		count = plural(len(vs), "more alert", "more alerts")
	}
	line := fmt.Sprintf(":link: %s explained by %s: %s", count, by, namesOf(vs, maxExplainedNamed))
	if s.external != "" && rootFP != "" {
		line += fmt.Sprintf(" — <%s/alerts/%s|all listed on the alert page>", s.external, rootFP)
	} else {
		line += " (all listed on the alert page)"
	}
	return line
}

// threadParts sorts a thread reply's alerts by what it says about them.
type threadParts struct {
	newRoots, reminders, resolvedRoots []View
	newExplained, goneExplained        []View
	firing, explained                  int // the group's totals after the reply
	rootFP                             string
}

func splitThread(n *Notification) threadParts {
	var tp threadParts
	for _, v := range n.Alerts {
		switch {
		case v.Change == ChangeCaused:
			tp.explained++
			if !v.Carried {
				tp.newExplained = append(tp.newExplained, v)
			}
			if tp.rootFP == "" {
				tp.rootFP = v.CausedBy
			}
		case v.Change == ChangeResolved && v.CausedBy != "":
			tp.goneExplained = append(tp.goneExplained, v)
		case v.Change == ChangeResolved:
			tp.resolvedRoots = append(tp.resolvedRoots, v)
		case v.Change == ChangeNew:
			tp.firing++
			tp.newRoots = append(tp.newRoots, v)
		default: // ChangeFiring
			tp.firing++
			if !v.Carried {
				tp.reminders = append(tp.reminders, v)
			}
		}
	}
	return tp
}

// renderUpdate is a thread reply: only what changed (new roots in full,
// with their buttons; explained alerts that joined or left, one line
// each way; roots that resolved, with how long they lasted) and the
// group's totals. A reply that changes nothing is a reminder of the roots
// still firing unacknowledged.
func (s *Slack) renderUpdate(n *Notification) ([]slack.Block, string) {
	tp := splitThread(n)
	var blocks []slack.Block
	section := func(text string) {
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, truncate(text, 2900), false, false), nil, nil))
	}
	context := func(text string) {
		blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, truncate(text, 2900), false, false)))
	}
	listed := 0
	for _, group := range [][]View{tp.newRoots, tp.resolvedRoots} {
		for _, a := range group {
			if listed == maxSlackAlerts {
				break
			}
			listed++
			section(s.alertLine(a, n.CreatedAt))
			if s.interactive && a.Change == ChangeNew && listed <= maxButtonAlerts {
				blocks = append(blocks, s.triageBlocks(a)...)
			}
		}
	}
	if more := len(tp.newRoots) + len(tp.resolvedRoots) - listed; more > 0 {
		context(fmt.Sprintf("…and %d more", more))
	}
	if len(tp.newExplained) > 0 {
		context(s.explainedSummary(tp.newExplained, nil, true))
	}
	if len(tp.goneExplained) > 0 {
		context(fmt.Sprintf(":white_check_mark: %s no longer firing: %s", plural(len(tp.goneExplained), "explained alert", "explained alerts"), namesOf(tp.goneExplained, maxExplainedNamed)))
	}
	if listed == 0 && len(tp.newExplained) == 0 && len(tp.goneExplained) == 0 {
		blocks = append(blocks, s.reminderBlocks(n, tp)...)
	}
	context(s.totalsLine(tp, n))
	return blocks, updateText(n, tp)
}

// reminderBlocks remind of the roots still firing after repeat_interval
// without an ack (acknowledging stops the reminders).
func (s *Slack) reminderBlocks(n *Notification, tp threadParts) []slack.Block {
	var blocks []slack.Block
	for i, a := range tp.reminders {
		if i == maxSlackAlerts {
			break
		}
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, truncate(s.alertLine(a, n.CreatedAt), 2900), false, false), nil, nil))
		if s.interactive && i < maxButtonAlerts {
			blocks = append(blocks, s.triageBlocks(a)...)
		}
	}
	if len(blocks) > 0 && s.interactive {
		blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, "Reminder: acknowledge to stop these reminders.", false, false)))
	}
	return blocks
}

// totalsLine is the group's state after a reply: roots firing, alerts
// explained, and the page.
func (s *Slack) totalsLine(tp threadParts, n *Notification) string {
	line := fmt.Sprintf("Now: %s firing", plural(tp.firing, "alert", "alerts"))
	if tp.explained > 0 {
		line += fmt.Sprintf(", %d explained", tp.explained)
	}
	fp := tp.rootFP
	if fp == "" && len(n.Alerts) > 0 {
		fp = n.Alerts[0].Fingerprint
	}
	if s.external != "" && fp != "" {
		line += fmt.Sprintf(" · <%s/alerts/%s|alert page>", s.external, fp)
	}
	return line
}

// updateText is a reply's plain text (notifications, screen readers).
func updateText(n *Notification, tp threadParts) string {
	class, model := n.GroupLabels["class"], n.GroupLabels["model"]
	var what []string
	if k := len(tp.newRoots); k > 0 {
		what = append(what, fmt.Sprintf("%d new", k))
	}
	if k := len(tp.resolvedRoots); k > 0 {
		what = append(what, fmt.Sprintf("%d resolved", k))
	}
	if k := len(tp.newExplained); k > 0 {
		what = append(what, fmt.Sprintf("%d more explained", k))
	}
	if k := len(tp.goneExplained); k > 0 {
		what = append(what, fmt.Sprintf("%d explained resolved", k))
	}
	if len(what) == 0 {
		what = append(what, "still firing")
	}
	return fmt.Sprintf("[UPDATE] %s %s: %s; now %d firing, %d explained", class, model, strings.Join(what, ", "), tp.firing, tp.explained)
}

// incidentSpan is when a closing group's incident began (its earliest
// member) and ended (its latest resolution, else the message's time).
func incidentSpan(n *Notification) (from, to time.Time) {
	to = n.CreatedAt
	latest := time.Time{}
	for _, vs := range [][]View{n.RootAlerts, n.Alerts} {
		for _, v := range vs {
			if t := v.since(); !t.IsZero() && (from.IsZero() || t.Before(from)) {
				from = t
			}
			if v.ResolvedAt != nil && v.ResolvedAt.After(latest) {
				latest = *v.ResolvedAt
			}
		}
	}
	if !latest.IsZero() {
		to = latest
	}
	return from, to
}

// resolvedLine is the one reply a closing group gets (its first message
// is edited to RESOLVED): how long the incident lasted and what resolved.
func (s *Slack) resolvedLine(n *Notification) ([]slack.Block, string) {
	from, to := incidentSpan(n)
	var roots []View
	for _, v := range n.RootAlerts {
		if v.CausedBy == "" {
			roots = append(roots, v)
		}
	}
	explained := 0
	for _, v := range n.Alerts {
		if v.CausedBy != "" {
			explained++
		} else if len(n.RootAlerts) == 0 {
			roots = append(roots, v)
		}
	}
	what := namesOf(roots, maxExplainedNamed)
	if explained > 0 {
		what += fmt.Sprintf(", with the %s", plural(explained, "alert it explained", "alerts it explained"))
	}
	line := ":white_check_mark: *Resolved*"
	plain := "[RESOLVED] " + n.GroupLabels["class"] + " " + n.GroupLabels["model"]
	if !from.IsZero() {
		span := fmt.Sprintf(" after %s (%s–%s UTC)", FormatSpan(to.Sub(from)), from.UTC().Format("Jan 2 15:04"), to.UTC().Format("15:04"))
		line += span
		plain += span
	}
	line += ": " + what
	blocks := []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, truncate(line, 2900), false, false), nil, nil)}
	return blocks, plain
}
