package detectors

import (
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/configs"
)

// A reference baseline's windows are the current window's time of day on
// each reference day, inside the period and before the current window.
func TestReferenceWindows(t *testing.T) {
	day := 24 * time.Hour
	ref0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	at := time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		base      configs.Baseline
		at        time.Time
		wantFirst time.Time // the nearest base window's start
		wantN     int
	}{
		// 7 days from 11-02: windows 09:00-15:00 on 11-02 .. 11-08.
		{"pinned", configs.Baseline{Mode: configs.BaselineReference, FromTime: ref0, ToTime: ref0.Add(7 * day)}, at, ref0.Add(6*day + 9*time.Hour), 7},
		// [at-10d, at-3d) = [11-10 15:00, 11-17 15:00): windows on 11-11 .. 11-17.
		{"trailing offsets", configs.Baseline{Mode: configs.BaselineReference, FromOffset: configs.Duration(10 * day), ToOffset: configs.Duration(3 * day)}, at,
			time.Date(2026, 11, 17, 9, 0, 0, 0, time.UTC), 7},
		// Evaluated inside the reference: only the days before the window.
		{"inside the period", configs.Baseline{Mode: configs.BaselineReference, FromTime: ref0, ToTime: ref0.Add(7 * day)}, ref0.Add(3*day + 15*time.Hour),
			ref0.Add(2*day + 9*time.Hour), 3},
		// Before the reference: no baseline at all.
		{"before the period", configs.Baseline{Mode: configs.BaselineReference, FromTime: ref0, ToTime: ref0.Add(7 * day)}, ref0.Add(-day), time.Time{}, 0},
		// Two days of it: too few to decide with.
		{"two days", configs.Baseline{Mode: configs.BaselineReference, FromTime: ref0, ToTime: ref0.Add(7 * day)}, ref0.Add(2*day + 15*time.Hour), time.Time{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &configs.Detector{Window: configs.Duration(6 * time.Hour), Baseline: tc.base}
			w := newWindows(d, tc.at)
			if !w.seasonal || len(w.base) != tc.wantN {
				t.Fatalf("seasonal %v, %d base windows %v; want %d", w.seasonal, len(w.base), w.base, tc.wantN)
			}
			from, to := tc.base.ReferenceSpan(tc.at)
			for i, sp := range w.base {
				if sp.to.Sub(sp.from) != 6*time.Hour || sp.from.Before(from) || sp.to.After(to) || sp.to.After(w.cur.from) {
					t.Errorf("base window %d %v outside [%s, %s) or after the current %v", i, sp, from, to, w.cur)
				}
				if (w.cur.from.Sub(sp.from))%day != 0 {
					t.Errorf("base window %d %v is not the current window's time of day", i, sp)
				}
			}
			if tc.wantN > 0 && !w.base[0].from.Equal(tc.wantFirst) {
				t.Errorf("nearest base window starts %s, want %s", w.base[0].from, tc.wantFirst)
			}
		})
	}
}
