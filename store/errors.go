package store

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Error kinds a caller can test with errors.Is; the message of an *Error
// says what to fix.
var (
	ErrUnknownTable    = errors.New("unknown table")
	ErrUnknownColumn   = errors.New("unknown column")
	ErrUnknownDatabase = errors.New("unknown database")
	ErrSyntax          = errors.New("syntax error")
	ErrTimeout         = errors.New("query timed out")
	ErrAuth            = errors.New("authentication failed")
	ErrMemory          = errors.New("memory limit exceeded")
	ErrBadQuery        = errors.New("bad query")
	ErrUnavailable     = errors.New("clickhouse unavailable")
)

// Error is a ClickHouse exception translated into a message that names
// what is wrong. Kind is one of the Err* values above.
type Error struct {
	Code    int
	Kind    error
	Message string // what to fix, in mlwatch's words
	Server  string // the engine's own text
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Server
	}
	return e.Message
}

// Unwrap lets errors.Is match the kind.
func (e *Error) Unwrap() error { return e.Kind }

var (
	codeRe        = regexp.MustCompile(`Code: (\d+)`)
	trailingTrace = regexp.MustCompile(`(?s)(, e\.what\(\) = |Stack trace:).*$`)
)

// exception codes (ClickHouse's ErrorCodes.cpp).
const (
	codeNoSuchColumn      = 16
	codeUnknownFunction   = 46
	codeUnknownIdentifier = 47
	codeTypeMismatch      = 53
	codeUnknownTable      = 60
	codeSyntaxError       = 62
	codeUnknownDatabase   = 81
	codeTimeoutExceeded   = 159
	codeUnknownUser       = 192
	codeWrongPassword     = 193
	codeRequiredPassword  = 194
	codeNetworkError      = 210
	codeMemoryLimit       = 241
	codeQueryCancelled    = 394
	codeAuthFailed        = 516
)

// kinds maps the exception codes mlwatch tells apart to their kind;
// any other code is ErrBadQuery.
var kinds = map[int]error{
	codeUnknownTable:      ErrUnknownTable,
	codeUnknownDatabase:   ErrUnknownDatabase,
	codeUnknownIdentifier: ErrUnknownColumn,
	codeNoSuchColumn:      ErrUnknownColumn,
	codeSyntaxError:       ErrSyntax,
	codeTimeoutExceeded:   ErrTimeout,
	codeQueryCancelled:    ErrTimeout,
	codeUnknownUser:       ErrAuth,
	codeWrongPassword:     ErrAuth,
	codeRequiredPassword:  ErrAuth,
	codeAuthFailed:        ErrAuth,
	codeMemoryLimit:       ErrMemory,
	codeNetworkError:      ErrUnavailable,
}

// naming is how the text of a kind's exception names what is missing:
// the patterns of both engines' wordings, and the message around the name.
type naming struct {
	format   string
	patterns []*regexp.Regexp
}

var namings = map[error]naming{
	ErrUnknownTable: {"table %s does not exist", compileAll(
		"Table ([^ ]+?) (?:doesn't|does not) exist",
		"Unknown table expression identifier '([^']+)'")},
	ErrUnknownDatabase: {"database %s does not exist", compileAll(
		"Database ([^ ]+?) (?:doesn't|does not) exist")},
	ErrUnknownColumn: {"unknown column %s", compileAll(
		"Unknown identifier: ([^ ,]+)",
		"(?:Unknown expression(?: or function)? identifier|Missing columns:) [`']([^`']+)[`']",
		"There's no column '([^']+)'",
		"No such column ([^ ]+) in table")},
}

func compileAll(patterns ...string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(patterns))
	for i, p := range patterns {
		out[i] = regexp.MustCompile(p)
	}
	return out
}

// classify turns an exception code and text into an *Error.
func classify(code int, text string) *Error {
	text = strings.TrimSpace(trailingTrace.ReplaceAllString(text, ""))
	e := &Error{Code: code, Kind: ErrBadQuery, Server: text}
	if k, ok := kinds[code]; ok {
		e.Kind = k
	}
	if n, ok := namings[e.Kind]; ok {
		if name := firstMatch(text, n.patterns...); name != "" {
			e.Message = fmt.Sprintf(n.format, name)
		}
	}
	if e.Kind == ErrAuth {
		e.Message = "clickhouse rejected the user or password (code " + strconv.Itoa(code) + ")"
	}
	if e.Message == "" {
		e.Message = fmt.Sprintf("%s: %s", e.Kind, shorten(text, 400))
	}
	return e
}

// classifyText parses an exception from the embedded engine's error text.
func classifyText(text string) *Error {
	code := 0
	if m := codeRe.FindStringSubmatch(text); m != nil {
		code, _ = strconv.Atoi(m[1])
	}
	return classify(code, text)
}

func firstMatch(text string, res ...*regexp.Regexp) string {
	for _, re := range res {
		if m := re.FindStringSubmatch(text); m != nil {
			return strings.Trim(m[1], "`'\".")
		}
	}
	return ""
}

// shorten keeps messages readable when the engine quotes a whole query.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
