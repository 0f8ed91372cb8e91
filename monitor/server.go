package monitor

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
)

// AlertLister is what the read side of the API needs from the alert pipeline.
type AlertLister interface {
	Alerts() []alerts.View
	Silences() []alerts.Silence
}

// Silencer is what the silence API needs to change silences.
type Silencer interface {
	AddSilence(ctx context.Context, s alerts.Silence) (alerts.Silence, error)
	ExpireSilence(ctx context.Context, id string) (alerts.Silence, error)
}

// Outbox is what the notifications API needs from the alert pipeline.
type Outbox interface {
	Notifications(state string) []alerts.NotificationStatus
	Retry(ctx context.Context, id string) (alerts.NotificationStatus, error)
}

// ServerOptions wire the HTTP server to the daemon.
type ServerOptions struct {
	Alerts   AlertLister
	Silencer Silencer
	// Outbox lists notifications and re-sends dead ones; nil hides them.
	Outbox Outbox
	// Detectors returns every detector's status for /api/v1/detectors and the page.
	Detectors func() []DetectorStatus
	// Series returns the points of an alert's chart from mlwatch's
	// evaluations: the chart of metrics without a log series.
	Series func(ctx context.Context, a alerts.View) ([]Point, error)
	// LogSeries returns an alert's metric over span ending now from the
	// prediction log (Monitor.LogSeries); nil or detectors.ErrNoSeries:
	// Series draws it.
	LogSeries func(ctx context.Context, a alerts.View, span time.Duration, now time.Time) ([]Point, error)
	// VersionChanges lists a model's version switches over span ending at
	// end from the log, for the charts' markers (nil: Models' rollouts).
	VersionChanges func(ctx context.Context, model string, span time.Duration, end time.Time) ([]detectors.VersionChange, error)
	// Models lists each model's versions and recent rollouts for
	// /api/v1/models and the charts' markers (nil: none).
	Models func() []ModelVersions
	// SlackInteractions, when set, is Slack's interactivity request URL
	// (POST /slack/interactions); it checks Slack's signature itself.
	SlackInteractions http.Handler
	// Triage lists triage actions (acks, silences, feedback) since a time,
	// for one alert when the fingerprint is set; nil hides them.
	Triage func(ctx context.Context, since time.Time, fingerprint string) ([]alerts.Action, error)
	// StoredAlert finds an alert the pipeline no longer holds (resolved a
	// while ago), for its page; nil: only current alerts have pages.
	StoredAlert func(ctx context.Context, fingerprint string) (alerts.View, bool, error)
	// Quality returns alert quality per detector and class (last 30 days),
	// for /api/v1/quality and the status page; nil hides it.
	Quality func() []alerts.QualityRow
	// Guardrails returns each model's latest guardrail report for
	// /api/v1/guardrails and the page (nil: none).
	Guardrails func() []GuardrailStatus
	// Reload re-reads the config; nil disables /-/reload.
	Reload func() error
	// Ready reports whether the daemon restored its state and scheduled its detectors.
	Ready   func() bool
	Metrics *Metrics
	// Token returns the bearer token mutating calls need; empty refuses them all.
	Token  func() string
	Logger *zap.Logger
	Now    func() time.Time
}

// Handler builds the daemon's HTTP handler: metrics, health, the JSON API
// and the status page.
func Handler(opt ServerOptions) http.Handler {
	if opt.Logger == nil {
		opt.Logger = zap.NewNop()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	s := &server{opt: opt}
	mux := http.NewServeMux()
	if opt.Metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(opt.Metrics.Registry, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "mlwatch is healthy.") })
	mux.HandleFunc("GET /-/ready", s.ready)
	mux.HandleFunc("POST /-/reload", s.auth(s.reload))
	mux.HandleFunc("GET /api/v1/alerts", s.alerts)
	mux.HandleFunc("GET /api/v1/silences", s.silences)
	mux.HandleFunc("POST /api/v1/silences", s.auth(s.addSilence))
	mux.HandleFunc("DELETE /api/v1/silences/{id}", s.auth(s.expireSilence))
	mux.HandleFunc("GET /api/v1/detectors", s.detectors)
	mux.HandleFunc("GET /api/v1/models", s.models)
	mux.HandleFunc("GET /api/v1/guardrails", s.guardrails)
	mux.HandleFunc("GET /api/v1/notifications", s.notifications)
	mux.HandleFunc("POST /api/v1/notifications/{id}/retry", s.auth(s.retryNotification))
	mux.HandleFunc("GET /api/v1/triage", s.triage)
	mux.HandleFunc("GET /api/v1/quality", s.quality)
	if opt.SlackInteractions != nil {
		mux.Handle("POST /slack/interactions", opt.SlackInteractions)
	}
	mux.HandleFunc("GET /alerts/{fingerprint}", s.alertPage)
	mux.HandleFunc("GET /{$}", s.statusPage)
	return mux
}

type server struct{ opt ServerOptions }

// apiResponse is the envelope of every JSON answer, as in Prometheus.
type apiResponse struct {
	Status string `json:"status"`
	Data   any    `json:"data,omitempty"`
	Error  string `json:"error,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, apiResponse{Status: "error", Error: err.Error()})
}

// auth admits a mutating call only with the configured bearer token.
func (s *server) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token := ""
		if s.opt.Token != nil {
			token = s.opt.Token()
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if token == "" || !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mlwatch"`)
			msg := "a bearer token is required"
			if token == "" {
				msg = "mutating calls are disabled: set the API token (server.api_token_env, default MLWATCH_API_TOKEN)"
			}
			writeError(w, http.StatusUnauthorized, errors.New(msg))
			return
		}
		next(w, r)
	}
}

func (s *server) ready(w http.ResponseWriter, _ *http.Request) {
	if s.opt.Ready != nil && !s.opt.Ready() {
		http.Error(w, "mlwatch is not ready.", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "mlwatch is ready.")
}

func (s *server) reload(w http.ResponseWriter, _ *http.Request) {
	if s.opt.Reload == nil {
		writeError(w, http.StatusNotFound, errors.New("reload is not available"))
		return
	}
	if err := s.opt.Reload(); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, apiResponse{Status: "success"})
}

func (s *server) alerts(w http.ResponseWriter, r *http.Request) {
	views := s.opt.Alerts.Alerts()
	if st := r.URL.Query().Get("state"); st != "" {
		kept := views[:0]
		for _, v := range views {
			if v.State == st {
				kept = append(kept, v)
			}
		}
		views = kept
	}
	if views == nil {
		views = []alerts.View{}
	}
	writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: views})
}

// silenceView is a silence with its state, as the API shows it.
type silenceView struct {
	alerts.Silence
	State string `json:"state"`
}

func (s *server) silences(w http.ResponseWriter, _ *http.Request) {
	now := s.opt.Now()
	out := []silenceView{}
	for _, sil := range s.opt.Alerts.Silences() {
		out = append(out, silenceView{sil, sil.State(now)})
	}
	writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: out})
}

// silenceRequest is the body of POST /api/v1/silences: matchers as
// "name=value" strings (or =~, !=, !~), and either ends_at or duration.
type silenceRequest struct {
	Matchers  []string  `json:"matchers"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	Duration  string    `json:"duration"`
	CreatedBy string    `json:"created_by"`
	Comment   string    `json:"comment"`
}

func (s *server) addSilence(w http.ResponseWriter, r *http.Request) {
	var req silenceRequest
	if code, err := decodeBody(w, r, &req); err != nil {
		writeError(w, code, fmt.Errorf("silence: %w", err))
		return
	}
	sil, err := buildSilence(req, s.opt.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	sil, err = s.opt.Silencer.AddSilence(r.Context(), sil)
	if errors.Is(err, alerts.ErrTooManySilences) {
		writeError(w, http.StatusUnprocessableEntity, err)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: silenceView{sil, sil.State(s.opt.Now())}})
}

// maxBody bounds a JSON request body; silences and the like are a few
// hundred bytes.
const maxBody = 1 << 20

// decodeBody reads one JSON object from the body into v, strictly: unknown
// fields, anything after the object, and a body over maxBody are refused.
// The status to answer comes back with the error: 413 naming the limit
// for a body too large, else 400.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) (int, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// A second value, or garbage, after the object: a client that
		// sent two bodies or a truncated concatenation must not get half
		// of what it meant.
		if err2 := dec.Decode(&json.RawMessage{}); err2 != io.EOF {
			err = err2
			if err2 == nil || !errors.As(err2, new(*http.MaxBytesError)) {
				err = errors.New("unexpected data after the JSON object")
			}
		}
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("request body larger than %d bytes (1 MiB)", tooLarge.Limit)
	}
	if err != nil {
		return http.StatusBadRequest, err
	}
	return 0, nil
}

// buildSilence checks a silence request: matchers parse, it ends after it
// starts, and it names who and why.
func buildSilence(req silenceRequest, now time.Time) (alerts.Silence, error) {
	if len(req.Matchers) == 0 {
		return alerts.Silence{}, errors.New("silence: at least one matcher is required")
	}
	sil := alerts.Silence{StartsAt: req.StartsAt, EndsAt: req.EndsAt, CreatedBy: req.CreatedBy, Comment: req.Comment}
	ms, err := alerts.ParseMatchers(req.Matchers)
	if err != nil {
		return alerts.Silence{}, fmt.Errorf("silence: %w", err)
	}
	sil.Matchers = ms
	if sil.StartsAt.IsZero() {
		sil.StartsAt = now
	}
	if req.Duration != "" {
		if !sil.EndsAt.IsZero() {
			return alerts.Silence{}, errors.New("silence: give ends_at or duration, not both")
		}
		d, err := configs.ParseDuration(req.Duration)
		if err != nil {
			return alerts.Silence{}, fmt.Errorf("silence: duration: %w", err)
		}
		sil.EndsAt = sil.StartsAt.Add(d)
	}
	if !sil.EndsAt.After(sil.StartsAt) {
		return alerts.Silence{}, errors.New("silence: ends_at (or duration) must be after starts_at")
	}
	if strings.TrimSpace(sil.CreatedBy) == "" || strings.TrimSpace(sil.Comment) == "" {
		return alerts.Silence{}, errors.New("silence: created_by and comment are required")
	}
	return sil, nil
}

func (s *server) expireSilence(w http.ResponseWriter, r *http.Request) {
	sil, err := s.opt.Silencer.ExpireSilence(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, err)
		return
	}
	writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: silenceView{sil, sil.State(s.opt.Now())}})
}

// models lists each model's current versions and recent rollouts.
func (s *server) models(w http.ResponseWriter, _ *http.Request) {
	out := []ModelVersions{}
	if s.opt.Models != nil {
		out = s.opt.Models()
	}
	writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: out})
}

// rolloutMarkers are the chart markers of a model's rollouts.
func (s *server) rolloutMarkers(model string) []Marker {
	if s.opt.Models == nil {
		return nil
	}
	var out []Marker
	for _, mv := range s.opt.Models() {
		if mv.Model != model {
			continue
		}
		for _, r := range mv.Rollouts {
			out = append(out, Marker{At: r.At, Label: r.Role + " " + r.To})
		}
	}
	return out
}

func (s *server) detectors(w http.ResponseWriter, _ *http.Request) {
	var out []DetectorStatus
	if s.opt.Detectors != nil {
		out = s.opt.Detectors()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if out == nil {
		out = []DetectorStatus{}
	}
	writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: out})
}

// guardrails lists each model's latest guardrail report.
func (s *server) guardrails(w http.ResponseWriter, _ *http.Request) {
	out := []GuardrailStatus{}
	if s.opt.Guardrails != nil {
		out = append(out, s.opt.Guardrails()...)
	}
	writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: out})
}

// notifications lists the outbox, newest first; state=pending|sent|dead
// filters.
func (s *server) notifications(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	switch state {
	case "", alerts.NotificationPending, alerts.NotificationSent, alerts.NotificationDead:
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("state %q: want pending, sent or dead", state))
		return
	}
	out := []alerts.NotificationStatus{}
	if s.opt.Outbox != nil {
		out = append(out, s.opt.Outbox.Notifications(state)...)
	}
	writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: out})
}

// retryNotification sends a dead notification again (after its receiver
// was fixed).
func (s *server) retryNotification(w http.ResponseWriter, r *http.Request) {
	if s.opt.Outbox == nil {
		writeError(w, http.StatusNotFound, errors.New("notifications are not available"))
		return
	}
	n, err := s.opt.Outbox.Retry(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, alerts.ErrNotificationNotFound):
		writeError(w, http.StatusNotFound, err)
		return
	case err != nil:
		writeError(w, http.StatusConflict, err)
		return
	}
	writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: n})
}

// triage lists triage actions, newest first: ?fingerprint= selects one
// alert's, ?since= (RFC 3339 or a duration back from now, default 30d)
// bounds them.
func (s *server) triage(w http.ResponseWriter, r *http.Request) {
	out := []alerts.Action{}
	if s.opt.Triage == nil {
		writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: out})
		return
	}
	since := s.opt.Now().Add(-30 * 24 * time.Hour)
	if v := r.URL.Query().Get("since"); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			since = t
		} else if d, err := configs.ParseDuration(v); err == nil {
			since = s.opt.Now().Add(-d)
		} else {
			writeError(w, http.StatusBadRequest, fmt.Errorf("since %q: want RFC 3339 or a duration (30d)", v))
			return
		}
	}
	list, err := s.opt.Triage(r.Context(), since, r.URL.Query().Get("fingerprint"))
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	out = append(out, list...)
	writeJSON(w, http.StatusOK, apiResponse{Status: "success", Data: out})
}
