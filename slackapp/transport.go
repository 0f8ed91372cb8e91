package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/configs"
)

// maxInteractionBody bounds an interaction request; Slack's are a few KB.
const maxInteractionBody = 1 << 20

// replayWindow is how long a signed request is valid (Slack's 5 minutes,
// which slack.NewSecretsVerifier enforces); a signature seen within it is
// a replay.
const replayWindow = 5 * time.Minute

// HTTPEnabled reports whether the HTTP endpoint has its signing secret.
func (a *App) HTTPEnabled() bool {
	i := a.cfg.Load().Slack.Interactivity
	return i != nil && i.SigningSecret != ""
}

// SocketModeEnabled reports whether Socket Mode has its app-level token.
func (a *App) SocketModeEnabled() bool {
	i := a.cfg.Load().Slack.Interactivity
	return i != nil && i.AppToken != ""
}

// ServeHTTP is POST /slack/interactions: Slack's interactivity request
// URL. The signature (v0 HMAC of the timestamp and body with the signing
// secret) must match, the timestamp must be within 5 minutes, and a
// signature is accepted once.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := a.cfg.Load().Slack.Interactivity
	if i == nil || i.SigningSecret == "" {
		http.Error(w, "slack interactivity endpoint disabled: no signing secret", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxInteractionBody+1))
	if err != nil || len(body) > maxInteractionBody {
		http.Error(w, "request body unreadable or too large", http.StatusRequestEntityTooLarge)
		return
	}
	sv, err := slack.NewSecretsVerifier(r.Header, i.SigningSecret)
	if err == nil {
		_, _ = sv.Write(body)
		err = sv.Ensure()
	}
	if err != nil {
		msg := "bad signature"
		if errors.Is(err, slack.ErrExpiredTimestamp) {
			msg = "stale timestamp"
		}
		a.log.Warn("slack interaction refused", zap.String("reason", msg), zap.String("remote", r.RemoteAddr))
		http.Error(w, msg, http.StatusUnauthorized)
		return
	}
	if a.replayed(r.Header.Get("X-Slack-Signature")) {
		a.log.Warn("slack interaction refused", zap.String("reason", "replayed"), zap.String("remote", r.RemoteAddr))
		http.Error(w, "replayed request", http.StatusUnauthorized)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "bad form body", http.StatusBadRequest)
		return
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	resp := a.Handle(r.Context(), cb, TransportHTTP)
	w.Header().Set("Content-Type", "application/json")
	if resp == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	_ = json.NewEncoder(w).Encode(resp)
}

// replayed records a signature and says whether it was seen already.
func (a *App) replayed(sig string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.opt.Now()
	for s, at := range a.seen {
		if now.Sub(at) > 2*replayWindow {
			delete(a.seen, s)
		}
	}
	if _, ok := a.seen[sig]; ok {
		return true
	}
	a.seen[sig] = now
	return false
}

// socketSettings are what a Socket Mode connection depends on.
type socketSettings struct{ token, api string }

func socketOf(cfg *configs.Config) socketSettings {
	i := cfg.Slack.Interactivity
	if i == nil || i.AppToken == "" {
		return socketSettings{}
	}
	api := cfg.Slack.APIURL
	if api == "" {
		api = "https://slack.com/api/"
	}
	return socketSettings{token: i.AppToken, api: api}
}

// RunSocketMode connects to Slack over Socket Mode with the app-level
// token and handles interactions until ctx ends; each envelope is
// acknowledged once handled. A reload that changes the token (or the API
// URL) closes the connection and opens one with the new token; without
// a token it waits for a reload that sets one. A connection that fails
// for good (a revoked token) is logged and waits for a reload too.
func (a *App) RunSocketMode(ctx context.Context) error {
	for {
		a.mu.Lock()
		changed := a.socketChanged
		a.mu.Unlock()
		s := socketOf(a.cfg.Load())
		if s.token == "" {
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
				continue
			}
		}
		runCtx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- a.runSocket(runCtx, s) }()
		select {
		case <-ctx.Done():
			cancel()
			<-errc
			return nil
		case <-changed:
			cancel()
			<-errc
			a.log.Info("slack socket mode reconnecting: its settings changed on reload")
		case err := <-errc:
			cancel()
			a.log.Error("slack socket mode stopped; a reload that changes its app-level token starts it again", zap.Error(err))
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
			}
		}
	}
}

// runSocket is one Socket Mode connection with settings s, until ctx ends
// or the connection fails for good.
func (a *App) runSocket(ctx context.Context, s socketSettings) error {
	client := socketmode.New(slack.New("", slack.OptionAppLevelToken(s.token), slack.OptionAPIURL(s.api), slack.OptionHTTPClient(a.opt.HTTPClient)))
	events, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-events.Done():
				return
			case evt, ok := <-client.Events:
				if !ok {
					return
				}
				a.socketEvent(ctx, client, evt)
			}
		}
	}()
	err := client.RunContext(ctx)
	stop() // the event loop ends with the connection
	<-done
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return nil
	}
	return err
}

func (a *App) socketEvent(ctx context.Context, client *socketmode.Client, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnected:
		a.log.Info("slack socket mode connected")
	case socketmode.EventTypeConnectionError, socketmode.EventTypeInvalidAuth:
		a.log.Warn("slack socket mode connection failed", zap.Any("error", evt.Data))
	case socketmode.EventTypeInteractive:
		cb, ok := evt.Data.(slack.InteractionCallback)
		if !ok || evt.Request == nil {
			return
		}
		resp := a.Handle(ctx, cb, TransportSocketMode)
		var err error
		if resp != nil {
			err = client.AckCtx(ctx, evt.Request.EnvelopeID, resp)
		} else {
			err = client.AckCtx(ctx, evt.Request.EnvelopeID, nil)
		}
		if err != nil {
			a.log.Warn("slack envelope not acknowledged", zap.String("envelope", evt.Request.EnvelopeID), zap.Error(err))
		}
	default:
		if evt.Request != nil && evt.Request.EnvelopeID != "" {
			_ = client.AckCtx(ctx, evt.Request.EnvelopeID, nil)
		}
	}
}
