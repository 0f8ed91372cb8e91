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
	// ValueLabel and ShadowLabel name the lines in the legend (defaults:
	// "current", "shadow model").
	ValueLabel, ShadowLabel string
	// ShadowAxis draws the shadow line on its own scale, labelled on the
	// right: a figure of another kind (a divergence chart's score
	// correlation, ≈0.97, beside a 2.5% disagreement rate).
	ShadowAxis bool
	// Empty is what a chart without points says (default "no evaluations
	// yet").
	Empty string
}

// Marker is one event on a chart's time axis.
type Marker struct {
	At    time.Time
	Label string
	// Class is the marker's SVG class (default "marker"): "alert-start"
	// for the alert's start.
	Class string
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
	right := 12.0
	if opt.ShadowAxis {
		right = 44
	}
	const left, top, bottom = 56.0, 22.0, 40.0
	w, h := float64(opt.Width), float64(opt.Height)
	pw, ph := w-left-right, h-top-bottom
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`, opt.Width, opt.Height, opt.Width, opt.Height)
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(opt.Title))
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#fff"/>`, opt.Width, opt.Height)
	fmt.Fprintf(&b, `<text x="%g" y="14" font-size="12" font-family="sans-serif" fill="#333">%s</text>`, left, html.EscapeString(opt.Title))
	if len(points) == 0 {
		if opt.Empty == "" {
			opt.Empty = "no evaluations yet"
		}
		fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="12" font-family="sans-serif" fill="#888">%s</text></svg>`, left, top+ph/2, html.EscapeString(opt.Empty))
		return b.String()
	}
	t0, t1 := points[0].At, points[len(points)-1].At
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range points {
		vs := []float64{p.Value, p.Baseline, p.Low, p.High, p.Shadow}
		if opt.ShadowAxis {
			vs = vs[:4]
		}
		for _, v := range vs {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	// The shadow's own scale, when it has one.
	slo, shi := math.Inf(1), math.Inf(-1)
	for _, p := range points {
		if v := p.Shadow; opt.ShadowAxis && !math.IsNaN(v) && !math.IsInf(v, 0) {
			slo, shi = math.Min(slo, v), math.Max(shi, v)
		}
	}
	if math.IsInf(slo, 1) {
		slo, shi = 0, 1
	}
	if shi-slo < 1e-12 {
		shi = slo + math.Max(math.Abs(slo)*0.05, 1e-6)
	}
	spad := (shi - slo) * 0.08
	slo, shi = slo-spad, shi+spad
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
	ys := y
	if opt.ShadowAxis {
		ys = func(v float64) float64 { return top + ph*(1-(v-slo)/(shi-slo)) }
	}
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
	if opt.ShadowAxis {
		for i := 0; i <= 2; i++ {
			v := slo + (shi-slo)*float64(i)/2
			fmt.Fprintf(&b, `<text class="axis-right" x="%.1f" y="%.1f" font-size="10" font-family="sans-serif" fill="#8a6d00">%.3g</text>`, left+pw+4, ys(v)+3, v)
		}
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" font-family="sans-serif" fill="#666">%s</text>`, left, top+ph+14, t0.UTC().Format("01-02 15:04"))
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" font-family="sans-serif" fill="#666" text-anchor="end">%s</text>`, left+pw, top+ph+14, t1.UTC().Format("01-02 15:04"))
	// Baseline band: the polygon over Low..High where both are known.
	var upper, lower []string
	for _, p := range points {
		if math.IsNaN(p.Low) || math.IsNaN(p.High) {
			continue
		}
		// An unbounded side (a volume band without spike_ratio) ends at
		// the plot's edge.
		high, low := math.Min(p.High, hi), math.Max(p.Low, lo)
		upper = append(upper, fmt.Sprintf("%.1f,%.1f", x(p.At), y(high)))
		lower = append([]string{fmt.Sprintf("%.1f,%.1f", x(p.At), y(low))}, lower...)
	}
	if len(upper) > 1 {
		fmt.Fprintf(&b, `<polygon class="band" points="%s" fill="#cfe3ff" fill-opacity="0.6" stroke="none"/>`, strings.Join(append(upper, lower...), " "))
	}
	line := func(class, color, dash string, get func(Point) float64, y func(float64) float64) {
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
	line("baseline", "#3b6fb6", ` stroke-dasharray="4 3"`, func(p Point) float64 { return p.Baseline }, y)
	line("shadow", "#8a6d00", ` stroke-dasharray="1 2"`, func(p Point) float64 { return p.Shadow }, ys)
	line("value", "#c0392b", "", func(p Point) float64 { return p.Value }, y)
	for _, mk := range opt.Markers {
		if mk.At.Before(t0) || mk.At.After(t1) {
			continue
		}
		mx := x(mk.At)
		class, color, ty := "marker", "#6a1b9a", top+10
		if mk.Class != "" {
			class, color, ty = html.EscapeString(mk.Class), "#c0392b", top+ph-4
		}
		fmt.Fprintf(&b, `<line class="%s" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="2 2"/>`, class, mx, top, mx, top+ph, color)
		fmt.Fprintf(&b, `<text class="%s" x="%.1f" y="%.1f" font-size="10" font-family="sans-serif" fill="%s">%s</text>`, class, mx+3, ty, color, html.EscapeString(mk.Label))
	}
	for _, p := range points {
		if p.Firing && !math.IsNaN(p.Value) {
			fmt.Fprintf(&b, `<circle class="firing" cx="%.1f" cy="%.1f" r="2.5" fill="#c0392b"/>`, x(p.At), y(p.Value))
		}
	}
	legend(&b, points, opt, left, h-6)
	b.WriteString(`</svg>`)
	return b.String()
}

// legend names what the chart draws, on its bottom line.
func legend(b *strings.Builder, points []Point, opt ChartOptions, x, y float64) {
	has := func(get func(Point) float64) bool {
		for _, p := range points {
			if v := get(p); !math.IsNaN(v) && !math.IsInf(v, 0) {
				return true
			}
		}
		return false
	}
	value, shadow := opt.ValueLabel, opt.ShadowLabel
	if value == "" {
		value = "current"
	}
	if shadow == "" {
		shadow = "shadow model"
	}
	if opt.ShadowAxis {
		shadow += " (right axis)"
	}
	type item struct{ color, dash, label string }
	items := []item{{"#c0392b", "", value}}
	if has(func(p Point) float64 { return p.Baseline }) {
		items = append(items, item{"#3b6fb6", "4 3", "baseline (band: expected range)"})
	} else if has(func(p Point) float64 { return p.Low + p.High }) {
		// A band without a baseline: an expectation's [min_rate, max_rate].
		items = append(items, item{"#cfe3ff", "", "band: allowed range"})
	}
	if has(func(p Point) float64 { return p.Shadow }) {
		items = append(items, item{"#8a6d00", "1 2", shadow})
	}
	var version, start bool
	for _, mk := range opt.Markers {
		if mk.At.Before(points[0].At) || mk.At.After(points[len(points)-1].At) {
			continue
		}
		version = version || mk.Class == ""
		start = start || mk.Class != ""
	}
	if version {
		items = append(items, item{"#6a1b9a", "2 2", "version change"})
	}
	if start {
		items = append(items, item{"#c0392b", "2 2", "alert start"})
	}
	b.WriteString(`<g class="legend">`)
	for _, it := range items {
		dash := ""
		if it.dash != "" {
			dash = ` stroke-dasharray="` + it.dash + `"`
		}
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.6"%s/>`, x, y-3, x+16, y-3, it.color, dash)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="10" font-family="sans-serif" fill="#444">%s</text>`, x+20, y, html.EscapeString(it.label))
		x += 28 + 5.6*float64(len(it.label))
	}
	b.WriteString(`</g>`)
}
