package monitor

import (
	"encoding/xml"
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
