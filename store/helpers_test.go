package store

import (
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestVersionsIncrease(t *testing.T) {
	var v Versions
	ahead := uint64(time.Now().Add(time.Hour).UnixNano())
	v.Seen(ahead)
	v.Seen(1) // an older version read back changes nothing
	if n := v.Next(); n != ahead+1 {
		t.Fatalf("Next after Seen(%d) = %d, want %d", ahead, n, ahead+1)
	}
	var mu sync.Mutex
	got := map[uint64]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := uint64(0)
			for i := 0; i < 1000; i++ {
				n := v.Next()
				if n <= last {
					t.Errorf("Next = %d after %d: not increasing", n, last)
					return
				}
				last = n
				mu.Lock()
				got[n] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(got) != 4000 {
		t.Fatalf("%d distinct versions from 4000 calls", len(got))
	}
}

func TestArrays(t *testing.T) {
	f := Floats([]any{1.5, nil, int64(2)})
	if len(f) != 3 || f[0] != 1.5 || !math.IsNaN(f[1]) || f[2] != 2 {
		t.Errorf("Floats = %v, want [1.5 NaN 2]", f)
	}
	if s := Strings([]any{"a", "b"}); len(s) != 2 || s[0] != "a" || s[1] != "b" {
		t.Errorf("Strings = %q", s)
	}
	if f, s := Floats("not an array"), Strings(nil); len(f) != 0 || len(s) != 0 {
		t.Errorf("non-arrays: %v %q, want empty", f, s)
	}
}

func TestIntegersFromJSON(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		in   any
		want any
	}{
		{"UInt64", "18446744073709551615", uint64(18446744073709551615)},
		{"UInt8", json.Number("7"), uint64(7)},
		{"Int64", "-9223372036854775808", int64(-9223372036854775808)},
		{"Int32", json.Number("-5"), int64(-5)},
	} {
		got, err := fromJSON(parseType(tc.typ), tc.in)
		if err != nil || got != tc.want {
			t.Errorf("fromJSON(%s, %v) = %v (%T), %v; want %v (%T)", tc.typ, tc.in, got, got, err, tc.want, tc.want)
		}
	}
	if _, err := fromJSON(parseType("Int16"), "x"); err == nil || !strings.Contains(err.Error(), `parse Int16 "x"`) {
		t.Errorf("a bad Int16: %v", err)
	}
}
