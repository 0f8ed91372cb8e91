package alerts

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
)

// maxSlackAlerts bounds the alerts listed in one message (Slack allows 50
// blocks); the rest are counted.
const maxSlackAlerts = 20

// SlackOptions configure a Slack notifier.
type SlackOptions struct {
	Name     string
	Receiver configs.SlackReceiver
	Global   configs.Slack
	// HTTPClient carries the requests; a 15 s timeout client when nil.
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

	mu        sync.Mutex
	channelID string
}

// NewSlack builds a Slack notifier. The token is used only in requests;
// it never appears in errors or logs.
func NewSlack(opt SlackOptions) *Slack {
	api := opt.Receiver.APIURL
	if api == "" {
		api = opt.Global.APIURL
	}
	if api == "" {
		api = "https://slack.com/api/"
	}
	if !strings.HasSuffix(api, "/") {
		api += "/"
	}
	hc := opt.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
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
		if err != nil {
			retry, err := classifySlack(err)
			return "", retry, fmt.Errorf("slack %s: chat.postMessage: %w", s.name, err)
		}
		return channel + "/" + newTS, false, nil
	}
	if n.Kind == KindResolved {
		rootBlocks, rootText := s.render(n, true)
		if err := s.pacer.wait(ctx, channel); err != nil {
			return "", true, err
		}
		if _, _, _, err := s.client.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionBlocks(rootBlocks...), slack.MsgOptionText(rootText, false)); err != nil {
			retry, err := classifySlack(err)
			return "", retry, fmt.Errorf("slack %s: chat.update: %w", s.name, err)
		}
	}
	if err := s.pacer.wait(ctx, channel); err != nil {
		return "", true, err
	}
	if _, _, err := s.client.PostMessageContext(ctx, channel, slack.MsgOptionTS(ts), slack.MsgOptionBlocks(blocks...), slack.MsgOptionText(text, false)); err != nil {
		retry, err := classifySlack(err)
		return "", retry, fmt.Errorf("slack %s: chat.postMessage (thread): %w", s.name, err)
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
			retry, err := classifySlack(err)
			return "", retry, fmt.Errorf("slack %s: conversations.list: %w", s.name, err)
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
	return "", false, fmt.Errorf("slack %s: channel %q not found (is the bot invited, with channels:read?)", s.name, s.rc.Channel)
}

// classifySlack says whether a slack-go error is worth retrying; a 429
// becomes a RetryAfterError.
func classifySlack(err error) (bool, error) {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return true, &RetryAfterError{After: rl.RetryAfter, Err: err}
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		return httpRetryable(sc.Code), err
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		switch se.Err {
		case "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout":
			return true, err
		}
		return false, err
	}
	return netRetryable(err), err
}

var severityEmoji = map[string]string{detectors.SeverityPage: ":rotating_light:", detectors.SeverityTicket: ":warning:", detectors.SeverityInfo: ":information_source:"}

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
		title = fmt.Sprintf("%s %s · %s · %s", severityEmoji[sev], strings.ToUpper(sev), class, model)
	}
	text := fmt.Sprintf("[%s] %s %s: %d firing, %d resolved", strings.ToUpper(sev), class, model, firing, resolved)
	blocks := []slack.Block{slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, truncate(title, 150), true, false))}

	intro := fmt.Sprintf("Model *%s* · class `%s` · owner *%s* · severity *%s*", esc(model), esc(class), esc(top.Owner), esc(sev))
	if n.Kind == KindFiring && sev == detectors.SeverityPage && len(s.rc.Mentions) > 0 {
		intro += "\n" + mentions(s.rc.Mentions)
	}
	if root {
		intro += fmt.Sprintf("\nAll alerts of this group resolved at %s.", n.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"))
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
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, truncate(s.alertLine(a), 2900), false, false), nil, nil))
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
// sample sizes and p-value, and the detector's summary.
func (s *Slack) alertLine(a View) string {
	where := SliceLabel(a.Slice)
	if where == "" {
		where = "all traffic"
	}
	if a.Feature != "" {
		where += " · feature `" + a.Feature + "`"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s *%s* — `%s` %s vs baseline %s", changeTag[a.Change], esc(where), esc(a.Metric), fmtNum(float64(a.Value)), fmtNum(float64(a.Baseline)))
	if a.NCurrent > 0 || a.NBaseline > 0 {
		fmt.Fprintf(&b, " (n=%d / %d", a.NCurrent, a.NBaseline)
		if p := float64(a.PValue); !math.IsNaN(p) {
			fmt.Fprintf(&b, ", p=%s", strconv.FormatFloat(p, 'g', 2, 64))
		}
		b.WriteString(")")
	} else if p := float64(a.PValue); !math.IsNaN(p) {
		fmt.Fprintf(&b, " (p=%s)", strconv.FormatFloat(p, 'g', 2, 64))
	}
	if a.Summary != "" {
		b.WriteString("\n_" + esc(a.Summary) + "_")
	}
	if s.external != "" && a.Change != ChangeResolved {
		fmt.Fprintf(&b, " <%s/alerts/%s|details>", s.external, a.Fingerprint)
	}
	return b.String()
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

// mentions renders user (U…/W…) and user-group (S…) IDs as Slack mentions.
func mentions(ids []string) string {
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
