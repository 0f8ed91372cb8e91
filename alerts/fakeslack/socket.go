package fakeslack

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// socket is the fake's Socket Mode side: apps.connections.open answers a
// WebSocket URL on this server (for the app-level token only); the
// connection gets "hello", WebSocket pings, and the envelopes a test
// sends with Interact; the client's acknowledgements are matched to
// their envelope_id.
type socket struct {
	appToken string
	conns    []*wsConn
	opens    int
	acks     map[string]chan json.RawMessage // envelope_id → its ack's payload
	nextEnv  int
	connCh   chan struct{} // closed and replaced when a connection arrives
}

type wsConn struct {
	mu sync.Mutex // writes
	c  *websocket.Conn
}

// SetAppToken sets the app-level token (xapp-...) apps.connections.open accepts.
func (f *Server) SetAppToken(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.appToken = token
}

// SetUserGroup sets the members usergroups.users.list answers for a group.
func (f *Server) SetUserGroup(id string, members ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.groups == nil {
		f.groups = map[string][]string{}
	}
	f.groups[id] = members
}

// Opens counts the apps.connections.open calls that were answered with a URL.
func (f *Server) Opens() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opens
}

// Conns counts the Socket Mode connections open now.
func (f *Server) Conns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

func (f *Server) connectionsOpen(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, Call{Method: "apps.connections.open", At: f.now()})
	if f.appToken == "" || r.Header.Get("Authorization") != "Bearer "+f.appToken {
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	f.opens++
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "url": "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/socket"})
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (f *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	wc := &wsConn{c: c}
	f.mu.Lock()
	f.conns = append(f.conns, wc)
	if f.acks == nil {
		f.acks = map[string]chan json.RawMessage{}
	}
	if f.connCh != nil {
		close(f.connCh)
		f.connCh = nil
	}
	f.mu.Unlock()
	_ = wc.write(map[string]any{"type": "hello", "num_connections": 1, "connection_info": map[string]any{"app_id": "A0MLWATCH"}})
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if c.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second)) != nil {
					return
				}
			}
		}
	}()
	defer close(done)
	defer f.dropConn(wc)
	for {
		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if err := c.ReadJSON(&ack); err != nil {
			return
		}
		f.mu.Lock()
		ch := f.acks[ack.EnvelopeID]
		delete(f.acks, ack.EnvelopeID)
		f.mu.Unlock()
		if ch != nil {
			ch <- ack.Payload
		}
	}
}

func (f *Server) dropConn(wc *wsConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, c := range f.conns {
		if c == wc {
			f.conns = append(f.conns[:i], f.conns[i+1:]...)
			break
		}
	}
	_ = wc.c.Close()
}

func (wc *wsConn) write(v any) error {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	_ = wc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return wc.c.WriteJSON(v)
}

// WaitConnected waits until a Socket Mode client is connected.
func (f *Server) WaitConnected(timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		f.mu.Lock()
		if len(f.conns) > 0 {
			f.mu.Unlock()
			return nil
		}
		if f.connCh == nil {
			f.connCh = make(chan struct{})
		}
		ch := f.connCh
		f.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return errors.New("fakeslack: no Socket Mode connection")
		}
	}
}

// Interact sends an interaction payload (block_actions, view_submission)
// over the Socket Mode connection in an envelope, as Slack does, and
// waits for the client to acknowledge that envelope_id; it returns the
// ack's payload (a view_submission's response_action, if any).
func (f *Server) Interact(payload any, timeout time.Duration) (json.RawMessage, error) {
	if err := f.WaitConnected(timeout); err != nil {
		return nil, err
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.nextEnv++
	id := fmt.Sprintf("env-%04d", f.nextEnv)
	ch := make(chan json.RawMessage, 1)
	f.acks[id] = ch
	wc := f.conns[len(f.conns)-1]
	f.mu.Unlock()
	env := map[string]any{"envelope_id": id, "type": "interactive", "accepts_response_payload": true, "payload": json.RawMessage(body)}
	if err := wc.write(env); err != nil {
		return nil, fmt.Errorf("fakeslack: send envelope: %w", err)
	}
	select {
	case p := <-ch:
		return p, nil
	case <-time.After(timeout):
		f.mu.Lock()
		delete(f.acks, id)
		f.mu.Unlock()
		return nil, fmt.Errorf("fakeslack: envelope %s not acknowledged within %s", id, timeout)
	}
}

func (f *Server) viewsOpen(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	var body struct {
		TriggerID string          `json:"trigger_id"`
		View      json.RawMessage `json:"view"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	f.calls = append(f.calls, Call{Method: "views.open", View: string(body.View), Text: body.TriggerID, At: f.now()})
	if body.TriggerID == "" {
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_trigger"})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "view": map[string]any{"id": "V0MODAL"}})
}

func (f *Server) groupMembers(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	w.Header().Set("Content-Type", "application/json")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, Call{Method: "usergroups.users.list", Text: r.Form.Get("usergroup"), At: f.now()})
	if !f.authorized(w, r) {
		return
	}
	members, ok := f.groups[r.Form.Get("usergroup")]
	if !ok {
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "no_such_subteam"})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "users": members})
}
