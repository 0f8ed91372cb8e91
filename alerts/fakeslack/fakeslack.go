// Package fakeslack is a local Slack Web API for tests: it speaks
// chat.postMessage, chat.update and conversations.list as Slack does,
// checks the bot token, records every call and fails on demand (HTTP 429
// with Retry-After, 5xx). Tests in this process use it directly; an
// mlwatch process under test reaches it through MLWATCH_SLACK_API_URL.
package fakeslack

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Channels are the channels conversations.list returns (over two pages, so
// that clients must follow the cursor): name → ID.
var Channels = [][2]string{
	{"general", "C0GENERAL"}, {"fraud-model-alerts", "C0PRODUCT"}, {"ml-infra-alerts", "C0INFRA"},
}

// Call is one request the fake received.
type Call struct {
	Method   string // "chat.postMessage", "chat.update", "conversations.list"; failed calls get " (failed)"
	Channel  string
	TS       string // chat.update: the message edited; chat.postMessage: the message posted
	ThreadTS string
	Text     string
	Blocks   string
	User     string    // chat.postEphemeral: who sees it
	View     string    // views.open: the modal
	At       time.Time // the clock at the request
}

// Server is the fake Slack API.
type Server struct {
	token string
	now   func() time.Time
	mux   *http.ServeMux
	srv   *httptest.Server

	mu       sync.Mutex
	calls    []Call
	failures []failure // consumed by the next chat.* calls
	down     *failure  // every chat.* call fails while set
	errs     []string  // Slack error codes answered (HTTP 200, ok=false) by the next chat.* calls
	html     int       // the next chat.* calls answer an HTML page with HTTP 200
	nextTS   int
	onCall   func(Call)

	socket                     // Socket Mode (socket.go)
	groups map[string][]string // user-group ID → member IDs
}

type failure struct {
	status     int
	retryAfter string
}

// New starts a fake accepting token; now stamps calls (time.Now when nil).
// It stops when the test ends.
func New(t testing.TB, token string, now func() time.Time) *Server {
	if now == nil {
		now = time.Now
	}
	f := &Server{token: token, now: now, nextTS: 1}
	mux := http.NewServeMux()
	mux.HandleFunc("/conversations.list", f.conversations)
	mux.HandleFunc("/chat.postMessage", f.chat)
	mux.HandleFunc("/chat.update", f.chat)
	mux.HandleFunc("/chat.postEphemeral", f.chat)
	mux.HandleFunc("/views.open", f.viewsOpen)
	mux.HandleFunc("/usergroups.users.list", f.groupMembers)
	mux.HandleFunc("/apps.connections.open", f.connectionsOpen)
	mux.HandleFunc("/socket", f.serveSocket)
	f.mux = mux
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// ServeHTTP answers as the fake does, for tests that put their own server
// (a slow one, say) in front of it.
func (f *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// URL is the API base to configure (slack.api_url or MLWATCH_SLACK_API_URL).
func (f *Server) URL() string { return f.srv.URL + "/" }

// Fail makes the next chat.* call answer status (with Retry-After when set).
func (f *Server) Fail(status int, retryAfter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, failure{status, retryAfter})
}

// Down makes every chat.* call answer status until Up.
func (f *Server) Down(status int, retryAfter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = &failure{status, retryAfter}
}

// FailWith makes the next chat.* call answer HTTP 200 with ok=false and
// the Slack error code (invalid_auth, is_archived, ratelimited, ...).
func (f *Server) FailWith(code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, code)
}

// HTML makes the next n chat.* calls answer an HTML page with HTTP 200, as
// a captive portal or a misconfigured proxy does.
func (f *Server) HTML(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.html += n
}

// OnCall calls fn with every successful chat.* call while the request is
// being answered, before the client hears back: a test can check the
// call against the state of the system at that moment.
func (f *Server) OnCall(fn func(Call)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onCall = fn
}

// Up ends Down.
func (f *Server) Up() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = nil
}

func (f *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer "+f.token && r.Form.Get("token") != f.token {
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_auth"})
		return false
	}
	return true
}

func (f *Server) conversations(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f.mu.Lock()
	f.calls = append(f.calls, Call{Method: "conversations.list", At: f.now()})
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !f.authorized(w, r) {
		return
	}
	page := func(cs [][2]string, next string) {
		var out []map[string]any
		for _, c := range cs {
			out = append(out, map[string]any{"id": c[1], "name": c[0]})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channels": out, "response_metadata": map[string]any{"next_cursor": next}})
	}
	half := (len(Channels) + 1) / 2
	if r.Form.Get("cursor") == "" {
		page(Channels[:half], "page2")
		return
	}
	page(Channels[half:], "")
}

func (f *Server) chat(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	method := strings.TrimPrefix(r.URL.Path, "/")
	f.mu.Lock()
	defer f.mu.Unlock()
	call := Call{Method: method, Channel: r.Form.Get("channel"), TS: r.Form.Get("ts"), ThreadTS: r.Form.Get("thread_ts"),
		Text: r.Form.Get("text"), Blocks: r.Form.Get("blocks"), User: r.Form.Get("user"), At: f.now()}
	var fail *failure
	if f.down != nil {
		fail = f.down
	} else if len(f.failures) > 0 {
		fail = &f.failures[0]
		f.failures = f.failures[1:]
	}
	if fail != nil {
		call.Method += " (failed)"
		f.calls = append(f.calls, call)
		if fail.retryAfter != "" {
			w.Header().Set("Retry-After", fail.retryAfter)
		}
		w.WriteHeader(fail.status)
		_, _ = w.Write([]byte("<html>error</html>"))
		return
	}
	if f.html > 0 {
		f.html--
		call.Method += " (failed)"
		f.calls = append(f.calls, call)
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html><body>Please sign in to the proxy</body></html>"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if len(f.errs) > 0 {
		code := f.errs[0]
		f.errs = f.errs[1:]
		call.Method += " (failed)"
		f.calls = append(f.calls, call)
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": code})
		return
	}
	if !f.authorized(w, r) {
		return
	}
	if !strings.HasPrefix(call.Channel, "C0") {
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "channel_not_found"})
		return
	}
	ts := call.TS
	if method == "chat.postMessage" {
		ts = fmt.Sprintf("1772445600.%06d", f.nextTS)
		f.nextTS++
		call.TS = ts
	}
	f.calls = append(f.calls, call)
	if f.onCall != nil {
		fn := f.onCall
		f.mu.Unlock()
		fn(call)
		f.mu.Lock()
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": call.Channel, "ts": ts, "text": call.Text})
}

// Calls returns the calls of one method ("" for all), oldest first.
func (f *Server) Calls(method string) []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}
