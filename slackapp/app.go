// Package slackapp takes the triage buttons of mlwatch's Slack messages:
// Acknowledge, Silence (1h, 4h, 24h, until resolved), False positive and
// Expected (with an optional reason from a modal). Clicks arrive over
// Socket Mode (an app-level token, no inbound port) or the HTTP endpoint
// POST /slack/interactions (checked with the signing secret); both go
// through App.Handle. Every action is stored in the triage table, changes
// the alert (ack, silence), and is shown in the message it came from.
package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
)

// Transports an action can arrive by.
const (
	TransportSocketMode = "socket_mode"
	TransportHTTP       = "http"
)

// untilResolvedMax is how long a silence "until resolved" lasts at most:
// the sweep ends it as soon as its alert resolves.
const untilResolvedMax = 7 * 24 * time.Hour

// handleTimeout bounds the work of one click (ClickHouse writes, Slack calls).
const handleTimeout = 10 * time.Second

// feedbackCallback is the callback_id of the reason modal.
const feedbackCallback = "mlwatch_feedback"

// Alerts is what the app needs from the alert pipeline.
type Alerts interface {
	Alert(fingerprint string) (alerts.View, bool)
	Ack(fingerprint string, ack alerts.Ack) (alerts.View, error)
	RestoreAcks(actions []alerts.Action) int
}

// Silencer adds and ends silences.
type Silencer interface {
	AddSilence(ctx context.Context, s alerts.Silence) (alerts.Silence, error)
	ExpireSilence(ctx context.Context, id string) (alerts.Silence, error)
}

// Log stores and lists triage actions.
type Log interface {
	Record(ctx context.Context, a alerts.Action) (alerts.Action, error)
	List(ctx context.Context, since time.Time, fingerprint string) ([]alerts.Action, error)
}

// Options configure an App.
type Options struct {
	Config   *configs.Config
	Alerts   Alerts
	Silences Silencer
	Log      Log
	Logger   *zap.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// HTTPClient carries Slack API calls; a 15 s client when nil.
	HTTPClient *http.Client
}

// App handles Slack interactions for the daemon. Safe for concurrent use.
type App struct {
	opt Options
	log *zap.Logger
	cfg atomic.Pointer[configs.Config]

	mu sync.Mutex
	// socketChanged is closed (and replaced) when a reload changes what
	// the Socket Mode connection depends on (transport.go).
	socketChanged chan struct{}
	groups        map[string]groupMembers // user-group ID → members, cached
	pending       map[string]alerts.Action
	seen          map[string]time.Time // HTTP signatures seen (replays)
}

type groupMembers struct {
	at      time.Time
	members map[string]bool
}

// groupTTL is how long a user group's members are cached.
const groupTTL = 5 * time.Minute

// New builds an App; it logs one warning for each transport whose secret
// is unset.
func New(opt Options) *App {
	if opt.Logger == nil {
		opt.Logger = zap.NewNop()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	a := &App{opt: opt, log: opt.Logger, groups: map[string]groupMembers{}, pending: map[string]alerts.Action{}, seen: map[string]time.Time{},
		socketChanged: make(chan struct{})}
	a.cfg.Store(opt.Config)
	a.warnTransports(nil, opt.Config)
	return a
}

// SetConfig swaps in a reloaded config (receivers, silencers, secrets).
// The HTTP endpoint checks each request with the signing secret in force;
// a changed app-level token or API URL makes Socket Mode reconnect with
// the new one (transport.go). A transport whose secret the reload unset
// stops, with one warning; one whose secret it set starts.
func (a *App) SetConfig(cfg *configs.Config) {
	a.mu.Lock()
	old := a.cfg.Load()
	a.cfg.Store(cfg)
	if socketOf(old) != socketOf(cfg) {
		close(a.socketChanged)
		a.socketChanged = make(chan struct{})
	}
	a.mu.Unlock()
	a.warnTransports(old, cfg)
}

// warnTransports logs once for each transport that is off in cfg and was
// not already off in old (nil at start), and says which came back on.
func (a *App) warnTransports(old, cfg *configs.Config) {
	i := cfg.Slack.Interactivity
	if i == nil {
		return
	}
	var was *configs.Interactivity
	if old != nil {
		was = old.Slack.Interactivity
	}
	wasSocket, wasHTTP := old == nil || (was != nil && was.AppToken != ""), old == nil || (was != nil && was.SigningSecret != "")
	switch {
	case i.AppToken == "" && wasSocket:
		a.log.Warn("slack socket mode disabled: app-level token not set", zap.String("env", i.AppTokenEnv), zap.String("file", i.AppTokenFile))
	case i.AppToken != "" && !wasSocket:
		a.log.Info("slack socket mode enabled by reload")
	}
	switch {
	case i.SigningSecret == "" && wasHTTP:
		a.log.Warn("slack interactivity endpoint disabled: signing secret not set", zap.String("env", i.SigningSecretEnv), zap.String("file", i.SigningSecretFile))
	case i.SigningSecret != "" && !wasHTTP:
		a.log.Info("slack interactivity endpoint enabled by reload")
	}
}

// Restore applies the stored acks to the restored alerts and picks up the
// silences "until resolved" still to be ended.
func (a *App) Restore(ctx context.Context) error {
	since := a.opt.Now().Add(-untilResolvedMax - 24*time.Hour)
	actions, err := a.opt.Log.List(ctx, since, "")
	if err != nil {
		return err
	}
	n := a.opt.Alerts.RestoreAcks(actions)
	a.mu.Lock()
	for _, ac := range actions {
		if ac.Action == alerts.ActionSilence && ac.SilenceFor == untilResolved && ac.SilenceID != "" {
			a.pending[ac.SilenceID] = ac
		}
	}
	p := len(a.pending)
	a.mu.Unlock()
	a.log.Info("triage restored", zap.Int("acks", n), zap.Int("silences_until_resolved", p))
	return nil
}

const untilResolved = "until_resolved"

// Sweep ends the silences "until resolved" whose alert resolved (or is no
// longer known, or started a new incident).
func (a *App) Sweep(ctx context.Context) {
	a.mu.Lock()
	var due []alerts.Action
	for id, ac := range a.pending {
		v, ok := a.opt.Alerts.Alert(ac.Fingerprint)
		if ok && (v.State == "firing" || v.State == "pending") && sameSecond(v.ActiveAt, ac.AlertActiveAt) {
			continue
		}
		due = append(due, ac)
		delete(a.pending, id)
	}
	a.mu.Unlock()
	for _, ac := range due {
		if _, err := a.opt.Silences.ExpireSilence(ctx, ac.SilenceID); err != nil && !errors.Is(err, alerts.ErrSilenceNotFound) {
			a.log.Warn("silence until resolved not ended; will retry", zap.String("silence", ac.SilenceID), zap.Error(err))
			a.mu.Lock()
			a.pending[ac.SilenceID] = ac
			a.mu.Unlock()
			continue
		}
		a.log.Info("silence until resolved ended", zap.String("silence", ac.SilenceID), zap.String("fingerprint", ac.Fingerprint))
	}
}

func sameSecond(x, y time.Time) bool { return x.Truncate(time.Second).Equal(y.Truncate(time.Second)) }

// Handle acts on one interaction; what it returns is the body of the
// acknowledgement (a modal's response_action) or nil.
func (a *App) Handle(ctx context.Context, cb slack.InteractionCallback, transport string) any {
	ctx, cancel := context.WithTimeout(ctx, handleTimeout)
	defer cancel()
	switch cb.Type {
	case slack.InteractionTypeBlockActions:
		for _, act := range cb.ActionCallback.BlockActions {
			a.blockAction(ctx, cb, act, transport)
		}
	case slack.InteractionTypeViewSubmission:
		if cb.View.CallbackID == feedbackCallback {
			return a.feedbackReason(ctx, cb, transport)
		}
	}
	return nil
}

// click is one button press, resolved to its alert and receiver.
type click struct {
	cb        slack.InteractionCallback
	transport string
	fp        string
	receiver  string
	channel   string
	ts        string
}

func (a *App) blockAction(ctx context.Context, cb slack.InteractionCallback, act *slack.BlockAction, transport string) {
	value := act.Value
	if act.ActionID == alerts.ActionIDSilence {
		value = act.SelectedOption.Value
	}
	fp, receiver, extra := alerts.ParseButtonValue(value)
	c := click{cb: cb, transport: transport, fp: fp, receiver: receiver, channel: cb.Container.ChannelID, ts: cb.Container.MessageTs}
	if c.channel == "" {
		c.channel = cb.Channel.ID
	}
	if c.ts == "" {
		c.ts = cb.Message.Timestamp
	}
	log := a.log.With(zap.String("action", act.ActionID), zap.String("fingerprint", fp), zap.String("user", cb.User.ID), zap.String("transport", transport))
	var err error
	switch act.ActionID {
	case alerts.ActionIDAck:
		err = a.ack(ctx, c)
	case alerts.ActionIDSilence:
		err = a.silence(ctx, c, extra)
	case alerts.ActionIDFalsePositive:
		err = a.feedback(ctx, c, alerts.ActionFalsePositive)
	case alerts.ActionIDExpected:
		err = a.feedback(ctx, c, alerts.ActionExpected)
	default:
		return // the link button, or another app's
	}
	if err != nil {
		log.Warn("slack action failed", zap.Error(err))
		a.ephemeral(ctx, c, ":x: mlwatch could not do that: "+err.Error())
		return
	}
	log.Info("slack action")
}

// userName is how an action names its author.
func userName(u slack.User) string {
	if u.Name != "" {
		return u.Name
	}
	return u.ID
}

func (a *App) action(c click, kind string, v alerts.View) alerts.Action {
	return alerts.Action{
		At: a.opt.Now().UTC(), Action: kind, Fingerprint: c.fp, AlertActiveAt: v.ActiveAt,
		Detector: v.Detector, Model: v.Model, Class: v.Class, Severity: v.Severity,
		UserID: c.cb.User.ID, UserName: userName(c.cb.User), Transport: c.transport, Receiver: c.receiver,
	}
}

// errNotActive is what a click on a resolved alert's button says.
var errNotActive = errors.New("this alert is no longer active (it resolved or the daemon forgot it)")

func (a *App) ack(ctx context.Context, c click) error {
	v, ok := a.opt.Alerts.Alert(c.fp)
	if !ok || (v.State != "firing" && v.State != "pending") {
		return errNotActive
	}
	now := a.opt.Now().UTC()
	if _, err := a.opt.Alerts.Ack(c.fp, alerts.Ack{UserID: c.cb.User.ID, UserName: userName(c.cb.User), At: now}); err != nil {
		return err
	}
	if _, err := a.opt.Log.Record(ctx, a.action(c, alerts.ActionAck, v)); err != nil {
		return err
	}
	return a.refresh(ctx, c, v)
}

func (a *App) silence(ctx context.Context, c click, choice string) error {
	v, ok := a.opt.Alerts.Alert(c.fp)
	if !ok {
		return errNotActive
	}
	if allowed, who := a.maySilence(ctx, c.receiver, c.cb.User.ID); !allowed {
		a.ephemeral(ctx, c, fmt.Sprintf(":no_entry: You may not silence alerts of *%s* from Slack; ask %s, or use the API.", c.receiver, who))
		return nil
	}
	now := a.opt.Now().UTC()
	var d time.Duration
	label := choice
	switch choice {
	case "1h", "4h", "24h":
		d, _ = time.ParseDuration(choice)
	case untilResolved:
		d, label = untilResolvedMax, "until resolved"
	default:
		return fmt.Errorf("unknown silence choice %q", choice)
	}
	sil, err := a.opt.Silences.AddSilence(ctx, alerts.Silence{
		Matchers:  Matchers(v),
		StartsAt:  now,
		EndsAt:    now.Add(d),
		CreatedBy: "@" + userName(c.cb.User) + " (Slack " + c.cb.User.ID + ")",
		Comment:   fmt.Sprintf("silenced %s from Slack: %s %s %s", label, v.Class, v.Model, alerts.SliceLabel(v.Slice)),
	})
	if err != nil {
		return err
	}
	ac := a.action(c, alerts.ActionSilence, v)
	ac.SilenceID, ac.SilenceFor = sil.ID, choice
	ac, err = a.opt.Log.Record(ctx, ac)
	if err != nil {
		return err
	}
	if choice == untilResolved {
		a.mu.Lock()
		a.pending[sil.ID] = ac
		a.mu.Unlock()
	}
	return a.refresh(ctx, c, v)
}

// Matchers select exactly one alert: its detector, model, class, slice
// and feature (an empty slice matches only the aggregate).
func Matchers(v alerts.View) []configs.Matcher {
	eq := func(n, val string) configs.Matcher {
		m, _ := configs.NewMatcher(n, "=", val)
		return m
	}
	return []configs.Matcher{eq("detector", v.Detector), eq("model", v.Model), eq("class", v.Class),
		eq("slice", alerts.SliceLabel(v.Slice)), eq("feature", v.Feature)}
}

func (a *App) feedback(ctx context.Context, c click, kind string) error {
	v, ok := a.opt.Alerts.Alert(c.fp)
	if !ok {
		return errNotActive
	}
	if _, err := a.opt.Log.Record(ctx, a.action(c, kind, v)); err != nil {
		return err
	}
	if err := a.refresh(ctx, c, v); err != nil {
		return err
	}
	a.openReason(ctx, c, kind, v)
	return nil
}

// reasonMeta is what the modal carries to its submission.
type reasonMeta struct {
	Fingerprint string `json:"fp"`
	Receiver    string `json:"receiver"`
	Action      string `json:"action"`
	Channel     string `json:"channel"`
	TS          string `json:"ts"`
}

// openReason opens the optional-reason modal; the feedback is already
// stored, so a failure here only loses the reason.
func (a *App) openReason(ctx context.Context, c click, kind string, v alerts.View) {
	client := a.client(c.receiver)
	if client == nil || c.cb.TriggerID == "" {
		return
	}
	meta, _ := json.Marshal(reasonMeta{Fingerprint: c.fp, Receiver: c.receiver, Action: kind, Channel: c.channel, TS: c.ts})
	title := "False positive"
	if kind == alerts.ActionExpected {
		title = "Expected"
	}
	input := slack.NewPlainTextInputBlockElement(slack.NewTextBlockObject(slack.PlainTextType, "What made it so?", false, false), "reason")
	input.Multiline = true
	block := slack.NewInputBlock("reason", slack.NewTextBlockObject(slack.PlainTextType, "Reason (optional)", false, false), nil, input)
	block.Optional = true
	view := slack.ModalViewRequest{
		Type:            slack.VTModal,
		CallbackID:      feedbackCallback,
		PrivateMetadata: string(meta),
		Title:           slack.NewTextBlockObject(slack.PlainTextType, title, false, false),
		Submit:          slack.NewTextBlockObject(slack.PlainTextType, "Save", false, false),
		Close:           slack.NewTextBlockObject(slack.PlainTextType, "Skip", false, false),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, fmt.Sprintf("Recorded: *%s* on %s · %s %s", strings.ReplaceAll(kind, "_", " "), v.Class, v.Model, alerts.SliceLabel(v.Slice)), false, false), nil, nil),
			block,
		}},
	}
	if _, err := client.OpenViewContext(ctx, c.cb.TriggerID, view); err != nil {
		a.log.Warn("reason modal not opened", zap.String("fingerprint", c.fp), zap.Error(err))
	}
}

// feedbackReason stores the reason given in the modal as the feedback's
// final word on the alert.
func (a *App) feedbackReason(ctx context.Context, cb slack.InteractionCallback, transport string) any {
	var meta reasonMeta
	if err := json.Unmarshal([]byte(cb.View.PrivateMetadata), &meta); err != nil {
		a.log.Warn("reason modal without its alert", zap.Error(err))
		return nil
	}
	reason := ""
	if st := cb.View.State; st != nil {
		reason = strings.TrimSpace(st.Values["reason"]["reason"].Value)
	}
	if reason == "" || (meta.Action != alerts.ActionFalsePositive && meta.Action != alerts.ActionExpected) {
		return nil
	}
	v, ok := a.opt.Alerts.Alert(meta.Fingerprint)
	if !ok {
		v = alerts.View{Fingerprint: meta.Fingerprint}
	}
	c := click{cb: cb, transport: transport, fp: meta.Fingerprint, receiver: meta.Receiver, channel: meta.Channel, ts: meta.TS}
	ac := a.action(c, meta.Action, v)
	ac.Reason = reason
	if len(ac.Reason) > alerts.MaxSilenceTextBytes {
		ac.Reason = ac.Reason[:alerts.MaxSilenceTextBytes]
	}
	if _, err := a.opt.Log.Record(ctx, ac); err != nil {
		a.log.Warn("feedback reason not stored", zap.Error(err))
		return map[string]any{"response_action": "errors", "errors": map[string]string{"reason": "mlwatch could not store it: try again"}}
	}
	return nil
}

// maySilence says whether a Slack user may silence a receiver's alerts,
// and whom to ask otherwise.
func (a *App) maySilence(ctx context.Context, receiver, user string) (bool, string) {
	rc := a.receiver(receiver)
	if rc == nil {
		return false, "an admin (the receiver is not configured)"
	}
	if len(rc.Silencers) == 0 {
		return true, ""
	}
	for _, id := range rc.Silencers {
		if id == user {
			return true, ""
		}
		if strings.HasPrefix(id, "S") && a.inGroup(ctx, receiver, id, user) {
			return true, ""
		}
	}
	return false, alerts.Mentions(rc.Silencers)
}

func (a *App) inGroup(ctx context.Context, receiver, group, user string) bool {
	a.mu.Lock()
	g, ok := a.groups[group]
	a.mu.Unlock()
	if !ok || a.opt.Now().Sub(g.at) > groupTTL {
		client := a.client(receiver)
		if client == nil {
			return false
		}
		members, err := client.GetUserGroupMembersContext(ctx, group)
		if err != nil {
			a.log.Warn("slack user group not read; refusing", zap.String("group", group), zap.Error(err))
			return false
		}
		g = groupMembers{at: a.opt.Now(), members: map[string]bool{}}
		for _, m := range members {
			g.members[m] = true
		}
		a.mu.Lock()
		a.groups[group] = g
		a.mu.Unlock()
	}
	return g.members[user]
}

func (a *App) receiver(name string) *configs.SlackReceiver {
	cfg := a.cfg.Load()
	for i := range cfg.Receivers {
		if r := &cfg.Receivers[i]; r.Name == name && r.Slack != nil {
			return r.Slack
		}
	}
	return nil
}

// client is a Slack Web API client with the receiver's bot token.
func (a *App) client(receiver string) *slack.Client {
	rc := a.receiver(receiver)
	if rc == nil || rc.Token == "" {
		return nil
	}
	return slack.New(rc.Token, slack.OptionAPIURL(a.apiURL(rc)), slack.OptionHTTPClient(a.opt.HTTPClient))
}

func (a *App) apiURL(rc *configs.SlackReceiver) string {
	api := rc.APIURL
	if api == "" {
		api = a.cfg.Load().Slack.APIURL
	}
	if api == "" {
		api = "https://slack.com/api/"
	}
	if !strings.HasSuffix(api, "/") {
		api += "/"
	}
	return api
}

func (a *App) ephemeral(ctx context.Context, c click, text string) {
	client := a.client(c.receiver)
	if client == nil || c.channel == "" {
		return
	}
	if _, err := client.PostEphemeralContext(ctx, c.channel, c.cb.User.ID, slack.MsgOptionText(text, false)); err != nil {
		a.log.Warn("slack ephemeral message not sent", zap.Error(err))
	}
}

// refresh edits the message the click came from: the alert's status line
// (under its buttons) lists what was done about its current incident.
func (a *App) refresh(ctx context.Context, c click, v alerts.View) error {
	client := a.client(c.receiver)
	if client == nil || c.channel == "" || c.ts == "" {
		return nil
	}
	actions, err := a.opt.Log.List(ctx, v.ActiveAt.Add(-time.Second), c.fp)
	if err != nil {
		return err
	}
	line := StatusLine(actions, v.ActiveAt)
	blocks := WithStatus(c.cb.Message.Blocks.BlockSet, c.fp, line)
	if _, _, _, err := client.UpdateMessageContext(ctx, c.channel, c.ts, slack.MsgOptionBlocks(blocks...), slack.MsgOptionText(c.cb.Message.Text, false)); err != nil {
		return fmt.Errorf("update the message: %w", err)
	}
	return nil
}

// StatusLine says what was done about one incident of an alert, oldest
// first: "acked by @ana 10:04 UTC · silenced 4h by @bo 10:06 UTC".
func StatusLine(actions []alerts.Action, activeAt time.Time) string {
	var mine []alerts.Action
	for _, ac := range actions {
		if sameSecond(ac.AlertActiveAt, activeAt) {
			mine = append(mine, ac)
		}
	}
	sort.SliceStable(mine, func(i, j int) bool { return mine[i].At.Before(mine[j].At) })
	var parts []string
	for _, ac := range mine {
		who := alerts.SlackUser(ac.UserID, ac.UserName)
		when := alerts.ClockTime(ac.At) + " UTC"
		switch ac.Action {
		case alerts.ActionAck:
			parts = append(parts, alerts.AckLine(alerts.Ack{UserID: ac.UserID, UserName: ac.UserName, At: ac.At}))
		case alerts.ActionSilence:
			d := ac.SilenceFor
			if d == untilResolved {
				d = "until resolved"
			}
			parts = append(parts, ":no_bell: silenced "+d+" by "+who+" "+when)
		case alerts.ActionFalsePositive, alerts.ActionExpected:
			p := ":thumbsdown: marked false positive by "
			if ac.Action == alerts.ActionExpected {
				p = ":ok_hand: marked expected by "
			}
			p += who + " " + when
			if ac.Reason != "" {
				p += ": _" + strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(ac.Reason) + "_"
			}
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " · ")
}

// WithStatus returns a message's blocks with an alert's status line set
// right under its buttons (replacing the previous one).
func WithStatus(blocks []slack.Block, fp, line string) []slack.Block {
	out := make([]slack.Block, 0, len(blocks)+1)
	status := slack.NewContextBlock(alerts.StatusBlockPrefix+fp, slack.NewTextBlockObject(slack.MarkdownType, line, false, false))
	placed := false
	for _, b := range blocks {
		if b.ID() == alerts.StatusBlockPrefix+fp {
			continue
		}
		out = append(out, b)
		if b.ID() == alerts.TriageBlockPrefix+fp && line != "" {
			out = append(out, status)
			placed = true
		}
	}
	if !placed && line != "" {
		out = append(out, status)
	}
	return out
}
