package monitor

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

func TestSchedulerRunsSkipsAndRecovers(t *testing.T) {
	every, _ := cron.ParseStandard("@every 1s")
	var (
		mu     sync.Mutex
		ats    []time.Time
		slowN  atomic.Int32
		missed atomic.Int32
		panics atomic.Int32
	)
	s := NewScheduler(SchedulerOptions{Missed: func(string) { missed.Add(1) }})
	s.Start([]Task{
		{Name: "fast", Schedule: every, Run: func(_ context.Context, at time.Time) {
			mu.Lock()
			ats = append(ats, at)
			mu.Unlock()
		}},
		{Name: "slow", Schedule: every, Run: func(ctx context.Context, _ time.Time) {
			slowN.Add(1)
			select {
			case <-time.After(2500 * time.Millisecond):
			case <-ctx.Done():
			}
		}},
		{Name: "panics", Schedule: every, Run: func(context.Context, time.Time) {
			panics.Add(1)
			panic("detector bug")
		}},
	})
	// Observed over real seconds: this is the scheduler's own contract with
	// the wall clock, not a test waiting for a clock of ours.
	time.Sleep(3500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Stop(ctx)

	mu.Lock()
	defer mu.Unlock()
	if len(ats) < 2 {
		t.Fatalf("fast task ran %d times", len(ats))
	}
	for _, at := range ats {
		if at.Location() != time.UTC || at.Nanosecond() != 0 {
			t.Errorf("evaluation time %v must be the scheduled UTC second", at)
		}
	}
	if missed.Load() == 0 {
		t.Errorf("slow task (2.5s every 1s) should have missed runs; ran %d times", slowN.Load())
	}
	if panics.Load() < 2 {
		t.Errorf("a panicking task must keep being scheduled; ran %d times", panics.Load())
	}
}

func TestJitterIsStableAndBounded(t *testing.T) {
	s := NewScheduler(SchedulerOptions{MaxJitter: 10 * time.Second})
	fiveMin, _ := cron.ParseStandard("*/5 * * * *")
	everyMinute, _ := cron.ParseStandard("* * * * *")
	a := s.jitter(Task{Name: "fraud-block-rate", Schedule: fiveMin})
	if a != s.jitter(Task{Name: "fraud-block-rate", Schedule: fiveMin}) || a >= 10*time.Second {
		t.Errorf("jitter %v must be stable and below 10s", a)
	}
	seen := map[time.Duration]bool{}
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		j := s.jitter(Task{Name: n, Schedule: everyMinute})
		if j >= 10*time.Second {
			t.Errorf("jitter %v above bound", j)
		}
		seen[j] = true
	}
	if len(seen) < 3 {
		t.Errorf("tasks should spread: %v", seen)
	}
}
