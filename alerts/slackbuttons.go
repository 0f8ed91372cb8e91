package alerts

import (
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// maxButtonAlerts bounds the alerts of one message that get triage
// buttons: with a status line each after an action, a full message stays
// within Slack's 50 blocks.
const maxButtonAlerts = 10

// Action IDs of the triage elements; slackapp dispatches on them.
const (
	ActionIDAck           = "mlwatch_ack"
	ActionIDSilence       = "mlwatch_silence"
	ActionIDFalsePositive = "mlwatch_false_positive"
	ActionIDExpected      = "mlwatch_expected"
	ActionIDLink          = "mlwatch_link"
	// TriageBlockPrefix + fingerprint names an alert's buttons block;
	// StatusBlockPrefix + fingerprint its status line (who did what).
	TriageBlockPrefix = "mlwatch_triage:"
	StatusBlockPrefix = "mlwatch_status:"
)

// SilenceChoices are the silence menu's options, in order: the value
// after the alert in the option's value, and its label.
var SilenceChoices = [][2]string{{"1h", "1 hour"}, {"4h", "4 hours"}, {"24h", "24 hours"}, {"until_resolved", "until resolved"}}

// ButtonValue is what a triage element carries: the alert and the
// receiver whose message it is (whose silencers and token apply).
func ButtonValue(fingerprint, receiver string, extra ...string) string {
	return strings.Join(append([]string{fingerprint, receiver}, extra...), "|")
}

// ParseButtonValue splits ButtonValue's output.
func ParseButtonValue(v string) (fingerprint, receiver, extra string) {
	parts := strings.SplitN(v, "|", 3)
	switch len(parts) {
	case 3:
		return parts[0], parts[1], parts[2]
	case 2:
		return parts[0], parts[1], ""
	}
	return v, "", ""
}

// triageBlocks are an alert's buttons (Acknowledge, Silence menu, False
// positive, Expected, a link to its page) and, when it is acknowledged,
// its status line.
func (s *Slack) triageBlocks(a View) []slack.Block {
	val := ButtonValue(a.Fingerprint, s.name)
	txt := func(t string) *slack.TextBlockObject {
		return slack.NewTextBlockObject(slack.PlainTextType, t, false, false)
	}
	ack := slack.NewButtonBlockElement(ActionIDAck, val, txt("Acknowledge"))
	ack.Style = slack.StylePrimary
	opts := make([]*slack.OptionBlockObject, len(SilenceChoices))
	for i, c := range SilenceChoices {
		opts[i] = slack.NewOptionBlockObject(ButtonValue(a.Fingerprint, s.name, c[0]), txt(c[1]), nil)
	}
	silence := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, txt("Silence…"), ActionIDSilence, opts...)
	elems := []slack.BlockElement{ack, silence,
		slack.NewButtonBlockElement(ActionIDFalsePositive, val, txt("False positive")),
		slack.NewButtonBlockElement(ActionIDExpected, val, txt("Expected")),
	}
	if s.external != "" {
		link := slack.NewButtonBlockElement(ActionIDLink, val, txt("Alert page"))
		link.URL = s.external + "/alerts/" + a.Fingerprint
		elems = append(elems, link)
	}
	out := []slack.Block{slack.NewActionBlock(TriageBlockPrefix+a.Fingerprint, elems...)}
	if a.Ack != nil {
		out = append(out, slack.NewContextBlock(StatusBlockPrefix+a.Fingerprint,
			slack.NewTextBlockObject(slack.MarkdownType, AckLine(*a.Ack), false, false)))
	}
	return out
}

// AckLine is how an acknowledgement reads in Slack: "acked by @ana 10:04 UTC".
func AckLine(a Ack) string {
	return ":eyes: acked by " + SlackUser(a.UserID, a.UserName) + " " + a.At.UTC().Format("15:04") + " UTC"
}

// SlackUser mentions a Slack user by ID (Slack shows @name), falling
// back to the name.
func SlackUser(id, name string) string {
	if id != "" {
		return "<@" + id + ">"
	}
	return "@" + name
}

// ClockTime is an action's time as the status page and messages show it.
func ClockTime(t time.Time) string { return t.UTC().Format("15:04") }
