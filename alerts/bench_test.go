package alerts

import (
	"fmt"
	"testing"
	"time"

	"github.com/mlwatch/mlwatch/store/storetest"
)

// BenchmarkEvaluation1000Slices is one evaluation of a detector that
// reports 1000 slices, then the pipeline (memory only): the daemon's
// per-evaluation cost outside ClickHouse.
func BenchmarkEvaluation1000Slices(b *testing.B) {
	cfg := loadConfig(&testing.T{}, baseYAML, nil)
	clock := newClock()
	m, err := New(Options{Config: cfg, Now: clock.Now, Sleep: clock.Sleep, Notifiers: map[string]Notifier{"fraud-product": &recorder{}}})
	if err != nil {
		b.Fatal(err)
	}
	var fs []detectorsFinding
	for i := 0; i < 1000; i++ {
		fs = append(fs, finding("fraud-block-rate", "model_behavior", "fraud", fmt.Sprintf("country=C%04d", i), 0.3, 0.05, 1e-9*float64(i+1)))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		at := clock.Advance(5 * time.Minute)
		if err := m.Observe(b.Context(), "fraud-block-rate", at, fs); err != nil {
			b.Fatal(err)
		}
		if _, err := m.Process(b.Context(), at); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDurableEvaluation1000Slices is the same with state written to
// each ClickHouse engine (1000 alert rows and the outbox per evaluation).
func BenchmarkDurableEvaluation1000Slices(b *testing.B) {
	for _, eng := range storetest.Engines(b) {
		b.Run(eng.Name, func(b *testing.B) {
			cfg := loadConfig(&testing.T{}, baseYAML+fmt.Sprintf("state: {database: %s}\n", eng.Database), nil)
			clock := newClock()
			m, err := New(Options{Config: cfg, Store: eng.DB, Now: clock.Now, Sleep: clock.Sleep, Notifiers: map[string]Notifier{"fraud-product": &recorder{}}})
			if err != nil {
				b.Fatal(err)
			}
			if err := m.Restore(b.Context()); err != nil {
				b.Fatal(err)
			}
			var fs []detectorsFinding
			for i := 0; i < 1000; i++ {
				fs = append(fs, finding("fraud-block-rate", "model_behavior", "fraud", fmt.Sprintf("country=C%04d", i), 0.3, 0.05, 1e-9*float64(i+1)))
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				at := clock.Advance(5 * time.Minute)
				if err := m.Observe(b.Context(), "fraud-block-rate", at, fs); err != nil {
					b.Fatal(err)
				}
				if _, err := m.Process(b.Context(), at); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			start := time.Now()
			m2, _ := New(Options{Config: cfg, Store: eng.DB, Now: clock.Now, Sleep: clock.Sleep})
			if err := m2.Restore(b.Context()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds()), "restore-ms")
		})
	}
}
