package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/store"
)

// readMeter sums the rows every query reads while it is on, by what the
// query is: a fill of partials, a late-row or fill count, a read of the
// fills table, or the evaluation's own query.
type readMeter struct {
	mu  sync.Mutex
	on  bool
	got incRead
}

// incRead is what one cycle read, by kind of query.
type incRead struct {
	fill, count, fills, eval uint64
	queries                  int
}

func (r incRead) total() uint64 { return r.fill + r.count + r.fills + r.eval }

func (m *readMeter) hook(ev store.QueryEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.on {
		return
	}
	m.got.queries++
	n := ev.Stats.RowsRead
	switch {
	case strings.HasPrefix(ev.SQL, "INSERT INTO"):
		m.got.fill += n
	case strings.Contains(ev.SQL, "count() AS rows FROM"):
		m.got.count += n
	case strings.Contains(ev.SQL, "argMax(rows, fill)"), strings.Contains(ev.SQL, "sum(rows) AS rows"):
		m.got.fills += n
	default:
		m.got.eval += n
	}
}

func (m *readMeter) start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.on, m.got = true, incRead{}
}

func (m *readMeter) stop() incRead {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.on = false
	return m.got
}

// incResult is what the incremental cycles measured at one size.
type incResult struct {
	cold, steady, whole  time.Duration // cold start and steady state (covered detectors), whole steady cycle
	coldRead, steadyRead incRead
	maxRead              uint64 // the most a steady cycle read (one with the late-row check)
	newest               uint64 // rows of the newest buckets the covered detectors' filters keep
	covered              []string
}

// incClock is the incremental evaluation's wall clock, set per cycle.
type incClock struct{ now time.Time }

func (c *incClock) Now() time.Time { return c.now }

// measureIncremental measures the cycle with incremental evaluation at T =
// evalAt + i·5m: a cold start (no partials) at evalAt - 5m, then reps
// steady-state cycles, each 5 minutes after the previous one with the
// partials a daemon running for days would hold (the baseline buckets
// filled when they were current: an unmeasured pass with the clock 5
// minutes earlier).
func measureIncremental(ctx context.Context, db *store.DB, meter *readMeter, database string, table store.Table, dets []*detectors.Detector, reps int) (incResult, error) {
	var out incResult
	partials := store.Table{Database: database, Name: "mlwatch_partials"}
	for _, def := range detectors.IncrementalTables(partials) {
		if err := db.Exec(ctx, "DROP TABLE IF EXISTS "+store.Table{Database: database, Name: def.Name}.Quoted()); err != nil {
			return out, err
		}
	}
	if err := store.Apply(ctx, db, database, detectors.IncrementalTables(partials)); err != nil {
		return out, err
	}
	clk := &incClock{}
	inc, err := detectors.NewIncremental(db, detectors.IncrementalOptions{Partials: partials, Now: clk.Now})
	if err != nil {
		return out, err
	}
	var covered []*detectors.Detector
	for _, d := range dets {
		if detectors.IncrementalCovers(d) {
			covered = append(covered, d)
			out.covered = append(out.covered, d.Config().Name)
		}
	}
	cycle := func(at, now time.Time, ds []*detectors.Detector) (time.Duration, error) {
		clk.now = now
		start := time.Now()
		for _, d := range ds {
			if _, err := inc.Evaluate(ctx, d, at); err != nil {
				return 0, fmt.Errorf("incremental %s at %s: %w", d.Config().Name, at.Format(time.RFC3339), err)
			}
		}
		return time.Since(start), nil
	}
	step := 5 * time.Minute
	meter.start()
	if out.cold, err = cycle(evalAt.Add(-step), evalAt.Add(-step), covered); err != nil {
		return out, err
	}
	out.coldRead = meter.stop()
	var steady, whole []time.Duration
	for i := 0; i <= reps; i++ {
		at := evalAt.Add(time.Duration(i) * step)
		if _, err := cycle(at, at.Add(-step), covered); err != nil { // the days before
			return out, err
		}
		meter.start()
		el, err := cycle(at, at, covered)
		got := meter.stop()
		if err != nil {
			return out, err
		}
		out.maxRead = max(out.maxRead, got.total())
		// The detectors it does not cover, as the daemon runs them.
		start := time.Now()
		for _, d := range dets {
			if !detectors.IncrementalCovers(d) {
				if _, err := d.Evaluate(ctx, db, at); err != nil {
					return out, err
				}
			}
		}
		if i == 0 {
			out.steadyRead = got
			if out.newest, err = newestRows(ctx, db, table, covered, at, at.Add(-15*time.Minute)); err != nil {
				return out, err
			}
			continue // warm-up
		}
		steady = append(steady, el)
		whole = append(whole, el+time.Since(start))
	}
	out.steady, out.whole = median(steady), median(whole)
	return out, nil
}

// newestRows counts the rows of [from, at) each covered detector's filter
// keeps (both roles for block_rate, production for the others): what a
// cycle that reads each row once must read, the bucket that closed and
// the open ones.
func newestRows(ctx context.Context, db *store.DB, table store.Table, covered []*detectors.Detector, at, from time.Time) (uint64, error) {
	res, err := db.Query(ctx, "SELECT count() AS a, countIf(role = 'production') AS p FROM "+table.Quoted()+
		" WHERE ts >= ? AND ts < ? AND model = 'fraud'", from, at)
	if err != nil {
		return 0, err
	}
	all, prod := uint64(store.Int(res.Rows[0][0])), uint64(store.Int(res.Rows[0][1]))
	var n uint64
	for _, d := range covered {
		if d.Config().Kind == "block_rate" {
			n += all
		} else {
			n += prod
		}
	}
	return n, nil
}

func printIncremental(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| rows | cold-start cycle | rows read, cold | steady cycle (covered) | steady whole cycle | rows read/steady cycle | of which fills, counts, fills table, evaluation | newest rows | read/newest | most read by a steady cycle |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		x := r.inc
		if x.cold == 0 {
			continue
		}
		s := x.steadyRead
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %d | %d, %d, %d, %d | %d | %.2f | %d |\n", r.label, ms(x.cold), x.coldRead.total(), ms(x.steady), ms(x.whole),
			s.total(), s.fill, s.count, s.fills, s.eval, x.newest, float64(s.total())/float64(max(x.newest, 1)), x.maxRead)
	}
	for _, r := range rows {
		if r.inc.cold > 0 {
			fmt.Fprintf(w, "\n%s incremental covers: %s\n", r.label, strings.Join(r.inc.covered, ", "))
			break
		}
	}
}
