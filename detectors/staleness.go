package detectors

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// staleness reports when the newest model version serving production in
// the window was deployed (the deploy-time column) or first seen longer
// than max_age ago: nobody shipped a fresh model (model_staleness).
type staleness struct{ base[configs.StalenessParams] }

// MetricVersionAge is the serving version's age in seconds.
const MetricVersionAge = "version_age_seconds"

func newStaleness(d *Detector) (kind, error) {
	return newKind(d, configs.KindStaleness, d.cfg.Staleness, func(b base[configs.StalenessParams]) kind { return &staleness{b} })
}

// probe is the window max_age before the current one: a version that
// served then and still serves now is at least max_age old. Reading just
// these two windows keeps the query as cheap as any other detector's
// however long max_age is (a full first-seen scan would read months).
func (s *staleness) probe(w windows) span {
	return span{w.cur.from.Add(-s.p.MaxAge.D()), w.cur.to.Add(-s.p.MaxAge.D())}
}

func (s *staleness) query(w windows) *sqlText {
	src := s.src
	c := src.m.Columns
	p := s.probe(w)
	ts := src.ts()
	q := &sqlText{}
	q.add("SELECT toString(" + src.col(c.ModelVersion) + ") AS version, min(" + ts + ") AS first, ")
	if c.DeployedAt != "" {
		q.add("max(" + src.col(c.DeployedAt) + ") AS deployed, ")
	} else {
		q.add("toDateTime(0) AS deployed, ")
	}
	q.add("countIf("+ts+" >= ? AND "+ts+" < ?) AS n, ", w.cur.from, w.cur.to)
	q.add("countIf("+ts+" >= ? AND "+ts+" < ?) AS old FROM "+src.table, p.from, p.to)
	src.filter(q, []span{p, w.cur}, false)
	q.add(" GROUP BY version ORDER BY version")
	return q
}

func (s *staleness) evaluate(res *store.Result, r *run) error {
	c, err := cols(res, "version", "first", "deployed", "n", "old")
	if err != nil {
		return err
	}
	deploy := s.src.m.Columns.DeployedAt != ""
	// The newest serving version: the latest deploy time, or the one
	// first seen last (a version absent from the probe is newer than any
	// present in it).
	var version string
	var since time.Time
	var n float64
	var serving []string
	for _, row := range res.Rows {
		if store.Float(row[c[3]]) <= 0 {
			continue
		}
		v := store.Str(row[c[0]])
		serving = append(serving, v)
		t := store.Time(row[c[1]])
		if deploy {
			t = store.Time(row[c[2]])
		}
		if version == "" || t.After(since) {
			version, since, n = v, t, store.Float(row[c[3]])
		}
	}
	if version == "" {
		r.skipped++
		return nil
	}
	age := r.w.at.Sub(since)
	h := newHyp(MetricVersionAge, map[string]string{}, "", ClassModelStaleness)
	h.Value, h.Baseline, h.BaselineHigh = age.Seconds(), s.p.MaxAge.D().Seconds(), s.p.MaxAge.D().Seconds()
	h.effect = h.Value - h.Baseline
	h.NCurrent = uint64(n)
	h.gate = age > s.p.MaxAge.D()
	how := "deployed"
	if !deploy {
		how = "serving since at least"
	}
	h.summary = fmt.Sprintf("newest serving model version %s was %s %s ago (max age %s; serving now: %s)",
		version, how, days(age), s.p.MaxAge, strings.Join(serving, ", "))
	r.add(h)
	return nil
}

func days(d time.Duration) string {
	return fmt.Sprintf("%.1fd", math.Floor(d.Hours()/24*10)/10)
}

func (s *staleness) spans(w windows) []span { return []span{s.probe(w), w.cur} }
