package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/store"
)

const silenceUsage = `usage:
  mlwatch silence add    --config FILE --comment TEXT [--author NAME] [--start RFC3339] [--duration 2h | --end RFC3339] [--url URL] matcher...
  mlwatch silence list   --config FILE [--all] [--format text|json] [--url URL]
  mlwatch silence expire --config FILE [--url URL] ID...
matchers: name=value, name!=value, name=~regex, name!~regex (e.g. model=fraud class=model_behavior country=~"FR|BE")`

// silenceCmd is `mlwatch silence add|list|expire`: silences stored in
// ClickHouse. Each goes through the running daemon's API when one answers
// at --url or server.listen_address (the embedded engine lets one
// process hold its data path), else to the table directly, which the
// daemon picks up at its next evaluation.
func silenceCmd(ctx context.Context, c *cli, args []string) int {
	return c.subcommand(ctx, "silence", silenceUsage, args, map[string]func(context.Context, *cli, []string) int{
		"add": silenceAdd, "list": silenceList, "expire": silenceExpire,
	})
}

// silenceStore opens the silences table, creating it if missing.
func silenceStore(ctx context.Context, c *cli, f *flags) (*alerts.Silences, func(), int) {
	cfg, _, db, code := c.setup(ctx, f)
	if code != 0 {
		return nil, nil, code
	}
	t := tablesOf(cfg)
	var defs []store.TableDef
	for _, d := range alerts.TableDefs(t) {
		if d.Name == t.Silences().Name {
			defs = append(defs, d)
		}
	}
	if err := store.Apply(ctx, db, t.Database, defs); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch silence: %v\n", err)
		db.Close()
		return nil, nil, 1
	}
	return alerts.NewSilences(db, t), func() { db.Close() }, 0
}

func silenceAdd(ctx context.Context, c *cli, args []string) int {
	f := newFlags("silence add", c)
	comment := f.String("comment", "", "why (required)")
	author := f.String("author", "", "who (default: $USER)")
	start := f.String("start", "", "start time, RFC3339 (default: now)")
	end := f.String("end", "", "end time, RFC3339")
	duration := f.duration("duration", 2*time.Hour, 0, "length, e.g. 30m, 2h, 1d (ignored with --end)")
	f.daemon("the silence is stored directly")
	if code, ok := f.parse(args); !ok {
		return code
	}
	matchers, err := alerts.ParseMatchers(f.Args())
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch silence add: %v\n", err)
		return 2
	}
	now := time.Now().UTC().Truncate(time.Second)
	s := alerts.Silence{Matchers: matchers, StartsAt: now, Comment: *comment, CreatedBy: *author}
	if s.CreatedBy == "" {
		s.CreatedBy, _ = c.env("USER")
	}
	if *start != "" {
		if s.StartsAt, err = time.Parse(time.RFC3339, *start); err != nil {
			fmt.Fprintf(c.stderr, "mlwatch silence add: --start: %v\n", err)
			return 2
		}
	}
	if *end != "" {
		if s.EndsAt, err = time.Parse(time.RFC3339, *end); err != nil {
			fmt.Fprintf(c.stderr, "mlwatch silence add: --end: %v\n", err)
			return 2
		}
	} else {
		s.EndsAt = s.StartsAt.Add(*duration)
	}
	if err := s.Validate(); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch silence add: %v\n", err)
		return 2
	}
	// A running daemon owns the tables (the embedded engine locks its
	// data path): go through its API, and say what the silence mutes.
	if cfg, ok := c.load(*f.config); ok {
		api := f.api(cfg)
		current, err := api.daemonAlerts(ctx)
		switch {
		case err == nil:
			s.Matchers = readObviousForms(s.Matchers, current, c.stderr)
			describeMatches(c.stderr, s, current)
			ms := make([]string, len(s.Matchers))
			for i, m := range s.Matchers {
				ms[i] = m.String()
			}
			var added alerts.Silence
			if err := api.postJSON(ctx, "/api/v1/silences", map[string]any{"matchers": ms, "starts_at": s.StartsAt, "ends_at": s.EndsAt,
				"created_by": s.CreatedBy, "comment": s.Comment}, &added); err != nil {
				fmt.Fprintf(c.stderr, "mlwatch silence add: through the running daemon at %s: %v\n", api.base, err)
				return 1
			}
			fmt.Fprintln(c.stdout, added.ID)
			return 0
		case !api.bypassed(err):
			fmt.Fprintf(c.stderr, "mlwatch silence add: %v\n", err)
			return 1
		}
	}
	ss, done, code := silenceStore(ctx, c, f)
	if code != 0 {
		return code
	}
	defer done()
	added, err := ss.Add(ctx, s, now)
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch silence add: %v\n", err)
		return 1
	}
	fmt.Fprintln(c.stdout, added.ID)
	return 0
}

// silenceRow is a silence with its state, as the daemon's API lists it.
type silenceRow struct {
	alerts.Silence
	State string `json:"state"`
}

func silenceList(ctx context.Context, c *cli, args []string) int {
	f := newFlags("silence list", c)
	all := f.Bool("all", false, "include expired silences")
	format := f.format("")
	f.daemon("the table is read directly")
	if code, ok := f.parse(args); !ok {
		return code
	}
	// A running daemon owns the tables (the embedded engine locks its
	// data path): ask its API first.
	var rows []silenceRow
	cfg, ok := c.load(*f.config)
	if !ok {
		return 1
	}
	api := f.api(cfg)
	err := api.get(ctx, "/api/v1/silences", &rows)
	switch {
	case err == nil:
	case !api.bypassed(err):
		fmt.Fprintf(c.stderr, "mlwatch silence list: through the running daemon at %s: %v\n", api.base, err)
		return 1
	default:
		ss, done, code := silenceStore(ctx, c, f)
		if code != 0 {
			return code
		}
		defer done()
		list, err := ss.List(ctx)
		if err != nil {
			fmt.Fprintf(c.stderr, "mlwatch silence list: %v\n", err)
			return 1
		}
		now := time.Now()
		for _, s := range list {
			rows = append(rows, silenceRow{s, s.State(now)})
		}
	}
	printSilences(c, rows, *all, *format)
	return 0
}

// printSilences writes silences as a table or one JSON object a line;
// expired ones only with all.
func printSilences(c *cli, rows []silenceRow, all bool, format string) {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	if format == "text" {
		fmt.Fprintln(tw, "ID\tSTATE\tMATCHERS\tSTARTS\tENDS\tAUTHOR\tCOMMENT")
	}
	for _, r := range rows {
		if r.State == alerts.SilenceExpired && !all {
			continue
		}
		if format == "json" {
			b, _ := json.Marshal(r)
			fmt.Fprintln(c.stdout, string(b))
			continue
		}
		ms := make([]string, len(r.Matchers))
		for i, m := range r.Matchers {
			ms[i] = m.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, strings.Join(ms, " "),
			r.StartsAt.UTC().Format(time.RFC3339), r.EndsAt.UTC().Format(time.RFC3339), r.CreatedBy, r.Comment)
	}
	tw.Flush()
}

func silenceExpire(ctx context.Context, c *cli, args []string) int {
	f := newFlags("silence expire", c)
	f.daemon("the table is written directly")
	// Through the running daemon when one answers (it needs the API
	// token, server.api_token_env), else on the table directly.
	api, code, ok := f.parseIDs(c, args, "give the silence IDs to expire")
	if !ok {
		return code
	}
	expire := func(id string) error {
		return api.call(ctx, http.MethodDelete, "/api/v1/silences/"+url.PathEscape(id), nil)
	}
	if err := api.get(ctx, "/api/v1/silences", nil); err != nil {
		if !api.bypassed(err) {
			fmt.Fprintf(c.stderr, "mlwatch silence expire: through the running daemon at %s: %v\n", api.base, err)
			return 1
		}
		ss, done, code := silenceStore(ctx, c, f)
		if code != 0 {
			return code
		}
		defer done()
		expire = func(id string) error {
			_, err := ss.Expire(ctx, id, time.Now().UTC().Truncate(time.Second))
			return err
		}
	}
	failed := 0
	for _, id := range f.Args() {
		if err := expire(id); err != nil {
			fmt.Fprintf(c.stderr, "mlwatch silence expire: %s: %v\n", id, err)
			failed++
			continue
		}
		fmt.Fprintf(c.stdout, "expired %s\n", id)
	}
	if failed > 0 {
		return 1
	}
	return 0
}
