package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mlwatch/mlwatch/alerts"
	"github.com/mlwatch/mlwatch/configs"
)

const notificationsUsage = `usage:
  mlwatch notifications list  --config FILE [--state pending|sent|dead] [--format text|json] [--url URL]
  mlwatch notifications retry --config FILE [--url URL] ID...
The running daemon owns the outbox: these commands call its API (server.listen_address,
or --url), and retry sends the API token (server.api_token_env, default MLWATCH_API_TOKEN).`

// notificationsCmd is `mlwatch notifications list|retry`: what the
// daemon could not deliver, and sending it again once the receiver is
// fixed.
func notificationsCmd(ctx context.Context, c *cli, args []string) int {
	return c.subcommand(ctx, "notifications", notificationsUsage, args, map[string]func(context.Context, *cli, []string) int{
		"list": notificationsList, "retry": notificationsRetry,
	})
}

// daemonAPI is the running daemon's API as the config (or --url) names it.
type daemonAPI struct {
	base  string
	token string
	hc    *http.Client
	// named: the address is --url's, not the config's.
	named bool
}

func newDaemonAPI(cfg *configs.Config, override string) daemonAPI {
	base := override
	if base == "" {
		scheme := "http"
		if cfg.Server.TLSCertFile != "" {
			scheme = "https"
		}
		base = scheme + "://" + cfg.Server.ListenAddress
	}
	return daemonAPI{base: strings.TrimSuffix(base, "/"), token: cfg.Server.APIToken, hc: &http.Client{Timeout: 30 * time.Second}, named: override != ""}
}

// call does one API request without a body and decodes the envelope's
// data into out.
func (a daemonAPI) call(ctx context.Context, method, path string, out any) error {
	return a.do(ctx, method, path, nil, out)
}

// postJSON sends body to a mutating API call and decodes the envelope's
// data into out.
func (a daemonAPI) postJSON(ctx context.Context, path string, body, out any) error {
	return a.do(ctx, http.MethodPost, path, body, out)
}

// do is one API request: body (when not nil) as JSON, the token on
// mutating calls, and the envelope's data decoded into out (when not
// nil); a failure says what answered, or that nothing did.
func (a daemonAPI) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if method != http.MethodGet && a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w (is mlwatch run listening there? --url sets the address)", err)
	}
	defer resp.Body.Close()
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s %s: HTTP %d: not mlwatch's API (%.80q)", method, path, resp.StatusCode, raw)
	}
	if env.Status != "success" {
		return errors.New(env.Error)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(env.Data, out)
}

func notificationsList(ctx context.Context, c *cli, args []string) int {
	f := newFlags("notifications list", c)
	state := f.String("state", "", "only notifications in this state: pending, sent or dead")
	format := f.format("(one notification per line)")
	f.daemon("")
	if code, ok := f.parse(args); !ok {
		return code
	}
	cfg, ok := c.load(*f.config)
	if !ok {
		return 1
	}
	var ns []alerts.NotificationStatus
	if err := f.api(cfg).call(ctx, http.MethodGet, "/api/v1/notifications?state="+url.QueryEscape(*state), &ns); err != nil {
		fmt.Fprintf(c.stderr, "mlwatch notifications list: %v\n", err)
		return 1
	}
	if *format == "json" {
		return exitCode(jsonLines(c, "notifications list", ns))
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tRECEIVER\tKIND\tCREATED\tATTEMPTS\tALERTS\tLAST ERROR")
	for _, n := range ns {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", n.ID, n.State, n.Receiver, n.Kind, n.CreatedAt.UTC().Format(time.RFC3339),
			n.Attempts, strings.Join(n.Alerts, "; "), n.LastError)
	}
	tw.Flush()
	return 0
}

func notificationsRetry(ctx context.Context, c *cli, args []string) int {
	f := newFlags("notifications retry", c)
	f.daemon("")
	api, code, ok := f.parseIDs(c, args, "give the IDs to retry (mlwatch notifications list --state dead)")
	if !ok {
		return code
	}
	code = 0
	for _, id := range f.Args() {
		var n alerts.NotificationStatus
		if err := api.call(ctx, http.MethodPost, "/api/v1/notifications/"+url.PathEscape(id)+"/retry", &n); err != nil {
			fmt.Fprintf(c.stderr, "mlwatch notifications retry %s: %v\n", id, err)
			code = 1
			continue
		}
		fmt.Fprintf(c.stdout, "%s: %s, to %s\n", n.ID, n.State, n.Receiver)
	}
	return code
}
