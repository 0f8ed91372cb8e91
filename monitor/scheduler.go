package monitor

import (
	"context"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
	"go.uber.org/zap"
)

// Task is one scheduled job: a detector run at each fire time of its
// schedule. Run receives the scheduled time, which becomes the evaluation
// time (the end of the current window), whatever the jitter.
type Task struct {
	Name     string
	Schedule cron.Schedule
	Run      func(ctx context.Context, at time.Time)
}

// Scheduler runs tasks on robfig/cron in UTC: a panic in a run is
// recovered, a run that is still going when its next fire time comes makes
// that fire time count as missed, and tasks that share a fire time start
// spread over a short, stable jitter so they do not all hit ClickHouse at
// once.
type Scheduler struct {
	cron   *cron.Cron
	log    *zap.Logger
	missed func(task string)
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// MaxJitter bounds the start delay of a task; 0 disables spreading.
	maxJitter time.Duration
}

// SchedulerOptions configure NewScheduler.
type SchedulerOptions struct {
	Logger *zap.Logger
	// Missed is called when a fire time is skipped because the task's
	// previous run is still going.
	Missed func(task string)
	// MaxJitter bounds the spread of tasks that fire together (default 10s).
	MaxJitter time.Duration
}

// NewScheduler builds a stopped scheduler.
func NewScheduler(opt SchedulerOptions) *Scheduler {
	if opt.Logger == nil {
		opt.Logger = zap.NewNop()
	}
	if opt.Missed == nil {
		opt.Missed = func(string) {}
	}
	if opt.MaxJitter < 0 {
		opt.MaxJitter = 0
	}
	logger := cronLogger{opt.Logger}
	return &Scheduler{
		cron:      cron.New(cron.WithLocation(time.UTC), cron.WithChain(cron.Recover(logger)), cron.WithLogger(logger)),
		log:       opt.Logger,
		missed:    opt.Missed,
		maxJitter: opt.MaxJitter,
	}
}

// Start schedules the tasks and starts the clock. Runs get a context that
// Stop cancels only after in-flight runs were given the chance to finish.
func (s *Scheduler) Start(tasks []Task) {
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, t := range tasks {
		t := t
		var running atomic.Bool
		var id cron.EntryID
		jitter := s.jitter(t)
		id = s.cron.Schedule(t.Schedule, cron.FuncJob(func() {
			at := s.cron.Entry(id).Prev
			if at.IsZero() {
				at = time.Now().UTC().Truncate(time.Second)
			}
			if !running.CompareAndSwap(false, true) {
				s.log.Warn("detector run skipped: previous run still going", zap.String("detector", t.Name), zap.Time("at", at))
				s.missed(t.Name)
				return
			}
			s.wg.Add(1)
			defer s.wg.Done()
			defer running.Store(false)
			if jitter > 0 {
				select {
				case <-time.After(jitter):
				case <-s.ctx.Done():
					return
				}
			}
			t.Run(s.ctx, at)
		}))
	}
	s.cron.Start()
}

// jitter is a stable per-task delay below a quarter of the task's period.
func (s *Scheduler) jitter(t Task) time.Duration {
	if s.maxJitter <= 0 {
		return 0
	}
	now := time.Now().UTC()
	next := t.Schedule.Next(now)
	period := t.Schedule.Next(next).Sub(next)
	limit := s.maxJitter
	if q := period / 4; q < limit {
		limit = q
	}
	if limit <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(t.Name))
	return time.Duration(h.Sum64() % uint64(limit))
}

// Stop stops scheduling and waits for in-flight runs until ctx ends, then
// cancels what is still running.
func (s *Scheduler) Stop(ctx context.Context) {
	<-s.cron.Stop().Done()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		<-done
	}
	s.cancel()
}

// cronLogger adapts zap to cron.Logger.
type cronLogger struct{ log *zap.Logger }

func (l cronLogger) Info(msg string, kv ...any) {
	l.log.Debug("cron: "+msg, zap.Any("details", kv))
}

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, zap.Error(err), zap.Any("details", kv))
}
