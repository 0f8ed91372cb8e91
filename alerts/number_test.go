package alerts

import (
	"encoding/json"
	"math"
	"testing"
)

// TestNumberJSON: figures that differ only by the order ClickHouse summed
// them in print the same; NaN and infinities print null; ordinary figures
// keep their digits.
func TestNumberJSON(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{
		{0.3678646768566567, "0.3678646769"},
		{0.3678646768566568, "0.3678646769"},
		{0.1 + 0.2, "0.3"},
		{18929, "18929"},
		{123456789012, "123456789000"},
		{1e-177, "1e-177"},
		{-0.025, "-0.025"},
		{0, "0"},
		{math.NaN(), "null"},
		{math.Inf(1), "null"},
		{math.Inf(-1), "null"},
	} {
		b, err := json.Marshal(Number(c.in))
		if err != nil {
			t.Fatalf("%v: %v", c.in, err)
		}
		if string(b) != c.want {
			t.Errorf("Number(%v) = %s, want %s", c.in, b, c.want)
		}
	}
}
