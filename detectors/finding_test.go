package detectors

import (
	"math"
	"testing"
)

// A slice's two renderings: canonical JSON (stored, fingerprinted) and
// the human form, both in column order whatever the map's.
func TestSliceRenderings(t *testing.T) {
	for _, tc := range []struct {
		slice      map[string]string
		key, human string
	}{
		{nil, "{}", ""},
		{map[string]string{}, "{}", ""},
		{map[string]string{"country": "FR"}, `{"country":"FR"}`, "country=FR"},
		{map[string]string{"country": "FR", "channel": `a"b`}, `{"channel":"a\"b","country":"FR"}`, `channel=a"b; country=FR`},
	} {
		if got := SliceKey(tc.slice); got != tc.key {
			t.Errorf("SliceKey(%v) = %s, want %s", tc.slice, got, tc.key)
		}
		if got := JoinSlice(tc.slice, "; "); got != tc.human {
			t.Errorf("JoinSlice(%v) = %q, want %q", tc.slice, got, tc.human)
		}
	}
}

func TestSignedPoints(t *testing.T) {
	negZero := math.Copysign(0, -1)
	for x, want := range map[float64]string{0.0123: "+1.23", -0.0123: "-1.23", negZero: "+0.00", math.NaN(): "n/a", -0.00001: "-0.00"} {
		if got := SignedPoints(x); got != want {
			t.Errorf("SignedPoints(%g) = %q, want %q", x, got, want)
		}
	}
}
