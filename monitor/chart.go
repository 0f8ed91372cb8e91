package monitor

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"
)

// Point is one evaluation of a metric, as drawn on an alert's chart.
type Point struct {
	At       time.Time
	Value    float64
	Baseline float64
	// Low and High bound the baseline band (NaN when the detector gave none).
	Low, High float64
	// Shadow is the shadow model's figure where there is one (NaN otherwise).
	Shadow float64
	Firing bool
}

// ChartOptions size and label a chart.
type ChartOptions struct {
	Width, Height int
	Title         string
	// Percent formats values as percentages (rates).
	Percent bool
	// Markers are events drawn as labelled vertical lines where they fall
	// inside the points' time range (a model's rollouts).
	Markers []Marker
}

// Marker is one event on a chart's time axis.
type Marker struct {
	At    time.Time
	Label string
}

// Chart renders points as a self-contained SVG: the current value as a
// line, the baseline as a dashed line inside its band, the shadow model's
// figure as a second line, and firing evaluations marked. Server-rendered,
// so the status page needs no JavaScript.
func Chart(points []Point, opt ChartOptions) string {
	if opt.Width <= 0 {
		opt.Width = 640
	}
	if opt.Height <= 0 {
		opt.Height = 180
	}
	const left, right, top, bottom = 56.0, 12.0, 22.0, 26.0
	w, h := float64(opt.Width), float64(opt.Height)
	pw, ph := w-left-right, h-top-bottom
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`, opt.Width, opt.Height, opt.Width, opt.Height)
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(opt.Title))
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#fff"/>`, opt.Width, opt.Height)
	fmt.Fprintf(&b, `<text x="%g" y="14" font-size="12" font-family="sans-serif" fill="#333">%s</text>`, left, html.EscapeString(opt.Title))
	if len(points) == 0 {
		fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="12" font-family="sans-serif" fill="#888">no evaluations yet</text></svg>`, left, top+ph/2)
		return b.String()
	}
	t0, t1 := points[0].At, points[len(points)-1].At
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range points {
		for _, v := range []float64{p.Value, p.Baseline, p.Low, p.High, p.Shadow} {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0, 1
	}
	if lo > 0 && lo < hi/2 {
		lo = 0 // rates and counts read best from zero
	}
	if hi-lo < 1e-12 {
		hi = lo + math.Max(math.Abs(lo)*0.1, 1e-6)
	}
	pad := (hi - lo) * 0.08
	lo, hi = lo-pad, hi+pad
	if lo < 0 && points[0].Value >= 0 {
		lo = math.Min(0, lo+pad)
	}
	x := func(t time.Time) float64 {
		span := t1.Sub(t0).Seconds()
		if span <= 0 {
			return left + pw/2
		}
		return left + pw*t.Sub(t0).Seconds()/span
	}
	y := func(v float64) float64 { return top + ph*(1-(v-lo)/(hi-lo)) }
	label := func(v float64) string {
		if opt.Percent {
			return fmt.Sprintf("%.3g%%", v*100)
		}
		return fmt.Sprintf("%.3g", v)
	}
	// Axes and gridlines.
	for i := 0; i <= 2; i++ {
		v := lo + (hi-lo)*float64(i)/2
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`, left, y(v), left+pw, y(v))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" font-family="sans-serif" fill="#666" text-anchor="end">%s</text>`, left-4, y(v)+3, label(v))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" font-family="sans-serif" fill="#666">%s</text>`, left, h-8, t0.UTC().Format("01-02 15:04"))
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" font-family="sans-serif" fill="#666" text-anchor="end">%s</text>`, left+pw, h-8, t1.UTC().Format("01-02 15:04"))
	// Baseline band: the polygon over Low..High where both are known.
	var upper, lower []string
	for _, p := range points {
		if math.IsNaN(p.Low) || math.IsNaN(p.High) {
			continue
		}
		upper = append(upper, fmt.Sprintf("%.1f,%.1f", x(p.At), y(p.High)))
		lower = append([]string{fmt.Sprintf("%.1f,%.1f", x(p.At), y(p.Low))}, lower...)
	}
	if len(upper) > 1 {
		fmt.Fprintf(&b, `<polygon class="band" points="%s" fill="#cfe3ff" fill-opacity="0.6" stroke="none"/>`, strings.Join(append(upper, lower...), " "))
	}
	line := func(class, color, dash string, get func(Point) float64) {
		var segs []string
		var cur []string
		flush := func() {
			if len(cur) > 1 {
				segs = append(segs, strings.Join(cur, " "))
			} else if len(cur) == 1 {
				segs = append(segs, cur[0]+" "+cur[0])
			}
			cur = nil
		}
		for _, p := range points {
			v := get(p)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				flush()
				continue
			}
			cur = append(cur, fmt.Sprintf("%.1f,%.1f", x(p.At), y(v)))
		}
		flush()
		for _, s := range segs {
			fmt.Fprintf(&b, `<polyline class="%s" points="%s" fill="none" stroke="%s" stroke-width="1.6"%s/>`, class, s, color, dash)
		}
	}
	line("baseline", "#3b6fb6", ` stroke-dasharray="4 3"`, func(p Point) float64 { return p.Baseline })
	line("shadow", "#8a6d00", ` stroke-dasharray="1 2"`, func(p Point) float64 { return p.Shadow })
	line("value", "#c0392b", "", func(p Point) float64 { return p.Value })
	for _, mk := range opt.Markers {
		if mk.At.Before(t0) || mk.At.After(t1) {
			continue
		}
		mx := x(mk.At)
		fmt.Fprintf(&b, `<line class="marker" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#6a1b9a" stroke-dasharray="2 2"/>`, mx, top, mx, top+ph)
		fmt.Fprintf(&b, `<text class="marker" x="%.1f" y="%.1f" font-size="10" font-family="sans-serif" fill="#6a1b9a">%s</text>`, mx+3, top+10, html.EscapeString(mk.Label))
	}
	for _, p := range points {
		if p.Firing && !math.IsNaN(p.Value) {
			fmt.Fprintf(&b, `<circle class="firing" cx="%.1f" cy="%.1f" r="2.5" fill="#c0392b"/>`, x(p.At), y(p.Value))
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}
