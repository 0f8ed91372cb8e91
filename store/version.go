package store

import (
	"sync"
	"time"
)

// Versions hands out increasing row versions (and ids) for
// ReplacingMergeTree tables: wall-clock nanoseconds, bumped past anything
// already handed out or seen, so a newer write wins across restarts and
// within one process. The zero value is ready; safe for concurrent use.
type Versions struct {
	mu   sync.Mutex
	last uint64
}

// Next returns a version greater than every one before it.
func (v *Versions) Next() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := uint64(time.Now().UnixNano())
	if n <= v.last {
		n = v.last + 1
	}
	v.last = n
	return n
}

// Seen records a version read back from a table, so Next stays above it
// even when this machine's clock is behind the writer's.
func (v *Versions) Seen(x uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if x > v.last {
		v.last = x
	}
}
