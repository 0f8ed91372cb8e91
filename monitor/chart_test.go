package monitor

import (
	"encoding/xml"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestChart(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	var pts []Point
	for i := 0; i < 24; i++ {
		v := 0.006
		if i >= 18 {
			v = 0.48
		}
		shadow := 0.004
		if i == 5 {
			shadow = math.NaN() // a gap
		}
		pts = append(pts, Point{At: t0.Add(time.Duration(i) * time.Hour), Value: v, Baseline: 0.006, Low: 0.004, High: 0.008, Shadow: shadow, Firing: i >= 18})
	}
	svg := Chart(pts, ChartOptions{Title: `FR block rate <"prod">`, Percent: true})
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("not well-formed XML: %v", err)
	}
	for _, want := range []string{`class="value"`, `class="baseline"`, `class="band"`, `class="shadow"`, `class="firing"`, "&lt;&#34;prod&#34;&gt;", "%</text>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %s", want)
		}
	}
	if n := strings.Count(svg, `class="shadow"`); n != 2 {
		t.Errorf("shadow line should break at the NaN into 2 segments, got %d", n)
	}
	if n := strings.Count(svg, `class="firing"`); n != 6 {
		t.Errorf("firing marks: %d, want 6", n)
	}
	empty := Chart(nil, ChartOptions{Title: "x"})
	if !strings.Contains(empty, "no evaluations yet") {
		t.Error("empty chart should say so")
	}
	flat := Chart([]Point{{At: t0, Value: 5, Baseline: 5, Low: math.NaN(), High: math.NaN(), Shadow: math.NaN()}}, ChartOptions{})
	if strings.Contains(flat, "NaN") || strings.Contains(flat, "Inf") {
		t.Errorf("a single flat point must not produce NaN coordinates: %s", flat)
	}
}

// TestChartShadowAxis: a divergence chart draws the score correlation
// (≈0.97) on its own right axis, so the 2.5% disagreement rate fills the
// plot instead of a flat line at the bottom, and the legend names each line.
func TestChartShadowAxis(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	var pts []Point
	for i := 0; i < 24; i++ {
		v := 0.01
		if i >= 18 {
			v = 0.025
		}
		pts = append(pts, Point{At: t0.Add(time.Duration(i) * time.Hour), Value: v, Baseline: 0.01, Low: 0, High: 0.014, Shadow: 0.97 - float64(i)*0.001, Firing: i >= 18})
	}
	for _, own := range []bool{false, true} {
		opt := ChartOptions{Title: "disagreement", Percent: true, ValueLabel: "disagreement_production_blocks"}
		if own {
			opt.ShadowLabel, opt.ShadowAxis = "score correlation", true
		}
		svg := Chart(pts, opt)
		if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		i := strings.Index(svg, `class="value" points="`)
		pointsAttr := svg[i+len(`class="value" points="`):]
		pointsAttr = pointsAttr[:strings.Index(pointsAttr, `"`)]
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, xy := range strings.Fields(pointsAttr) {
			var x, y float64
			if _, err := fmt.Sscanf(xy, "%f,%f", &x, &y); err != nil {
				t.Fatal(err)
			}
			lo, hi = math.Min(lo, y), math.Max(hi, y)
		}
		plot := 180.0 - 22 - 40
		if spread := (hi - lo) / plot; own && spread < 0.5 {
			t.Errorf("own axis: the value line spans %.0f%% of the plot", 100*spread)
		} else if !own && spread > 0.1 {
			t.Errorf("shared axis: expected the squashed line, spans %.0f%%", 100*spread)
		}
		for _, want := range []string{`class="legend"`, "disagreement_production_blocks", "baseline (band: expected range)"} {
			if !strings.Contains(svg, want) {
				t.Errorf("legend lacks %q", want)
			}
		}
		if own && (!strings.Contains(svg, "score correlation (right axis)") || !strings.Contains(svg, `class="axis-right"`)) {
			t.Errorf("own axis not labelled: %s", svg)
		}
	}
}
