package detectors

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Incremental evaluation: read each row once.
//
// A detector kind whose query is one aggregation of the rows into additive
// columns (counts) per key and window, then a pure function of those
// (partialKind: block_rate, volume, expectation), is evaluated from
// per-bucket partial aggregates: the same aggregation grouped by time
// bucket (Bucket, default 5 minutes) instead of window. A bucket is closed
// once it ended EvalDelay + LateMargin before now; a closed bucket is
// computed once, by an INSERT ... SELECT inside ClickHouse into the
// partials table, and every later evaluation whose windows cover it reads
// its partials instead of its rows. A bucket not yet closed (the newest
// minutes of the current window) is filled provisionally, in the same
// INSERT, by every evaluation that reads it: its newer fill supersedes the
// older one, and the first fill after it closed is final. So a cycle reads
// the newest rows once, in its one fill, and the evaluation reads partials
// only; rows only for window edges that do not fall on bucket boundaries,
// merged with the same GROUP BY the raw level has, so the rest of the
// query, and every figure, is the raw query's.
//
// The partials are keyed by a hash of the fill query (table, columns,
// model, slices, matchers, bucket size): any config change that changes
// what a bucket holds starts a new key, while thresholds, windows and
// baselines, which only read the buckets, keep theirs (two detectors that
// aggregate alike share them). A fills table records each bucket's fill
// with the rows it counted and whether it is provisional; readers take
// each bucket's newest fill. Late
// rows: every RecheckEvery, the buckets of the last Recheck are counted
// again (a count over the primary key's columns) and a bucket whose count
// changed is filled anew. Rows later than that are not seen.

// IncrementalOptions configure incremental evaluation.
type IncrementalOptions struct {
	// Partials is the table of partial aggregates; its fills table is
	// Partials + "_fills" (IncrementalTables).
	Partials store.Table
	// Bucket is the time bucket (default 5m); it must divide a day.
	Bucket time.Duration
	// LateMargin is how long after eval_delay a bucket may still receive
	// rows before it is closed (default 10m).
	LateMargin time.Duration
	// Recheck is how far back closed buckets are re-counted for late rows
	// (default 6h), every RecheckEvery (default 30m).
	Recheck      time.Duration
	RecheckEvery time.Duration
	// Now is the wall clock (default time.Now): which buckets are closed
	// depends on when rows arrive, not on the evaluation time.
	Now func() time.Time
	// Keep, when set, is the oldest bucket any evaluation may read at
	// now: Clean drops the days before it.
	Keep func(now time.Time) time.Time
}

// Incremental evaluates detectors from partial aggregates of closed
// buckets (see above); kinds without a partial form, and rollup sources,
// are evaluated as usual.
type Incremental struct {
	db  store.Store
	opt IncrementalOptions

	mu      sync.Mutex
	locks   map[uint64]*sync.Mutex // one fill at a time per key
	checked map[uint64]time.Time   // last late-row check per key
	cleaned time.Time              // last Clean that looked
	fillIDs store.Versions         // a new fill's id
}

// partialVersion changes when the partials' layout or meaning changes.
const partialVersion = "partials/v2"

// NewIncremental checks opt and fills its defaults.
func NewIncremental(db store.Store, opt IncrementalOptions) (*Incremental, error) {
	if opt.Partials.Name == "" {
		return nil, fmt.Errorf("incremental: partials: table name is empty")
	}
	if err := store.ValidateIdent(opt.Partials.Name); err != nil {
		return nil, fmt.Errorf("incremental: partials: %w", err)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&opt.Bucket, 5*time.Minute)
	def(&opt.LateMargin, 10*time.Minute)
	def(&opt.Recheck, 6*time.Hour)
	def(&opt.RecheckEvery, 30*time.Minute)
	switch {
	case opt.Bucket < time.Minute || opt.Bucket%time.Minute != 0 || (24*time.Hour)%opt.Bucket != 0:
		return nil, fmt.Errorf("incremental: bucket %s must be whole minutes that divide a day", opt.Bucket)
	case opt.LateMargin < 0:
		return nil, fmt.Errorf("incremental: late_margin %s is negative", opt.LateMargin)
	case opt.Recheck < 0 || opt.RecheckEvery < 0:
		return nil, fmt.Errorf("incremental: recheck %s and recheck_every %s may not be negative", opt.Recheck, opt.RecheckEvery)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Incremental{db: db, opt: opt, locks: map[uint64]*sync.Mutex{}, checked: map[uint64]time.Time{}}, nil
}

// partialsEngine is the engine of both tables: by day (Clean drops whole
// days) and (hash, bucket), in granules of 256 rows, not 8,192: a window
// reads a few dozen rows per bucket of one key, and the default granule
// would make each of its ranges read a whole day's partials of every key.
const partialsEngine = "MergeTree PARTITION BY toYYYYMMDD(bucket) ORDER BY (hash, bucket) SETTINGS index_granularity = 256"

// IncrementalTables are the partials table and its fills table, for
// store.Apply.
func IncrementalTables(partials store.Table) []store.TableDef {
	return []store.TableDef{
		{Name: partials.Name, Columns: [][2]string{
			{"hash", "UInt64"}, {"bucket", "DateTime"}, {"fill", "UInt64"},
			{"keys", "Array(String)"}, {"rows", "UInt64"}, {"sub", "Array(UInt64)"}, {"sums", "Array(Array(UInt64))"},
		}, Engine: partialsEngine},
		{Name: partials.Name + "_fills", Columns: [][2]string{
			{"hash", "UInt64"}, {"bucket", "DateTime"}, {"fill", "UInt64"}, {"rows", "UInt64"},
			{"detector", "String"}, {"filled_at", "DateTime"},
			// provisional: the bucket was not closed when it was filled;
			// the next evaluation that reads it fills it again.
			{"provisional", "UInt8"},
		}, Engine: partialsEngine},
	}
}

// partialKind is a kind whose query is outer(level(window, spans)): level
// one aggregation of the rows per keys and window w into the additive
// columns sums (UInt64 counts).
type partialKind interface {
	kind
	partial() partialSpec
}

// partialSpec is a kind's query split at its aggregation of the rows.
type partialSpec struct {
	keys []pcol   // level's group keys besides w and sub, with their types
	sums []string // level's additive UInt64 columns
	// sub, when set, is a UInt64 group key of the level (block_rate's
	// score bin) stored as an array in the partials row of the other
	// keys, with the sums of each of its values: one partials row per
	// bucket and slice value, not per bin.
	sub string
	// counted selects the level rows whose _rows (count(), with level's
	// rows set) add up to the rows of a bucket: the aggregate slice, one
	// of the roles a row is expanded into.
	counted string
	// allRoles and extra are the level's row filter (source.filter), for
	// the late-row counts.
	allRoles bool
	extra    func(*sqlText)
	// windows, when set, are the windows the kind's query reads of an
	// evaluation's (the expectation reads only the current one).
	windows func(w windows) windows
	// level aggregates the rows of spans, w rendered by win, adding
	// count() AS _rows when rows is set; outer is the rest of the query
	// over level's rows.
	level func(win func(*sqlText), spans []span, rows bool) *sqlText
	outer func(level *sqlText) *sqlText
}

// pcol is a column of a partial level and its ClickHouse type.
type pcol struct{ name, typ string }

// IncrementalCovers reports whether d is evaluated incrementally (its kind
// has a partial form and it reads the table, not the rollup).
func IncrementalCovers(d *Detector) bool {
	_, ok := d.impl.(partialKind)
	return ok && d.cfg.Source != configs.SourceRollup
}

// Evaluate is d.Evaluate from the partials of closed buckets and the rows
// of the rest; the findings and evaluations are the raw query's.
func (c *Incremental) Evaluate(ctx context.Context, d *Detector, at time.Time) (*Result, error) {
	pk, ok := d.impl.(partialKind)
	if !ok || d.cfg.Source == configs.SourceRollup {
		return d.Evaluate(ctx, c.db, at)
	}
	spec := pk.partial()
	full := newWindows(d.cfg, at)
	w := full
	if spec.windows != nil {
		w = spec.windows(w)
	}
	p := c.plan(d, w)
	if len(p.cached)+len(p.open) == 0 {
		return d.Evaluate(ctx, c.db, at)
	}
	key, err := c.key(d, spec)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", d.cfg.Kind, d.cfg.Name, err)
	}
	if err := c.ensure(ctx, d, spec, key, p); err != nil {
		res := &Result{Detector: d.cfg.Name, Kind: d.cfg.Kind, Model: d.model.Name, At: w.at, WindowStart: w.cur.from, WindowEnd: w.cur.to}
		return res, fmt.Errorf("%s %s: partials: %w", d.cfg.Kind, d.cfg.Name, err)
	}
	return d.evaluateSQL(ctx, c.db, full, spec.outer(c.merged(newSource(d), spec, key, w, p)))
}

// plan is what one evaluation reads: the whole buckets inside its windows,
// closed (cached) and not (open), both from the partials, and the time
// ranges it reads rows for (edges off the bucket grid).
type plan struct {
	cached []time.Time
	open   []time.Time
	raw    []span
	closed time.Time // buckets before it are closed
}

// buckets are the plan's cached and open buckets, sorted.
func (p plan) buckets() []time.Time {
	out := append(append(make([]time.Time, 0, len(p.cached)+len(p.open)), p.cached...), p.open...)
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// plan splits each window into whole buckets, closed or open, and edges.
func (c *Incremental) plan(d *Detector, w windows) plan {
	b := c.opt.Bucket
	p := plan{closed: c.closed(d)}
	for _, sp := range w.all() {
		first := sp.from.Truncate(b)
		if first.Before(sp.from) {
			first = first.Add(b)
		}
		last := sp.to.Truncate(b)
		if !first.Before(last) {
			p.raw = append(p.raw, sp)
			continue
		}
		for t := first; t.Before(last); t = t.Add(b) {
			if t.Before(p.closed) {
				p.cached = append(p.cached, t)
			} else {
				p.open = append(p.open, t)
			}
		}
		if sp.from.Before(first) {
			p.raw = append(p.raw, span{sp.from, first})
		}
		if last.Before(sp.to) {
			p.raw = append(p.raw, span{last, sp.to})
		}
	}
	p.raw = mergeSpans(p.raw)
	sort.Slice(p.open, func(i, j int) bool { return p.open[i].Before(p.open[j]) })
	p.open = slices.Compact(p.open)
	return p
}

// closed is the end of d's closed buckets now: a bucket that ended
// EvalDelay + LateMargin ago gets no more rows.
func (c *Incremental) closed(d *Detector) time.Time {
	return c.opt.Now().UTC().Add(-d.cfg.EvalDelay.D() - c.opt.LateMargin).Truncate(c.opt.Bucket)
}

// mergeSpans sorts spans and joins those that touch.
func mergeSpans(in []span) []span {
	sort.Slice(in, func(i, j int) bool { return in[i].from.Before(in[j].from) })
	var out []span
	for _, sp := range in {
		if n := len(out); n > 0 && !sp.from.After(out[n-1].to) {
			if sp.to.After(out[n-1].to) {
				out[n-1].to = sp.to
			}
			continue
		}
		out = append(out, sp)
	}
	return out
}

// bucketSpans joins buckets (sorted) into time ranges.
func (c *Incremental) bucketSpans(buckets []time.Time) []span {
	out := make([]span, 0, len(buckets))
	for _, t := range buckets {
		out = append(out, span{t, t.Add(c.opt.Bucket)})
	}
	return mergeSpans(out)
}

// bucketExpr renders the bucket of a row's time.
func (c *Incremental) bucketExpr(s source) func(*sqlText) {
	n := int64(c.opt.Bucket / time.Second)
	return func(q *sqlText) {
		q.add(fmt.Sprintf("toDateTime(intDiv(toUInt32(%s), %d) * %d)", s.ts(), n, n))
	}
}

// key is the partials' key of d: a hash of its fill query over a fixed
// span, so whatever changes what a bucket holds changes the key.
func (c *Incremental) key(d *Detector, spec partialSpec) (uint64, error) {
	epoch := time.Unix(0, 0).UTC()
	text, err := c.fillSQL(newSource(d), spec, 0, 0, []span{{epoch, epoch.Add(c.opt.Bucket)}}).bind()
	if err != nil {
		return 0, err
	}
	h := fnv.New64a()
	h.Write([]byte(partialVersion + "\n" + text))
	return h.Sum64() >> 1, nil // fits Int64 as well, for any client
}

// fillSQL renders the INSERT ... SELECT of the partials of spans: one row
// per bucket and keys, the sub key's values and their sums as arrays, and
// the rows of the bucket it counts (see counted).
func (c *Incremental) fillSQL(s source, spec partialSpec, key, fill uint64, spans []span) *sqlText {
	q := &sqlText{}
	q.add("INSERT INTO " + c.opt.Partials.Quoted() + " (hash, bucket, fill, keys, rows, sub, sums)\n")
	q.add(fmt.Sprintf("SELECT toUInt64(%d), w, toUInt64(%d), [", key, fill))
	group := []string{"w"}
	for i, k := range spec.keys {
		if i > 0 {
			q.add(", ")
		}
		q.add("toString(" + k.name + ")")
		group = append(group, k.name)
	}
	sub := "0"
	if spec.sub != "" {
		sub = spec.sub
	}
	q.add("], toUInt64(sumIf(_rows, " + spec.counted + ")), groupArray(toUInt64(" + sub + ")), groupArray([")
	for i, v := range spec.sums {
		if i > 0 {
			q.add(", ")
		}
		q.add("toUInt64(" + v + ")")
	}
	q.add("])\nFROM (\n")
	q.addQuery(spec.level(c.bucketExpr(s), spans, true))
	q.add("\n)\nGROUP BY " + strings.Join(group, ", "))
	return q
}

// lock returns the mutex of key.
func (c *Incremental) lock(key uint64) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.locks[key]
	if l == nil {
		l = &sync.Mutex{}
		c.locks[key] = l
	}
	return l
}

// ensure fills, in one INSERT, the closed buckets of p that have no final
// fill yet (none, or a provisional one made before they closed), every
// open bucket of p (provisionally), and, when due, the recent buckets
// whose row count changed (late rows).
func (c *Incremental) ensure(ctx context.Context, d *Detector, spec partialSpec, key uint64, p plan) error {
	l := c.lock(key)
	l.Lock()
	defer l.Unlock()
	have, err := c.fills(ctx, key, c.bucketSpans(p.cached))
	if err != nil {
		return err
	}
	todo := map[time.Time]bool{}
	for _, t := range p.cached {
		if f, ok := have[t]; !ok || f.provisional {
			todo[t] = true
		}
	}
	for _, t := range p.open {
		todo[t] = true
	}
	late, err := c.recheck(ctx, d, spec, key)
	if err != nil {
		return err
	}
	for _, t := range late {
		todo[t] = true
	}
	if len(todo) == 0 {
		return nil
	}
	buckets := make([]time.Time, 0, len(todo))
	for t := range todo {
		buckets = append(buckets, t)
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].Before(buckets[j]) })
	return c.fill(ctx, d, spec, key, buckets, p.closed)
}

// fillRec is a bucket's newest fill: the rows it counted, and whether the
// bucket was open when it was filled.
type fillRec struct {
	rows        uint64
	provisional bool
}

// fills returns the newest fill of each bucket of key inside spans.
func (c *Incremental) fills(ctx context.Context, key uint64, spans []span) (map[time.Time]fillRec, error) {
	q := &sqlText{}
	q.add("SELECT bucket, argMax(rows, fill) AS rows, argMax(provisional, fill) AS provisional FROM " + c.fillsTable().Quoted())
	q.add(fmt.Sprintf(" PREWHERE hash = %d AND ", key))
	bucketRanges(q, spans)
	q.add(" GROUP BY bucket")
	res, err := c.query(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make(map[time.Time]fillRec, len(res.Rows))
	for _, row := range res.Rows {
		out[store.Time(row[0]).UTC()] = fillRec{uint64(store.Int(row[1])), store.Int(row[2]) != 0}
	}
	return out, nil
}

// query binds and runs q.
func (c *Incremental) query(ctx context.Context, q *sqlText) (*store.Result, error) {
	sql, err := q.bind()
	if err != nil {
		return nil, err
	}
	return c.db.Query(ctx, sql)
}

func (c *Incremental) fillsTable() store.Table {
	return store.Table{Database: c.opt.Partials.Database, Name: c.opt.Partials.Name + "_fills"}
}

// bucketRows runs q, whose rows are (bucket, row count), into a map.
func (c *Incremental) bucketRows(ctx context.Context, q *sqlText) (map[time.Time]uint64, error) {
	res, err := c.query(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make(map[time.Time]uint64, len(res.Rows))
	for _, row := range res.Rows {
		out[store.Time(row[0]).UTC()] = uint64(store.Int(row[1]))
	}
	return out, nil
}

// bucketRanges renders (bucket in any of spans).
func bucketRanges(q *sqlText, spans []span) {
	q.add("(")
	for i, sp := range spans {
		if i > 0 {
			q.add(" OR ")
		}
		q.add("(bucket >= ? AND bucket < ?)", sp.from, sp.to)
	}
	q.add(")")
}

// counts returns the rows the level of d reads per bucket of spans: the
// late-row check compares them with the fills'.
func (c *Incremental) counts(ctx context.Context, d *Detector, spec partialSpec, spans []span) (map[time.Time]uint64, error) {
	s := newSource(d)
	q := &sqlText{}
	q.add("SELECT ")
	c.bucketExpr(s)(q)
	q.add(" AS bucket, count() AS rows FROM " + s.table)
	s.filter(q, spans, spec.allRoles)
	if spec.extra != nil {
		spec.extra(q)
	}
	q.add(" GROUP BY bucket")
	return c.bucketRows(ctx, q)
}

// recheck, at most every RecheckEvery per key, counts the rows of the
// filled buckets of the last Recheck and returns those whose count
// changed since their fill.
func (c *Incremental) recheck(ctx context.Context, d *Detector, spec partialSpec, key uint64) ([]time.Time, error) {
	now := c.opt.Now()
	c.mu.Lock()
	last, seen := c.checked[key]
	c.mu.Unlock()
	if c.opt.Recheck == 0 || (seen && now.Sub(last) < c.opt.RecheckEvery) {
		return nil, nil
	}
	closed := c.closed(d)
	sp := []span{{closed.Add(-c.opt.Recheck), closed}}
	have, err := c.fills(ctx, key, sp)
	if err != nil {
		return nil, err
	}
	var late []time.Time
	if len(have) > 0 {
		rows, err := c.counts(ctx, d, spec, sp)
		if err != nil {
			return nil, err
		}
		for t, f := range have {
			if rows[t] != f.rows {
				late = append(late, t)
			}
		}
	}
	c.mu.Lock()
	c.checked[key] = now
	c.mu.Unlock()
	return late, nil
}

// fill computes the partials of buckets (sorted) inside ClickHouse, with
// each bucket's row count in the same read of the rows, and records the
// fills with the counts read back from the partials written, provisional
// for the buckets from closed on.
func (c *Incremental) fill(ctx context.Context, d *Detector, spec partialSpec, key uint64, buckets []time.Time, closed time.Time) error {
	spans := c.bucketSpans(buckets)
	id := c.fillIDs.Next() // wall-clock ns, increasing: a bucket's newest fill wins
	sql, err := c.fillSQL(newSource(d), spec, key, id, spans).bind()
	if err != nil {
		return err
	}
	if err := c.db.Exec(ctx, sql); err != nil {
		return err
	}
	q := &sqlText{}
	q.add("SELECT bucket, sum(rows) AS rows FROM " + c.opt.Partials.Quoted())
	q.add(fmt.Sprintf(" PREWHERE hash = %d AND ", key))
	bucketRanges(q, spans)
	q.add(fmt.Sprintf(" WHERE fill = %d GROUP BY bucket", id))
	rows, err := c.bucketRows(ctx, q)
	if err != nil {
		return err
	}
	filled := c.opt.Now().UTC().Truncate(time.Second)
	out := make([][]any, len(buckets))
	for i, t := range buckets {
		provisional := uint8(0)
		if !t.Before(closed) {
			provisional = 1
		}
		out[i] = []any{key, t, id, rows[t], d.cfg.Name, filled, provisional}
	}
	return c.db.Insert(ctx, c.fillsTable(), []string{"hash", "bucket", "fill", "rows", "detector", "filled_at", "provisional"}, out)
}

// merged renders the level of the evaluation's query from both sources:
// the partials of the plan's buckets (each bucket's newest fill, its sub
// key's arrays joined back into rows, w by the window that holds it) and
// the raw level over p.raw, summed per key and window as the raw level
// sums rows.
func (c *Incremental) merged(s source, spec partialSpec, key uint64, w windows, p plan) *sqlText {
	cols := make([]string, 0, len(spec.keys)+2+len(spec.sums))
	for _, k := range spec.keys {
		cols = append(cols, k.name)
	}
	if spec.sub != "" {
		cols = append(cols, spec.sub)
	}
	cols = append(cols, "w")
	q := &sqlText{}
	q.add("      SELECT " + strings.Join(cols, ", "))
	for _, v := range spec.sums {
		q.add(", sum(" + v + ") AS " + v)
	}
	q.add("\n      FROM (\n        SELECT ")
	for i, k := range spec.keys {
		q.add(fmt.Sprintf("CAST(keys[%d] AS %s) AS %s, ", i+1, k.typ, k.name))
	}
	if spec.sub != "" {
		q.add("_sub AS " + spec.sub + ", ")
	}
	q.add("multiIf(")
	for i, sp := range w.all() {
		q.add("bucket >= ? AND bucket < ?, ", sp.from, sp.to)
		q.add(fmt.Sprintf("%d, ", i))
	}
	q.add("255) AS w")
	for i, v := range spec.sums {
		q.add(fmt.Sprintf(", _sums[%d] AS %s", i+1, v))
	}
	cached := c.bucketSpans(p.buckets())
	q.add("\n        FROM (SELECT bucket, keys, sub, sums FROM " + c.opt.Partials.Quoted() + fmt.Sprintf(" PREWHERE hash = %d AND ", key))
	bucketRanges(q, cached)
	q.add("\n          WHERE (bucket, fill) IN (SELECT bucket, max(fill) FROM " + c.fillsTable().Quoted() + fmt.Sprintf(" PREWHERE hash = %d AND ", key))
	bucketRanges(q, cached)
	q.add(" GROUP BY bucket))\n        ARRAY JOIN sub AS _sub, sums AS _sums")
	if len(p.raw) > 0 {
		q.add("\n        UNION ALL\n        SELECT " + strings.Join(append(cols, spec.sums...), ", ") + "\n        FROM (\n")
		q.addQuery(spec.level(s.windowOf(w), p.raw, false))
		q.add("\n        )")
	}
	q.add("\n      )\n      GROUP BY " + strings.Join(cols, ", "))
	return q
}
