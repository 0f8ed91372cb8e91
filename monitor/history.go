package monitor

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// Run is what one detector run did, kept for operators: the exact query
// text, its cost, what it found and how it failed.
type Run struct {
	Detector   string        `json:"detector"`
	At         time.Time     `json:"at"` // evaluation time (window end)
	Started    time.Time     `json:"started"`
	Duration   time.Duration `json:"-"`
	DurationMS float64       `json:"duration_ms"`
	Queries    []string      `json:"queries"`
	RowsRead   uint64        `json:"rows_read"`
	BytesRead  uint64        `json:"bytes_read"`
	Findings   int           `json:"findings"`
	Skipped    int           `json:"skipped"`
	Error      string        `json:"error,omitempty"`
	// Warning is a run that could not judge but did not fail: a
	// performance detector whose labels table does not exist yet.
	Warning string `json:"warning,omitempty"`
}

// DetectorStatus is a detector's health: its last runs and failure streak.
type DetectorStatus struct {
	Name                string `json:"name"`
	Kind                string `json:"kind"`
	Model               string `json:"model"`
	Schedule            string `json:"schedule"`
	ConsecutiveFailures int    `json:"consecutive_failures"`
	Missed              int    `json:"missed_runs"`
	Runs                []Run  `json:"runs"` // newest first
}

// History keeps the last runs of each detector in a ring, as vmalert does.
type History struct {
	mu     sync.Mutex
	size   int
	runs   map[string][]Run // oldest first, at most size
	fails  map[string]int
	missed map[string]int
	ok     map[string]bool // detectors with a run that succeeded
}

// NewHistory keeps size runs per detector.
func NewHistory(size int) *History {
	if size < 1 {
		size = 1
	}
	return &History{size: size, runs: map[string][]Run{}, fails: map[string]int{}, missed: map[string]int{}, ok: map[string]bool{}}
}

// Add records a finished run and returns the detector's failure streak.
func (h *History) Add(r Run) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.DurationMS = float64(r.Duration.Microseconds()) / 1000
	rs := append(h.runs[r.Detector], r)
	if len(rs) > h.size {
		rs = rs[len(rs)-h.size:]
	}
	h.runs[r.Detector] = rs
	if r.Error != "" {
		h.fails[r.Detector]++
	} else {
		h.fails[r.Detector] = 0
		if r.Warning == "" {
			h.ok[r.Detector] = true
		}
	}
	return h.fails[r.Detector]
}

// Succeeded reports whether the detector ever ran without error or
// warning in this process.
func (h *History) Succeeded(detector string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ok[detector]
}

// Missed counts a skipped fire time.
func (h *History) Missed(detector string) {
	h.mu.Lock()
	h.missed[detector]++
	h.mu.Unlock()
}

// Failures returns the detector's current failure streak.
func (h *History) Failures(detector string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fails[detector]
}

// Status returns a detector's runs, newest first, and its counters.
func (h *History) Status(detector string) (runs []Run, fails, missed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rs := h.runs[detector]
	runs = make([]Run, len(rs))
	for i, r := range rs {
		runs[len(rs)-1-i] = r
	}
	return runs, h.fails[detector], h.missed[detector]
}

// Names lists the detectors with history, sorted.
func (h *History) Names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.runs))
}
