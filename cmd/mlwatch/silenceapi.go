package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"syscall"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
)

// errNoDaemon says no daemon answers at the configured address: the CLI
// then works on the tables directly.
var errNoDaemon = errors.New("no daemon listening")

// bypassed says whether a command goes to the tables itself after err
// from the daemon's API: when no daemon listens, or the address is the
// config's rather than one --url named.
func (a daemonAPI) bypassed(err error) bool {
	return errors.Is(err, errNoDaemon) || !a.named
}

// daemonAlerts asks the running daemon for its current alerts; errNoDaemon
// when nothing listens there.
func (a daemonAPI) daemonAlerts(ctx context.Context) ([]alerts.View, error) {
	var vs []alerts.View
	err := a.call(ctx, http.MethodGet, "/api/v1/alerts", &vs)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil, errNoDaemon
	}
	return vs, err
}

// get reads an API path into out (nil: only whether it answers);
// errNoDaemon when nothing listens there.
func (a daemonAPI) get(ctx context.Context, path string, out any) error {
	err := a.call(ctx, http.MethodGet, path, out)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return errNoDaemon
	}
	return err
}

// readObviousForms reads `slice=FR` (a slice value without its column) as
// the slice label the current alerts carry (`slice="country=FR"`) when
// exactly one matches; it says so on w.
func readObviousForms(ms []configs.Matcher, current []alerts.View, w io.Writer) []configs.Matcher {
	out := append([]configs.Matcher(nil), ms...)
	for i, m := range out {
		if m.Name != "slice" || m.Op != "=" || m.Value == "" || strings.Contains(m.Value, "=") {
			continue
		}
		found := map[string]bool{}
		for _, v := range current {
			for col, val := range v.Slice {
				if val == m.Value {
					found[col+"="+val] = true
				}
			}
		}
		if len(found) != 1 {
			continue
		}
		for label := range found {
			nm, err := configs.NewMatcher("slice", "=", label)
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "reading slice=%s as slice=%q (the slice label names its column)\n", m.Value, label)
			out[i] = nm
		}
	}
	return out
}

// describeMatches says which current alerts a silence would mute, or,
// when none, that it matches nothing and what the labels look like.
func describeMatches(w io.Writer, s alerts.Silence, current []alerts.View) {
	var hit []string
	for _, v := range current {
		if s.Matches(v.Labels) {
			hit = append(hit, fmt.Sprintf("%s %s %s (%s)", v.Class, v.Model, alerts.SliceLabel(v.Slice), v.State))
		}
	}
	if len(hit) > 0 {
		fmt.Fprintf(w, "mutes %d current alert(s):\n", len(hit))
		for _, h := range hit {
			fmt.Fprintln(w, "  "+h)
		}
		return
	}
	fmt.Fprintf(w, "warning: this silence matches none of the %d current alerts", len(current))
	if len(current) == 0 {
		fmt.Fprintln(w, " (it will mute matching alerts when they fire)")
		return
	}
	fmt.Fprintln(w, "; their labels look like:")
	seen := map[string]bool{}
	for _, v := range current {
		keys := make([]string, 0, len(v.Labels))
		for k := range v.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%q", k, v.Labels[k]))
		}
		line := strings.Join(parts, " ")
		if !seen[line] && len(seen) < 3 {
			seen[line] = true
			fmt.Fprintln(w, "  "+line)
		}
	}
}
