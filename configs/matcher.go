package configs

import (
	"fmt"
	"regexp"
	"strings"
)

// Matcher ops, as in Alertmanager.
const (
	MatchEqual     = "="
	MatchNotEqual  = "!="
	MatchRegexp    = "=~"
	MatchNotRegexp = "!~"
)

// Matcher is one label condition: name, op, value. Regexps are anchored.
type Matcher struct {
	Name  string `json:"name"`
	Op    string `json:"op"`
	Value string `json:"value"`
	re    *regexp.Regexp
}

var labelNameRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// ParseMatcher reads "name=value", "name!=value", "name=~regex" or
// "name!~regex"; the value may be double-quoted.
func ParseMatcher(s string) (Matcher, error) {
	s = strings.TrimSpace(s)
	idx := strings.IndexAny(s, "=!")
	if idx <= 0 {
		return Matcher{}, fmt.Errorf("matcher %q: want name=value, name!=value, name=~regex or name!~regex", s)
	}
	name := strings.TrimSpace(s[:idx])
	rest := s[idx:]
	var op string
	for _, o := range []string{MatchRegexp, MatchNotRegexp, MatchNotEqual, MatchEqual} {
		if strings.HasPrefix(rest, o) {
			op = o
			break
		}
	}
	if op == "" {
		return Matcher{}, fmt.Errorf("matcher %q: want name=value, name!=value, name=~regex or name!~regex", s)
	}
	value := strings.TrimSpace(rest[len(op):])
	if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
		value = value[1 : len(value)-1]
	}
	return NewMatcher(name, op, value)
}

// NewMatcher builds a matcher, compiling regexps.
func NewMatcher(name, op, value string) (Matcher, error) {
	if !labelNameRe.MatchString(name) {
		return Matcher{}, fmt.Errorf("matcher label %q: not a label name", name)
	}
	m := Matcher{Name: name, Op: op, Value: value}
	switch op {
	case MatchEqual, MatchNotEqual:
	case MatchRegexp, MatchNotRegexp:
		re, err := regexp.Compile("^(?:" + value + ")$")
		if err != nil {
			return Matcher{}, fmt.Errorf("matcher %s%s%q: %v", name, op, value, err)
		}
		m.re = re
	default:
		return Matcher{}, fmt.Errorf("matcher %s: unknown op %q", name, op)
	}
	return m, nil
}

// Matches reports whether the labels satisfy the matcher; a missing label
// is the empty string, as in Alertmanager.
func (m Matcher) Matches(labels map[string]string) bool {
	v := labels[m.Name]
	switch m.Op {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp:
		return m.re != nil && m.re.MatchString(v)
	case MatchNotRegexp:
		return m.re == nil || !m.re.MatchString(v)
	}
	return false
}

func (m Matcher) String() string { return fmt.Sprintf("%s%s%q", m.Name, m.Op, m.Value) }

// MatchAll reports whether every matcher holds.
func MatchAll(ms []Matcher, labels map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(labels) {
			return false
		}
	}
	return true
}
