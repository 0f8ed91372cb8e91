package detectors

import "testing"

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
