package monitor

import (
	"context"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/detectors"
)

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"num":   formatNumber,
	"slice": sliceText,
	"ts":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"clock": func(t time.Time) string { return t.UTC().Format("15:04") },
	"pct": func(n alerts.Number) string {
		if math.IsNaN(float64(n)) {
			return "–"
		}
		return strconv.FormatFloat(100*float64(n), 'f', 0, 64) + "%"
	},
	"secs": func(n alerts.Number) string {
		if math.IsNaN(float64(n)) {
			return "–"
		}
		return (time.Duration(float64(n)) * time.Second).String()
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;max-width:1100px}
h1{font-size:1.4rem} h2{font-size:1.15rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.alert{border:1px solid #ddd;border-left:5px solid #c0392b;border-radius:4px;padding:.6rem .8rem;margin:.8rem 0}
.alert.ticket{border-left-color:#e67e22} .alert.info{border-left-color:#3b6fb6}
.child{margin-left:2rem;border-left-color:#999} .muted{color:#777} .badge{font-size:.75rem;padding:.05rem .35rem;border-radius:3px;background:#eee;margin-left:.3rem}
table{border-collapse:collapse;font-size:.85rem} td,th{border-bottom:1px solid #eee;padding:.25rem .5rem;text-align:left;vertical-align:top}
.bad{color:#c0392b} code{font-size:.8rem}
.banner{border:2px solid #c0392b;background:#fdecea;border-radius:4px;padding:.6rem .8rem;margin:.8rem 0}
</style></head><body>
<h1>{{.Title}}</h1>
{{with .Dead}}<div class="banner" id="dead-notifications"><strong>{{len .}} notification{{if gt (len .) 1}}s{{end}} could not be delivered</strong>
and will not be retried until the receiver is fixed (a reload that changes it retries them) or they are re-sent:
<code>mlwatch notifications retry ID</code> or <code>POST /api/v1/notifications/ID/retry</code>. List: <a href="api/v1/notifications?state=dead">api/v1/notifications?state=dead</a>.
<table><tr><th>receiver</th><th>created</th><th>alerts</th><th>error</th><th>fallback</th><th>id</th></tr>
{{range .}}<tr><td>{{.Receiver}}</td><td>{{ts .CreatedAt}}</td><td>{{range .Alerts}}{{.}}<br>{{end}}</td><td>{{.LastError}}</td><td>{{if .FallbackID}}copy sent to the fallback receiver{{else}}none{{end}}</td><td><code>{{.ID}}</code></td></tr>{{end}}
</table></div>{{end}}
<p class="muted">{{.Firing}} firing, {{.Pending}} pending, {{.Silenced}} silenced · {{ts .Now}}</p>
{{range .Owners}}
<h2 id="owner-{{.Owner}}">{{.Owner}} team: {{len .Alerts}} firing</h2>
{{range .Alerts}}{{template "alert" .}}{{else}}<p class="muted">Nothing firing.</p>{{end}}
{{end}}
{{if .Others}}<h2>Pending and recently resolved</h2>
<table><tr><th>state</th><th>alert</th><th>value</th><th>baseline</th><th>since</th></tr>
{{range .Others}}<tr><td>{{.State}}</td><td><a href="alerts/{{.Fingerprint}}">{{.Class}} · {{.Model}} {{slice .Slice}} {{.Feature}} {{.Metric}}</a></td><td>{{num .Value}}</td><td>{{num .Baseline}}</td><td>{{ts .Since}}</td></tr>{{end}}
</table>{{end}}
{{with .Guardrails}}<h2 id="guardrails">Promotion guardrails</h2>
<p class="muted">Is the shadow safe to ship? Candidate vs production per slice over each model's guardrails.period, computed on guardrails.schedule; <code>mlwatch guardrails</code> answers the same for any period.</p>
<table><tr><th>model</th><th>verdict</th><th>period</th><th>computed</th><th>why</th><th>labels</th></tr>
{{range .}}<tr id="guardrails-{{.Model}}"><td>{{.Model}}</td>{{if .Report}}{{with .Report}}<td class="{{if eq .Verdict "fail"}}bad{{end}}"><strong>{{.Verdict}}</strong> (exit {{.ExitCode}}) · candidate {{.Candidate}}</td>
<td>{{ts .From}} .. {{ts .To}}</td>{{end}}<td>{{ts .At}}</td><td>{{with .Report}}{{range .Failed}}{{.}}<br>{{end}}{{range .Missing}}{{.}}<br>{{end}}{{if not (or .Failed .Missing)}}every guardrail holds ({{len .Checks}} checks){{end}}</td><td class="muted">{{.Labels}}{{end}}</td>
{{else if .Error}}<td class="bad">error</td><td>{{.Period}}</td><td>{{ts .At}}</td><td class="bad">{{.Error}}</td><td></td>
{{else}}<td class="muted">not computed yet</td><td>{{.Period}}</td><td class="muted"><code>{{.Schedule}}</code></td><td></td><td></td>{{end}}</tr>{{end}}
</table>{{end}}
<h2 id="detectors">Detectors</h2>
<table><tr><th>detector</th><th>kind</th><th>model</th><th>schedule</th><th>last run</th><th>duration</th><th>rows read</th><th>findings</th><th>failures in a row</th><th>missed</th><th>last error</th></tr>
{{range .Detectors}}<tr><td>{{.Name}}</td><td>{{.Kind}}</td><td>{{.Model}}</td><td><code>{{.Schedule}}</code></td>
{{with .Last}}<td>{{ts .At}}</td><td>{{printf "%.0f ms" .DurationMS}}</td><td>{{.RowsRead}}</td><td>{{.Findings}}</td>{{else}}<td class="muted">not yet</td><td></td><td></td><td></td>{{end}}
<td{{if .ConsecutiveFailures}} class="bad"{{end}}>{{.ConsecutiveFailures}}</td><td>{{.Missed}}</td><td class="bad">{{with .Last}}{{.Error}}{{end}}</td></tr>{{end}}
</table>
{{if .Quality}}<h2 id="quality">Alert quality (30 days)</h2>
<table><tr><th>detector</th><th>class</th><th>alerts</th><th>pages</th><th>acked</th><th>time to ack p50 / p90</th><th>false positive</th><th>expected</th><th>pages/week</th></tr>
{{range .Quality}}<tr><td>{{.Detector}}</td><td>{{.Class}}</td><td>{{.Alerts}}</td><td>{{.Pages}}</td><td>{{pct .AckedShare}}</td><td>{{secs .AckMedian}} / {{secs .AckP90}}</td><td{{if .Flag}} class="bad" title="{{.Flag}}"{{end}}>{{pct .FPShare}}</td><td>{{pct .ExpectedShare}}</td><td>{{num .PagesPerWeek}}</td></tr>{{end}}
</table>{{end}}
<h2 id="silences">Silences</h2>
{{if .Silences}}<table><tr><th>state</th><th>matchers</th><th>until</th><th>by</th><th>comment</th><th>id</th></tr>
{{range .Silences}}<tr><td>{{.State}}</td><td><code>{{.Matchers}}</code></td><td>{{ts .EndsAt}}</td><td>{{.CreatedBy}}</td><td>{{.Comment}}</td><td><code>{{.ID}}</code></td></tr>{{end}}
</table>{{else}}<p class="muted">No silences.</p>{{end}}
</body></html>
{{define "alert"}}<div class="alert {{.View.Severity}}{{if .View.CausedBy}} child{{end}}" id="{{.View.Fingerprint}}">
<strong><a href="alerts/{{.View.Fingerprint}}">{{.View.Class}}</a></strong><span class="badge">{{.View.Severity}}</span>{{if .View.Silenced}}<span class="badge">silenced</span>{{end}}{{with .View.Ack}}<span class="badge ack">acked by @{{.UserName}} {{clock .At}}</span>{{end}}
<span class="muted">· model {{.View.Model}} · {{slice .View.Slice}}{{with .View.Feature}} · feature {{.}}{{end}} · {{.View.Detector}} · to {{.View.Receiver}}</span>
<div>{{.View.Summary}}</div>
<div class="muted">{{.View.Metric}} {{num .View.Value}} vs baseline {{num .View.Baseline}} (n={{.View.NCurrent}} vs {{.View.NBaseline}}) · since {{ts .View.Since}}{{with .View.CausedBy}} · caused by <a href="#{{.}}">{{$.CauseName}}</a>{{end}}</div>
{{.Chart}}
{{range .Children}}{{template "alert" .}}{{end}}
</div>{{end}}
`))

// alertCard is one alert on the page, its chart drawn, its children (the
// alerts it caused) nested under it.
type alertCard struct {
	View     alerts.View
	Chart    template.HTML
	P        float64
	HasP     bool
	Children []alertCard
	// CauseName names the alert's cause (class, slice, feature, metric),
	// not its fingerprint.
	CauseName string
	// Actions are the triage actions on the alert (alert page only).
	Actions []alerts.Action
	// Explained are the alerts this one explains (alert page only): the
	// page a Slack thread's summary line links to.
	Explained []alerts.View
	// Week is the alert page's second chart: the last 7 days.
	Week template.HTML
}

type ownerSection struct {
	Owner  string
	Alerts []alertCard
}

type detectorRow struct {
	DetectorStatus
	Last *Run
}

type silenceRow struct {
	alerts.Silence
	State string
}

func formatNumber(n alerts.Number) string {
	f := float64(n)
	switch {
	case math.IsNaN(f):
		return "–"
	case f != 0 && math.Abs(f) < 1:
		return fmt.Sprintf("%.4g", f)
	}
	return fmt.Sprintf("%.6g", f)
}

func sliceText(s map[string]string) string {
	if len(s) == 0 {
		return "all traffic"
	}
	return detectors.JoinSlice(s, ", ")
}

func isRate(metric string) bool {
	for _, w := range []string{"rate", "share", "precision", "recall", "coverage"} {
		if strings.Contains(metric, w) {
			return true
		}
	}
	return false
}

func (s *server) card(r *http.Request, v alerts.View, width int) alertCard {
	c := alertCard{View: v, P: float64(v.PValue), HasP: !math.IsNaN(float64(v.PValue))}
	if v.CausedBy != "" {
		c.CauseName = v.CausedBy
		for _, o := range s.opt.Alerts.Alerts() {
			if o.Fingerprint == v.CausedBy {
				c.CauseName = causeName(o)
			}
		}
	}
	c.Chart = s.alertChart(r, v, width, chartDay)
	return c
}

func (s *server) statusPage(w http.ResponseWriter, r *http.Request) {
	views := s.opt.Alerts.Alerts()
	data := struct {
		Title                     string
		Now                       time.Time
		Firing, Pending, Silenced int
		Owners                    []ownerSection
		Others                    []alerts.View
		Detectors                 []detectorRow
		Guardrails                []GuardrailStatus
		Silences                  []silenceRow
		Dead                      []alerts.NotificationStatus
		Quality                   []alerts.QualityRow
	}{Title: "mlwatch", Now: s.opt.Now()}
	if s.opt.Quality != nil {
		data.Quality = s.opt.Quality()
	}
	if s.opt.Outbox != nil {
		data.Dead = s.opt.Outbox.Notifications(alerts.NotificationDead)
	}
	byFP := map[string]alerts.View{}
	for _, v := range views {
		byFP[v.Fingerprint] = v
	}
	children := map[string][]alerts.View{}
	for _, v := range views {
		switch v.State {
		case "firing":
			data.Firing++
		case "pending":
			data.Pending++
		}
		if v.Silenced {
			data.Silenced++
		}
		if v.State == "firing" && v.CausedBy != "" && byFP[v.CausedBy].State == "firing" {
			children[v.CausedBy] = append(children[v.CausedBy], v)
		}
	}
	infra, product := string(detectors.OwnerInfra), string(detectors.OwnerProduct)
	sections := map[string]*ownerSection{infra: {Owner: infra}, product: {Owner: product}}
	for _, v := range views {
		if v.State != "firing" {
			data.Others = append(data.Others, v)
			continue
		}
		if v.CausedBy != "" && byFP[v.CausedBy].State == "firing" {
			continue // drawn under its cause
		}
		c := s.card(r, v, 720)
		for _, ch := range children[v.Fingerprint] {
			c.Children = append(c.Children, s.card(r, ch, 660))
		}
		sec := sections[v.Owner]
		if sec == nil {
			sec = &ownerSection{Owner: v.Owner}
			sections[v.Owner] = sec
		}
		sec.Alerts = append(sec.Alerts, c)
	}
	for _, o := range []string{infra, product} {
		data.Owners = append(data.Owners, *sections[o])
		delete(sections, o)
	}
	for _, sec := range sections {
		data.Owners = append(data.Owners, *sec)
	}
	if s.opt.Detectors != nil {
		for _, d := range s.opt.Detectors() {
			row := detectorRow{DetectorStatus: d}
			if len(d.Runs) > 0 {
				row.Last = &d.Runs[0]
			}
			data.Detectors = append(data.Detectors, row)
		}
		sort.Slice(data.Detectors, func(i, j int) bool { return data.Detectors[i].Name < data.Detectors[j].Name })
	}
	if s.opt.Guardrails != nil {
		data.Guardrails = s.opt.Guardrails()
	}
	for _, sil := range s.opt.Alerts.Silences() {
		data.Silences = append(data.Silences, silenceRow{sil, sil.State(data.Now)})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTmpl.Execute(w, data); err != nil {
		s.opt.Logger.Warn("status page failed", zap.Error(err))
	}
}

var alertTmpl = template.Must(template.New("alert").Funcs(template.FuncMap{
	"num":   formatNumber,
	"slice": sliceText,
	"ts":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.View.Class}} · {{.View.Model}} · mlwatch</title>
<style>body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;max-width:1000px} td,th{text-align:left;padding:.2rem .6rem;border-bottom:1px solid #eee} .muted{color:#777}</style></head><body>
<p><a href="../">← mlwatch</a></p>
<h1>{{.View.Class}} <span class="muted">({{.View.Severity}}, {{.View.State}})</span></h1>
<p>{{.View.Summary}}</p>
{{.Chart}}
{{.Week}}
<table>
<tr><th>since</th><td>{{ts .View.Since}}{{with .View.Onset}} <span class="muted">(onset in the prediction log; active in this daemon since {{ts $.View.ActiveAt}})</span>{{end}}</td></tr>
<tr><th>model</th><td>{{.View.Model}}</td></tr>
<tr><th>slice</th><td>{{slice .View.Slice}}</td></tr>
{{with .View.Feature}}<tr><th>feature</th><td>{{.}}</td></tr>{{end}}
<tr><th>metric</th><td>{{.View.Metric}}: {{num .View.Value}} vs baseline {{num .View.Baseline}}</td></tr>
<tr><th>samples</th><td>{{.View.NCurrent}} now, {{.View.NBaseline}} in the baseline</td></tr>
{{if .HasP}}<tr><th>p-value</th><td>{{printf "%.3g" .P}}</td></tr>{{end}}
<tr><th>owner</th><td>{{.View.Owner}} → {{.View.Receiver}}</td></tr>
<tr><th>detector</th><td>{{.View.Detector}} ({{.View.Kind}})</td></tr>
{{with .View.CausedBy}}<tr><th>caused by</th><td><a href="{{.}}">{{$.CauseName}}</a></td></tr>{{end}}
{{range .View.Folded}}<tr><th>{{if eq .Detector $.View.Detector}}also moves{{else}}also seen by{{end}}</th><td>{{.Detector}} ({{.Severity}}), {{slice .Slice}}: {{.Metric}} {{num .Value}} vs baseline {{num .Baseline}}</td></tr>{{end}}
{{with .View.RunbookURL}}<tr><th>runbook</th><td><a href="{{.}}">{{.}}</a></td></tr>{{end}}
{{with .View.Ack}}<tr><th>acknowledged</th><td>acked by @{{.UserName}} at {{ts .At}}</td></tr>{{end}}
<tr><th>fingerprint</th><td><code>{{.View.Fingerprint}}</code></td></tr>
</table>
{{if .Explained}}<h2 id="explained">Explained by this alert ({{len .Explained}})</h2>
<p class="muted">Alerts this one's cause explains: they route with it and are not notified on their own.</p>
<table><tr><th>state</th><th>alert</th><th>value</th><th>baseline</th><th>since</th></tr>
{{range .Explained}}<tr><td>{{.State}}</td><td><a href="{{.Fingerprint}}">{{.Class}} · {{slice .Slice}}{{with .Feature}} · feature {{.}}{{end}} · {{.Metric}}</a></td><td>{{num .Value}}</td><td>{{num .Baseline}}</td><td>{{ts .ActiveAt}}</td></tr>{{end}}
</table>{{end}}
{{if .Actions}}<h2>Triage</h2><table><tr><th>when</th><th>action</th><th>by</th><th>via</th><th>detail</th></tr>
{{range .Actions}}<tr><td>{{ts .At}}</td><td>{{.Action}}</td><td>@{{.UserName}}</td><td>{{.Transport}}</td><td>{{.SilenceFor}} {{.Reason}}</td></tr>{{end}}
</table>{{end}}</body></html>
`))

func (s *server) alertPage(w http.ResponseWriter, r *http.Request) {
	fp := r.PathValue("fingerprint")
	for _, v := range s.opt.Alerts.Alerts() {
		if v.Fingerprint == fp {
			s.renderAlertPage(w, r, v)
			return
		}
	}
	if s.opt.StoredAlert != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		v, ok, err := s.opt.StoredAlert(ctx, fp)
		cancel()
		if err != nil {
			s.opt.Logger.Warn("stored alert not read", zap.String("fingerprint", fp), zap.Error(err))
		}
		if ok {
			s.renderAlertPage(w, r, v)
			return
		}
	}
	http.Error(w, "no alert with fingerprint "+fp+" (unknown, or resolved longer ago than global.evaluations_retention)", http.StatusNotFound)
}

// causeName is how a cause reads where it explains another alert:
// "feature_pipeline · feature amount_log · null_rate".
func causeName(v alerts.View) string {
	parts := []string{v.Class}
	if sl := sliceText(v.Slice); sl != "" {
		parts = append(parts, sl)
	}
	if v.Feature != "" {
		parts = append(parts, "feature "+v.Feature)
	}
	parts = append(parts, v.Metric)
	return strings.Join(parts, " · ")
}

// renderAlertPage writes an alert's page: its chart, figures and triage.
func (s *server) renderAlertPage(w http.ResponseWriter, r *http.Request, v alerts.View) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	card := s.card(r, v, 900)
	for _, o := range s.opt.Alerts.Alerts() {
		if o.CausedBy == v.Fingerprint && o.Fingerprint != v.Fingerprint {
			card.Explained = append(card.Explained, o)
		}
	}
	card.Week = s.alertChart(r, v, 900, chartWeek)
	if s.opt.Triage != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		card.Actions, _ = s.opt.Triage(ctx, v.ActiveAt.Add(-time.Second), v.Fingerprint)
		cancel()
	}
	if err := alertTmpl.Execute(w, card); err != nil {
		s.opt.Logger.Warn("alert page failed", zap.Error(err))
	}
}
