package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mlwatch/mlwatch/configs"
)

// WebhookVersion is the version of the webhook body below.
const WebhookVersion = "1"

// WebhookBody is what the webhook receiver POSTs (Content-Type
// application/json), one body per notification:
//
//	{
//	  "version": "1",
//	  "id": "5f0c…",                 // unique per notification; retries repeat it (dedupe on it)
//	  "receiver": "fraud-infra",
//	  "kind": "firing",              // firing (a group's first message) | update | resolved (group closed)
//	  "status": "firing",            // the group's status after this message: firing | resolved
//	  "group_key": "model=fraud,class=feature_pipeline",
//	  "group_labels": {"model": "fraud", "class": "feature_pipeline"},
//	  "thread": "",                  // id of the group's first notification ("" for a first message)
//	  "alerts": [                    // worst first; the fields of `mlwatch eval --format json`, plus:
//	    {"fingerprint": "…", "state": "firing", "change": "new",   // new | firing | caused | resolved
//	     "detector": "…", "kind": "…", "class": "…", "owner": "infra", "severity": "page",
//	     "model": "fraud", "slice": {"country": "FR"}, "feature": "…", "metric": "…",
//	     "value": 0.4, "baseline": 0.01, "p_value": 1e-12, "n_current": 5000, "n_baseline": 40000,
//	     "summary": "…", "caused_by": "", "silenced": false, "labels": {…},
//	     "runbook_url": "…", "active_at": "…", "fired_at": "…", "resolved_at": "…"}
//	  ],
//	  "root_alerts": [...],          // resolved only: the alerts of the group's first message
//	  "external_url": "http://127.0.0.1:9107",
//	  "created_at": "2026-01-02T03:04:05Z",
//	  "repeat_interval": 14400000000000,  // nanoseconds
//	  "fallback_for": {"id": "…", "receiver": "fraud-product", "error": "…"}  // only on a copy of a dead notification
//	}
//
// p_value and other figures are null where they do not exist. A 2xx answer
// is success; 429, 5xx and transport errors are retried; other answers drop
// the notification.
type WebhookBody struct {
	Version string `json:"version"`
	Notification
}

// Webhook posts WebhookBody to a URL, with a bearer token when configured.
type Webhook struct {
	name   string
	cfg    configs.WebhookReceiver
	client *http.Client
}

// NewWebhook builds a webhook notifier; hc nil means a client with the
// receiver's timeout.
func NewWebhook(name string, cfg configs.WebhookReceiver, hc *http.Client) *Webhook {
	if hc == nil {
		hc = &http.Client{Timeout: cfg.HTTPTimeout()}
	}
	return &Webhook{name: name, cfg: cfg, client: hc}
}

// Notify implements Notifier.
func (w *Webhook) Notify(ctx context.Context, n *Notification) (string, bool, error) {
	body, err := json.Marshal(WebhookBody{Version: WebhookVersion, Notification: *n})
	if err != nil {
		return "", false, fmt.Errorf("webhook %s: encode: %w", w.name, err)
	}
	return postJSON(ctx, w.client, w.cfg.URL, w.cfg.BearerToken, body, "webhook "+w.name)
}

// postJSON POSTs a body and classifies the outcome.
func postJSON(ctx context.Context, hc *http.Client, url, bearer string, body []byte, what string) (string, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", what, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mlwatch")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", netRetryable(err), fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 == 2 {
		return "", false, nil
	}
	err = fmt.Errorf("%s: HTTP %d: %s%s", what, resp.StatusCode, bytes.TrimSpace(msg), httpFix(resp.StatusCode, url, bearer != ""))
	if resp.StatusCode == http.StatusTooManyRequests {
		if d := retryAfter(resp.Header, time.Now()); d > 0 {
			return "", true, &RetryAfterError{After: d, Err: err}
		}
	}
	return "", httpRetryable(resp.StatusCode), err
}

// httpFix says what to check after a refusal that retrying cannot cure.
func httpFix(code int, url string, bearer bool) string {
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden:
		if bearer {
			return " (the receiver refused the bearer token: check bearer_token_env)"
		}
		return " (the receiver wants credentials: set bearer_token_env)"
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusGone:
		return fmt.Sprintf(" (nothing takes POSTs at %s: check the receiver's url)", url)
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return " (the receiver refused the body: check that its url takes this receiver kind's JSON)"
	}
	return ""
}
