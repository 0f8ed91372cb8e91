package alerts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/store"
)

// Silence mutes notifications of the alerts its matchers select between
// StartsAt and EndsAt. Silenced alerts are still tracked and shown; when
// the silence ends, notification resumes.
type Silence struct {
	ID        string            `json:"id"`
	Matchers  []configs.Matcher `json:"matchers"`
	StartsAt  time.Time         `json:"starts_at"`
	EndsAt    time.Time         `json:"ends_at"`
	CreatedBy string            `json:"created_by"`
	Comment   string            `json:"comment"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// Silence states.
const (
	SilencePending = "pending"
	SilenceActive  = "active"
	SilenceExpired = "expired"
)

// State says whether the silence is pending, active or expired at now.
func (s Silence) State(now time.Time) string {
	switch {
	case now.Before(s.StartsAt):
		return SilencePending
	case now.Before(s.EndsAt):
		return SilenceActive
	}
	return SilenceExpired
}

// Matches reports whether the silence selects the labels (regardless of time).
func (s Silence) Matches(labels map[string]string) bool {
	return len(s.Matchers) > 0 && configs.MatchAll(s.Matchers, labels)
}

// ErrSilenceNotFound is returned when expiring an unknown silence.
var ErrSilenceNotFound = errors.New("silence not found")

// Limits on silences. Every silence is matched against every alert on
// every pipeline pass, so their size bounds the daemon's memory and CPU:
// an 850 KB regular expression once took it to 550 MB RSS and 45% CPU.
const (
	// MaxMatcherBytes bounds one matcher ("name=~value") as written.
	MaxMatcherBytes = 1024
	// MaxSilenceMatchers bounds the matchers of one silence.
	MaxSilenceMatchers = 32
	// MaxSilenceTextBytes bounds created_by and comment each.
	MaxSilenceTextBytes = 4096
	// MaxSilences bounds the silences that are active or pending at once.
	MaxSilences = 1000
)

// ErrTooManySilences is returned when adding a silence past MaxSilences.
var ErrTooManySilences = fmt.Errorf("too many silences: at most %d may be active or pending at once; expire some first", MaxSilences)

// Validate checks what a silence needs before it is stored.
func (s Silence) Validate() error {
	var probs []string
	if len(s.Matchers) == 0 {
		probs = append(probs, "at least one matcher is required")
	}
	if len(s.Matchers) > MaxSilenceMatchers {
		probs = append(probs, fmt.Sprintf("%d matchers: at most %d are allowed", len(s.Matchers), MaxSilenceMatchers))
	}
	for _, m := range s.Matchers {
		if n := len(m.Name) + len(m.Op) + len(m.Value); n > MaxMatcherBytes {
			probs = append(probs, fmt.Sprintf("matcher %s%s...: %d bytes, at most %d are allowed", m.Name, m.Op, n, MaxMatcherBytes))
		}
	}
	if len(s.CreatedBy) > MaxSilenceTextBytes || len(s.Comment) > MaxSilenceTextBytes {
		probs = append(probs, fmt.Sprintf("created_by and comment may have at most %d bytes each", MaxSilenceTextBytes))
	}
	if s.CreatedBy == "" {
		probs = append(probs, "author is required")
	}
	if s.Comment == "" {
		probs = append(probs, "comment is required")
	}
	if !s.EndsAt.After(s.StartsAt) {
		probs = append(probs, "end must be after start")
	}
	if len(probs) > 0 {
		return fmt.Errorf("silence: %s", strings.Join(probs, "; "))
	}
	return nil
}

// Silences keeps silences in ClickHouse (one ReplacingMergeTree row per
// version). The CLI uses it directly; the manager caches what it reads.
type Silences struct {
	db    store.Store
	table store.Table
	ver   *store.Versions

	// parsed caches the compiled matchers of each stored matchers text:
	// List runs on every pipeline pass, and compiling every regular
	// expression each time cost more than matching them.
	mu     sync.Mutex
	parsed map[string][]configs.Matcher
}

// NewSilences opens the silences table of a set of tables.
func NewSilences(db store.Store, t store.Tables) *Silences {
	return &Silences{db: db, table: t.Silences(), ver: &store.Versions{}}
}

// Add stores a new silence and returns it with its ID.
func (s *Silences) Add(ctx context.Context, sil Silence, now time.Time) (Silence, error) {
	if err := sil.Validate(); err != nil {
		return Silence{}, err
	}
	all, err := s.List(ctx)
	if err != nil {
		return Silence{}, err
	}
	if err := checkCount(all, now); err != nil {
		return Silence{}, err
	}
	if sil.ID == "" {
		sil.ID = newID()
	}
	sil.UpdatedAt = now
	if err := s.write(ctx, sil); err != nil {
		return Silence{}, err
	}
	return sil, nil
}

// checkCount refuses a new silence when MaxSilences are active or pending.
func checkCount(all []Silence, now time.Time) error {
	n := 0
	for _, s := range all {
		if s.State(now) != SilenceExpired {
			n++
		}
	}
	if n >= MaxSilences {
		return ErrTooManySilences
	}
	return nil
}

// Expire ends a silence at now (a silence already over is left as it is).
func (s *Silences) Expire(ctx context.Context, id string, now time.Time) (Silence, error) {
	all, err := s.List(ctx)
	if err != nil {
		return Silence{}, err
	}
	for _, sil := range all {
		if sil.ID != id {
			continue
		}
		if sil.State(now) == SilenceExpired {
			return sil, nil
		}
		if sil.StartsAt.After(now) {
			sil.StartsAt = now
		}
		sil.EndsAt = now
		sil.UpdatedAt = now
		return sil, s.write(ctx, sil)
	}
	return Silence{}, fmt.Errorf("expire %s: %w", id, ErrSilenceNotFound)
}

func (s *Silences) write(ctx context.Context, sil Silence) error {
	ms, err := json.Marshal(sil.Matchers)
	if err != nil {
		return fmt.Errorf("silence %s: encode matchers: %w", sil.ID, err)
	}
	row := []any{sil.ID, s.ver.Next(), string(ms), sil.StartsAt.UTC(), sil.EndsAt.UTC(), sil.CreatedBy, sil.Comment, sil.UpdatedAt.UTC()}
	if err := s.db.Insert(ctx, s.table, silenceColumns, [][]any{row}); err != nil {
		return fmt.Errorf("silence %s: write: %w", sil.ID, err)
	}
	return nil
}

// List returns every silence, newest first.
func (s *Silences) List(ctx context.Context) ([]Silence, error) {
	q := "SELECT id, version, matchers, starts_at, ends_at, created_by, comment, updated_at FROM " + s.table.Quoted() + " FINAL"
	res, err := s.db.Query(store.Priority(ctx), q)
	if err != nil {
		return nil, fmt.Errorf("list silences: %w", err)
	}
	out := make([]Silence, 0, len(res.Rows))
	s.mu.Lock()
	defer s.mu.Unlock()
	parsed := make(map[string][]configs.Matcher, len(res.Rows))
	for _, r := range res.Rows {
		s.ver.Seen(uint64(store.Int(r[1])))
		text := store.Str(r[2])
		ms, ok := s.parsed[text]
		if !ok {
			var err error
			if ms, err = parseStoredMatchers(text); err != nil {
				return nil, fmt.Errorf("silence %s: %w", store.Str(r[0]), err)
			}
		}
		parsed[text] = ms
		out = append(out, Silence{
			ID: store.Str(r[0]), Matchers: ms,
			StartsAt: store.Time(r[3]), EndsAt: store.Time(r[4]),
			CreatedBy: store.Str(r[5]), Comment: store.Str(r[6]), UpdatedAt: store.Time(r[7]),
		})
	}
	s.parsed = parsed
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartsAt.Equal(out[j].StartsAt) {
			return out[i].StartsAt.After(out[j].StartsAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// parseStoredMatchers decodes and compiles a silence's stored matchers.
func parseStoredMatchers(text string) ([]configs.Matcher, error) {
	var raw []configs.Matcher
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, fmt.Errorf("decode matchers: %w", err)
	}
	ms := make([]configs.Matcher, 0, len(raw))
	for _, m := range raw {
		pm, err := configs.NewMatcher(m.Name, m.Op, m.Value)
		if err != nil {
			return nil, err
		}
		ms = append(ms, pm)
	}
	return ms, nil
}

// ParseMatchers reads matchers as written on a command line or in the API
// ("class=feature_pipeline", "country=~FR|DE"). Sizes are checked before
// anything is compiled, so an oversized regular expression costs nothing.
func ParseMatchers(args []string) ([]configs.Matcher, error) {
	if len(args) > MaxSilenceMatchers {
		return nil, fmt.Errorf("%d matchers: at most %d are allowed", len(args), MaxSilenceMatchers)
	}
	out := make([]configs.Matcher, 0, len(args))
	for _, a := range args {
		if len(a) > MaxMatcherBytes {
			return nil, fmt.Errorf("matcher %.40q...: %d bytes, at most %d are allowed", a, len(a), MaxMatcherBytes)
		}
		m, err := configs.ParseMatcher(a)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
