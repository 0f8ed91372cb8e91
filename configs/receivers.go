package configs

import (
	"fmt"
	"strings"
	"time"
)

// Receiver defaults, filled in by Load and used by alerts for receivers
// built without it.
const (
	DefaultSlackAPIURL         = "https://slack.com/api/"
	DefaultSlackTimeout        = 15 * time.Second
	DefaultWebhookTimeout      = 10 * time.Second
	DefaultAlertmanagerTimeout = 10 * time.Second
)

// Receiver is one notification destination.
type Receiver struct {
	Name         string                `yaml:"name"`
	Slack        *SlackReceiver        `yaml:"slack"`
	Webhook      *WebhookReceiver      `yaml:"webhook"`
	Alertmanager *AlertmanagerReceiver `yaml:"alertmanager"`
	// FallbackReceiver gets a copy of a page this receiver refused for
	// good; it overrides global.fallback_receiver.
	FallbackReceiver string `yaml:"fallback_receiver"`
}

// SlackReceiver posts to one Slack channel with a bot token.
type SlackReceiver struct {
	// Channel is a channel ID (C0123...) or a name (#fraud-alerts),
	// resolved once to an ID.
	Channel   string `yaml:"channel"`
	TokenEnv  string `yaml:"token_env"`
	TokenFile string `yaml:"token_file"`
	// APIURL overrides slack.api_url for this receiver.
	APIURL string `yaml:"api_url"`
	// Mentions are Slack user or group IDs to mention on pages
	// (U0123, S0123 for user groups).
	Mentions []string `yaml:"mentions"`
	// Timeout bounds one Slack API call (default DefaultSlackTimeout, at
	// most MaxReceiverTimeout).
	Timeout Duration `yaml:"timeout"`

	// Token is resolved from token_env or token_file.
	Token string `yaml:"-"`
}

// WebhookReceiver posts the documented JSON body to a URL.
type WebhookReceiver struct {
	URL            string   `yaml:"url"`
	BearerTokenEnv string   `yaml:"bearer_token_env"`
	Timeout        Duration `yaml:"timeout"`

	BearerToken string `yaml:"-"`
}

// AlertmanagerReceiver posts to an Alertmanager's /api/v2/alerts.
type AlertmanagerReceiver struct {
	URL     string   `yaml:"url"`
	Timeout Duration `yaml:"timeout"`
}

// API returns the Slack Web API base the receiver calls: its own
// api_url, else the global slack.api_url, else DefaultSlackAPIURL; it ends
// in '/'.
func (s *SlackReceiver) API(global Slack) string {
	api := s.APIURL
	if api == "" {
		api = global.APIURL
	}
	if api == "" {
		api = DefaultSlackAPIURL
	}
	if !strings.HasSuffix(api, "/") {
		api += "/"
	}
	return api
}

// HTTPTimeout is the receiver's timeout, DefaultSlackTimeout when unset.
func (s *SlackReceiver) HTTPTimeout() time.Duration { return orDefault(s.Timeout, DefaultSlackTimeout) }

// HTTPTimeout is the receiver's timeout, DefaultWebhookTimeout when unset.
func (w *WebhookReceiver) HTTPTimeout() time.Duration {
	return orDefault(w.Timeout, DefaultWebhookTimeout)
}

// HTTPTimeout is the receiver's timeout, DefaultAlertmanagerTimeout when unset.
func (a *AlertmanagerReceiver) HTTPTimeout() time.Duration {
	return orDefault(a.Timeout, DefaultAlertmanagerTimeout)
}

func orDefault(d Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d.D()
}

// MaxReceiverTimeout bounds a receiver's timeout: a receiver that may hang
// for an hour holds its own notifications that long, and shutdown waits
// for nobody that long.
const MaxReceiverTimeout = 5 * time.Minute

func (v *validator) receiverTimeout(path string, d *Duration, def time.Duration) {
	switch {
	case *d == 0:
		*d = Duration(def)
	case d.D() < 0:
		v.errf(path, "timeout %s must be positive", *d)
	case d.D() > MaxReceiverTimeout:
		v.errf(path, "timeout %s is longer than the %s a receiver may take (a hanging receiver holds its notifications and shutdown that long)", *d, MaxReceiverTimeout)
	}
}

// fallbacks checks fallback_receiver (global and per receiver): it names
// a receiver, not the one it backs up.
func (v *validator) fallbacks(c *Config, receivers map[string]bool) {
	if fb := c.Global.FallbackReceiver; fb != "" && !receivers[fb] {
		v.errf("global.fallback_receiver", "unknown receiver %q", fb)
	}
	for i := range c.Receivers {
		r := &c.Receivers[i]
		path := fmt.Sprintf("receivers[%d].fallback_receiver", i)
		switch fb := r.FallbackReceiver; {
		case fb == "":
		case !receivers[fb]:
			v.errf(path, "unknown receiver %q", fb)
		case fb == r.Name:
			v.errf(path, "receiver %q cannot be its own fallback", r.Name)
		}
	}
}

func (v *validator) receiver(path string, r *Receiver) {
	v.name(path+".name", r.Name, "receiver")
	if r.Slack == nil && r.Webhook == nil && r.Alertmanager == nil {
		v.errf(path, "receiver %q needs slack, webhook or alertmanager", r.Name)
	}
	kinds := 0
	for _, set := range []bool{r.Slack != nil, r.Webhook != nil, r.Alertmanager != nil} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		v.errf(path, "receiver %q sets more than one of slack, webhook and alertmanager; make one receiver each and route to both", r.Name)
	}
	if s := r.Slack; s != nil {
		if s.Channel == "" {
			v.errf(path+".slack.channel", "channel is required")
		}
		if s.TokenEnv == "" && s.TokenFile == "" {
			v.errf(path+".slack", "token_env or token_file is required (the token is never written in the config)")
		}
		s.Token = v.secret(path+".slack.token_file", s.TokenEnv, s.TokenFile)
		if s.APIURL != "" {
			v.url(path+".slack.api_url", s.APIURL)
		}
		if val, ok := v.lookup(EnvSlackAPIURL); ok && val != "" {
			s.APIURL = val
		}
		if s.APIURL != "" && !strings.HasSuffix(s.APIURL, "/") {
			s.APIURL += "/"
		}
		v.receiverTimeout(path+".slack.timeout", &s.Timeout, DefaultSlackTimeout)
	}
	if w := r.Webhook; w != nil {
		v.url(path+".webhook.url", w.URL)
		v.receiverTimeout(path+".webhook.timeout", &w.Timeout, DefaultWebhookTimeout)
		if val, ok := v.lookup(w.BearerTokenEnv); ok {
			w.BearerToken = val
		}
	}
	if a := r.Alertmanager; a != nil {
		v.url(path+".alertmanager.url", a.URL)
		v.receiverTimeout(path+".alertmanager.timeout", &a.Timeout, DefaultAlertmanagerTimeout)
	}
}
