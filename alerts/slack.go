package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/mlwatch/mlwatch/configs"
)

// maxSlackAlerts bounds the alerts listed in one message (Slack allows 50
// blocks); the rest are counted.
const maxSlackAlerts = 20

// SlackOptions configure a Slack notifier.
type SlackOptions struct {
	Name     string
	Receiver configs.SlackReceiver
	Global   configs.Slack
	// HTTPClient carries the requests; a client with the receiver's
	// timeout (default 15 s) when nil.
	HTTPClient  *http.Client
	ExternalURL string
	// Now and Sleep drive pacing when the notifier is used on its own.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	pacer *pacer
}

// Slack posts Block Kit messages to one channel with slack-go: a group's
// first message, replies in its thread for updates and repeats, and on
// resolution an edit of the first message plus a reply. It keeps to one
// message per second per channel and reports 429s with their Retry-After.
type Slack struct {
	name     string
	rc       configs.SlackReceiver
	client   *slack.Client
	external string
	pacer    *pacer
	// interactive puts triage buttons under firing alerts (slackapp
	// takes the clicks).
	interactive bool

	mu        sync.Mutex
	channelID string
}

// NewSlack builds a Slack notifier. The token is used only in requests;
// it never appears in errors or logs.
func NewSlack(opt SlackOptions) *Slack {
	api := opt.Receiver.API(opt.Global)
	hc := opt.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: opt.Receiver.HTTPTimeout()}
	}
	p := opt.pacer
	if p == nil {
		now, sleep := opt.Now, opt.Sleep
		if now == nil {
			now = time.Now
		}
		if sleep == nil {
			sleep = sleepCtx
		}
		p = &pacer{last: map[string]time.Time{}, now: now, sleep: sleep}
		p.setGap(opt.Global.RateLimit.D())
	}
	s := &Slack{
		name:     opt.Name,
		rc:       opt.Receiver,
		client:   slack.New(opt.Receiver.Token, slack.OptionAPIURL(api), slack.OptionHTTPClient(hc)),
		external: strings.TrimSuffix(opt.ExternalURL, "/"),
		pacer:    p,

		interactive: opt.Global.Interactivity.Enabled(),
	}
	if isChannelID(opt.Receiver.Channel) {
		s.channelID = opt.Receiver.Channel
	}
	return s
}

var channelIDRe = regexp.MustCompile(`^[CGD][A-Z0-9]{6,}$`)

func isChannelID(s string) bool { return channelIDRe.MatchString(s) }

// Notify implements Notifier.
func (s *Slack) Notify(ctx context.Context, n *Notification) (string, bool, error) {
	if s.rc.Token == "" {
		src := s.rc.TokenEnv
		if src == "" {
			src = s.rc.TokenFile
		}
		return "", false, fmt.Errorf("slack %s: no bot token (set %s)", s.name, src)
	}
	channel, ts := splitRef(n.ThreadRef)
	if channel == "" {
		id, retry, err := s.resolveChannel(ctx)
		if err != nil {
			return "", retry, err
		}
		channel = id
	}
	blocks, text := s.render(n, false)
	if ts == "" {
		// A group's first message (or a thread whose first message was lost).
		if err := s.pacer.wait(ctx, channel); err != nil {
			return "", true, err
		}
		_, newTS, err := s.client.PostMessageContext(ctx, channel, slack.MsgOptionBlocks(blocks...), slack.MsgOptionText(text, false))
		s.pacer.done(channel)
		if err != nil {
			retry, err := s.classify(err, "chat.postMessage")
			return "", retry, err
		}
		return channel + "/" + newTS, false, nil
	}
	if n.Kind == KindResolved {
		rootBlocks, rootText := s.render(rootView(n), true)
		if err := s.pacer.wait(ctx, channel); err != nil {
			return "", true, err
		}
		_, _, _, err := s.client.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionBlocks(rootBlocks...), slack.MsgOptionText(rootText, false))
		s.pacer.done(channel)
		if err != nil {
			var se slack.SlackErrorResponse
			if !errors.As(err, &se) || !uneditable[se.Err] {
				retry, err := s.classify(err, "chat.update")
				return "", retry, err
			}
			// The first message is gone or too old to edit: the reply
			// below still tells the thread.
		}
	}
	if err := s.pacer.wait(ctx, channel); err != nil {
		return "", true, err
	}
	_, _, err := s.client.PostMessageContext(ctx, channel, slack.MsgOptionTS(ts), slack.MsgOptionBlocks(blocks...), slack.MsgOptionText(text, false))
	s.pacer.done(channel)
	if err != nil {
		retry, err := s.classify(err, "chat.postMessage (thread)")
		return "", retry, err
	}
	return channel + "/" + ts, false, nil
}

func splitRef(ref string) (channel, ts string) {
	if i := strings.IndexByte(ref, '/'); i > 0 {
		return ref[:i], ref[i+1:]
	}
	return "", ""
}

// resolveChannel turns a channel name into its ID once (conversations.list)
// and remembers it; refs store the ID with each message's ts.
func (s *Slack) resolveChannel(ctx context.Context) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.channelID != "" {
		return s.channelID, false, nil
	}
	want := strings.TrimPrefix(s.rc.Channel, "#")
	params := &slack.GetConversationsParameters{Types: []string{"public_channel", "private_channel"}, ExcludeArchived: true, Limit: 1000}
	for page := 0; page < 100; page++ {
		chans, cursor, err := s.client.GetConversationsContext(ctx, params)
		if err != nil {
			retry, err := s.classify(err, "conversations.list")
			return "", retry, err
		}
		for _, c := range chans {
			if c.Name == want || c.ID == want {
				s.channelID = c.ID
				return c.ID, false, nil
			}
		}
		if cursor == "" {
			break
		}
		params.Cursor = cursor
	}
	return "", false, fmt.Errorf("slack %s: Slack channel %s not found (channel_not_found): check the receiver's slack.channel; "+
		"a private channel is listed only once the bot is invited (/invite @your-bot), and the token needs channels:read and groups:read", s.name, s.rc.Channel)
}

// Slack's error codes by what fixes them.
var (
	slackAuthErrors    = map[string]bool{"invalid_auth": true, "not_authed": true, "token_revoked": true, "token_expired": true, "account_inactive": true, "org_login_required": true, "ekm_access_denied": true}
	slackRetryErrors   = map[string]bool{"ratelimited": true, "rate_limited": true, "internal_error": true, "fatal_error": true, "service_unavailable": true, "request_timeout": true}
	slackMessageErrors = map[string]bool{"invalid_blocks": true, "invalid_blocks_format": true, "msg_too_long": true, "no_text": true, "too_many_attachments": true, "invalid_arguments": true}
	// uneditable are chat.update answers after which the edit is skipped
	// and the thread reply still goes out.
	uneditable = map[string]bool{"message_not_found": true, "cant_update_message": true, "edit_window_closed": true}
)

// badAnswerAttempts is how often an answer that is not Slack's JSON (an
// HTML page with HTTP 200) is retried before the notification is dead.
const badAnswerAttempts = 5

// classify says whether a slack-go error is worth retrying and rewrites it
// to name the cause and the fix; a 429 becomes a RetryAfterError. The
// token never appears in it.
func (s *Slack) classify(err error, method string) (bool, error) {
	wrap := func(format string, a ...any) error {
		return fmt.Errorf("slack %s: %s: "+format, append([]any{s.name, method}, a...)...)
	}
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return true, &RetryAfterError{After: rl.RetryAfter, Err: wrap("%w", err)}
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		if httpRetryable(sc.Code) {
			return true, wrap("Slack answered HTTP %d: will retry with backoff", sc.Code)
		}
		return false, wrap("Slack answered HTTP %d (%w): check slack.api_url", sc.Code, err)
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		code := se.Err
		switch {
		case slackRetryErrors[code]:
			return true, wrap("Slack answered %s: will retry with backoff", code)
		case slackAuthErrors[code]:
			return false, wrap("Slack token rejected (%s): check %s", code, s.tokenSource())
		case code == "channel_not_found":
			return false, wrap("Slack channel %s not found (channel_not_found): fix the receiver's slack.channel, or invite the bot to the channel (/invite @your-bot)", s.rc.Channel)
		case code == "is_archived":
			return false, wrap("Slack channel %s is archived (is_archived): unarchive it or point the receiver's slack.channel at a live channel", s.rc.Channel)
		case code == "not_in_channel":
			return false, wrap("the bot is not in Slack channel %s (not_in_channel): invite it (/invite @your-bot)", s.rc.Channel)
		case code == "missing_scope":
			need := se.Needed
			if need == "" {
				need = "chat:write"
			}
			return false, wrap("Slack token lacks a scope (missing_scope, needs %s): add it to the app and reinstall it, then update %s", need, s.tokenSource())
		case code == "restricted_action" || code == "ekm_access_denied":
			return false, wrap("Slack refused to post in %s (%s): a workspace admin restricts posting there", s.rc.Channel, code)
		case slackMessageErrors[code]:
			return false, wrap("Slack refused the message (%s): mlwatch built a message Slack does not accept; please report it", code)
		}
		return false, wrap("Slack refused the request (%s)", code)
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syn) || errors.As(err, &typ) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true, &LimitedRetryError{Attempts: badAnswerAttempts, Err: wrap("Slack API answered with a body that is not Slack's JSON (an HTML page?): " +
			"check slack.api_url (or MLWATCH_SLACK_API_URL) and any proxy in between")}
	}
	return netRetryable(err), wrap("%w", err)
}

// tokenSource names where the token comes from, for errors that say to
// check it.
func (s *Slack) tokenSource() string {
	if s.rc.TokenEnv != "" {
		return s.rc.TokenEnv
	}
	if s.rc.TokenFile != "" {
		return "the token file " + s.rc.TokenFile
	}
	return "the receiver's token_env"
}

var severityEmoji = map[configs.Severity]string{configs.SeverityPage: ":rotating_light:", configs.SeverityTicket: ":warning:", configs.SeverityInfo: ":information_source:"}

// rootView is what the edit of a closed group's first message shows: the
// alerts that message was posted for, now resolved, under its own title
// (not those of whichever member happened to resolve last).
func rootView(n *Notification) *Notification {
	if len(n.RootAlerts) == 0 {
		return n
	}
	r := *n
	r.Alerts = make([]View, len(n.RootAlerts))
	for i, v := range n.RootAlerts {
		v.Change = ChangeResolved
		r.Alerts[i] = v
	}
	return &r
}

// render builds the Block Kit message of a notification; root renders the
// group's first message as it should read once resolved.
func (s *Slack) render(n *Notification, root bool) ([]slack.Block, string) {
	if len(n.Alerts) == 0 {
		return nil, "mlwatch: empty notification"
	}
	top := n.Alerts[0]
	class, model := top.Class, top.Model
	if v := n.GroupLabels["class"]; v != "" {
		class = v
	}
	if v := n.GroupLabels["model"]; v != "" {
		model = v
	}
	firing, resolved := n.Counts()
	sev := top.Severity
	var title string
	switch {
	case root:
		title = fmt.Sprintf(":white_check_mark: RESOLVED · %s · %s", class, model)
	case n.Kind == KindResolved:
		title = fmt.Sprintf(":white_check_mark: Resolved · %s · %s", class, model)
	case n.Kind == KindUpdate:
		title = fmt.Sprintf("Update · %s · %s", class, model)
	default:
		title = fmt.Sprintf("%s %s · %s · %s", severityEmoji[configs.Severity(sev)], strings.ToUpper(sev), class, model)
	}
	text := fallbackText(n, strings.ToUpper(sev), class, model, firing, resolved, root)
	blocks := []slack.Block{slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, truncate(title, 150), true, false))}

	intro := fmt.Sprintf("Model *%s* · class `%s` · owner *%s* · severity *%s*", esc(model), esc(class), esc(top.Owner), esc(sev))
	if n.Kind == KindFiring && configs.Severity(sev) == configs.SeverityPage && len(s.rc.Mentions) > 0 {
		intro += "\n" + Mentions(s.rc.Mentions)
	}
	if root {
		intro += fmt.Sprintf("\nAll alerts of this group resolved at %s.", n.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"))
	}
	if f := n.FallbackFor; f != nil && !root {
		intro += fmt.Sprintf("\n:warning: Sent here because receiver *%s* could not take it: %s", esc(f.Receiver), esc(truncate(f.Error, 500)))
	}
	blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, intro, false, false), nil, nil))
	blocks = append(blocks, slack.NewDividerBlock())
	// Roots only: the alerts a root explains (caused) are one line that
	// counts them; they are listed on the root's alert page.
	var roots []View
	explained := 0
	for _, a := range n.Alerts {
		if a.Change == ChangeCaused {
			explained++
			continue
		}
		roots = append(roots, a)
	}
	for i, a := range roots {
		if i == maxSlackAlerts {
			blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, fmt.Sprintf("…and %d more", len(roots)-maxSlackAlerts), false, false)))
			break
		}
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, truncate(s.alertLine(a, n.CreatedAt), 2900), false, false), nil, nil))
		if s.interactive && !root && i < maxButtonAlerts && (a.Change == ChangeNew || a.Change == ChangeFiring) {
			blocks = append(blocks, s.triageBlocks(a)...)
		}
	}
	if explained > 0 {
		blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, explainedLine(explained), false, false)))
	}
	var links []string
	if top.RunbookURL != "" {
		links = append(links, fmt.Sprintf("<%s|Runbook>", top.RunbookURL))
	}
	if s.external != "" {
		links = append(links, fmt.Sprintf("<%s/alerts/%s|Alert page>", s.external, top.Fingerprint))
	}
	links = append(links, "mlwatch")
	blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, strings.Join(links, " · "), false, false)))
	return blocks, text
}

// explainedLine counts the firing alerts a thread's roots explain.
func explainedLine(n int) string {
	if n == 1 {
		return ":link: 1 more alert is explained by this incident (see the alert page)"
	}
	return fmt.Sprintf(":link: %d more alerts are explained by this incident (see the alert page)", n)
}

var changeTag = map[string]string{
	ChangeNew:      ":new:",
	ChangeFiring:   ":repeat: still firing",
	ChangeCaused:   ":link: caused by this incident",
	ChangeResolved: ":white_check_mark: resolved",
}

// alertLine is one alert: where, the metric now vs the baseline with the
// sample sizes, since when (or, resolved, how long it lasted), and the
// detector's summary. Rates read as percentages; p-values are left to the
// alert page (p=2e-177 tells an on-call nothing).
func (s *Slack) alertLine(a View, now time.Time) string {
	where := SliceLabel(a.Slice)
	if where == "" {
		where = "all traffic"
	}
	if a.Feature != "" {
		where += " · feature `" + a.Feature + "`"
	}
	var b strings.Builder
	val, base := FormatFigure(a.Metric, float64(a.Value)), FormatFigure(a.Metric, float64(a.Baseline))
	if a.Change == ChangeResolved {
		fmt.Fprintf(&b, "%s *%s* — `%s` was %s vs baseline %s", changeTag[a.Change], esc(where), esc(a.Metric), val, base)
	} else {
		fmt.Fprintf(&b, "%s *%s* — `%s` %s vs baseline %s", changeTag[a.Change], esc(where), esc(a.Metric), val, base)
	}
	if a.NCurrent > 0 || a.NBaseline > 0 {
		fmt.Fprintf(&b, " (n=%d / %d)", a.NCurrent, a.NBaseline)
	}
	if since := a.since(); !since.IsZero() {
		if a.Change == ChangeResolved && a.ResolvedAt != nil {
			fmt.Fprintf(&b, " · lasted %s (%s–%s UTC)", FormatSpan(a.ResolvedAt.Sub(since)), since.UTC().Format("15:04"), a.ResolvedAt.UTC().Format("15:04"))
		} else if !now.IsZero() {
			fmt.Fprintf(&b, " · since %s UTC (%s)", since.UTC().Format("Jan 2 15:04"), FormatSpan(now.Sub(since)))
		}
	}
	if a.Summary != "" {
		b.WriteString("\n_" + esc(a.Summary) + "_")
	}
	if s.external != "" && a.Change != ChangeResolved {
		fmt.Fprintf(&b, " <%s/alerts/%s|details>", s.external, a.Fingerprint)
	}
	return b.String()
}

// since is when the alert's incident began: its onset in the log when
// one was found, else when it became active.
func (v View) since() time.Time {
	if v.Onset != nil {
		return *v.Onset
	}
	if !v.ActiveAt.IsZero() {
		return v.ActiveAt
	}
	if v.FiredAt != nil {
		return *v.FiredAt
	}
	return time.Time{}
}

// fallbackText is a message's plain text (push notifications, screen
// readers): the worst alert's slice and figure, since when, and how many
// more.
func fallbackText(n *Notification, sev, class, model string, firing, resolved int, root bool) string {
	top := n.Alerts[0]
	where := SliceLabel(top.Slice)
	if where == "" {
		where = "all traffic"
	}
	if top.Feature != "" {
		where += " feature " + top.Feature
	}
	more := ""
	if k := len(n.Alerts) - 1; k > 0 {
		more = fmt.Sprintf(" (+%d more)", k)
	}
	if root || n.Kind == KindResolved || top.Change == ChangeResolved {
		lasted := ""
		if since := top.since(); !since.IsZero() && top.ResolvedAt != nil {
			lasted = " after " + FormatSpan(top.ResolvedAt.Sub(since))
		}
		return fmt.Sprintf("[RESOLVED] %s %s: %s %s%s%s", class, model, where, top.Metric, lasted, more)
	}
	since := ""
	if t := top.since(); !t.IsZero() {
		since = " since " + t.UTC().Format("15:04") + " UTC"
	}
	return fmt.Sprintf("[%s] %s %s: %s %s %s (baseline %s)%s%s", sev, class, model, where, top.Metric,
		FormatFigure(top.Metric, float64(top.Value)), FormatFigure(top.Metric, float64(top.Baseline)), since, more)
}

// FormatFigure renders a metric's value: rates and shares as percentages,
// anything else with four significant digits.
func FormatFigure(metric string, f float64) string {
	if math.IsNaN(f) {
		return "n/a"
	}
	if isFraction(metric) {
		p := 100 * f
		switch {
		case p != 0 && math.Abs(p) < 0.1:
			return strconv.FormatFloat(p, 'g', 2, 64) + "%"
		default:
			return strconv.FormatFloat(p, 'f', 1, 64) + "%"
		}
	}
	return fmtNum(f)
}

func isFraction(metric string) bool {
	for _, suf := range []string{"_rate", "_share", "_rate_max", "_rate_bound", "_blocks"} {
		if strings.HasSuffix(metric, suf) {
			return true
		}
	}
	switch metric {
	case "precision", "recall", "label_coverage", "expected_block_rate":
		return true
	}
	return false
}

// FormatSpan renders a duration the way people say it: 45s, 25m, 3h05m, 2d4h.
func FormatSpan(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// esc escapes the three characters Slack's mrkdwn treats as markup, so a
// slice value or summary cannot forge a mention or a link.
var esc = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

func fmtNum(f float64) string {
	if math.IsNaN(f) {
		return "n/a"
	}
	return strconv.FormatFloat(f, 'g', 4, 64)
}

// Mentions renders user (U…/W…) and user-group (S…) IDs as Slack mentions.
func Mentions(ids []string) string {
	parts := make([]string, 0, len(ids))
	for _, id := range ids {
		if strings.HasPrefix(id, "S") {
			parts = append(parts, "<!subteam^"+id+">")
		} else {
			parts = append(parts, "<@"+id+">")
		}
	}
	return strings.Join(parts, " ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 1
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// pacer keeps at least gap between messages to one key (a Slack channel):
// Slack allows about one message per second per channel.
type pacer struct {
	mu    sync.Mutex
	gap   time.Duration
	last  map[string]time.Time
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
}

func (p *pacer) setGap(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d <= 0 {
		d = time.Second
	}
	p.gap = d
}

// wait blocks until the key's next slot and takes it.
func (p *pacer) wait(ctx context.Context, key string) error {
	p.mu.Lock()
	now := p.now()
	next := p.last[key].Add(p.gap)
	if !next.After(now) {
		p.last[key] = now
		p.mu.Unlock()
		return nil
	}
	p.last[key] = next
	p.mu.Unlock()
	return p.sleep(ctx, next.Sub(now))
}

// done marks the end of a call to key: the next slot counts from here, so
// a call that was slow to leave (a busy machine) or to be answered never
// arrives at Slack less than gap after the previous one.
func (p *pacer) done(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := p.now(); now.After(p.last[key]) {
		p.last[key] = now
	}
}
