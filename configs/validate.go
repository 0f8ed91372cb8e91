package configs

import (
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/mlwatch/mlwatch/store"
)

// Environment variables that override the config's connection.
const (
	EnvClickHouseAddr     = "MLWATCH_CLICKHOUSE_ADDR"
	EnvClickHouseDatabase = "MLWATCH_CLICKHOUSE_DATABASE"
	EnvClickHouseUser     = "MLWATCH_CLICKHOUSE_USER"
	EnvClickHousePassword = "MLWATCH_CLICKHOUSE_PASSWORD"
	EnvSlackAPIURL        = "MLWATCH_SLACK_API_URL"
	DefaultAPITokenEnv    = "MLWATCH_API_TOKEN"
	DefaultAppTokenEnv    = "SLACK_APP_TOKEN"
	DefaultSigningEnv     = "SLACK_SIGNING_SECRET"
)

// Severity is how urgent an alert is: a detector's severity, or its
// class's default (detectors.Classes).
type Severity string

// Severities.
const (
	SeverityPage   Severity = "page"
	SeverityTicket Severity = "ticket"
	SeverityInfo   Severity = "info"
)

var (
	nameRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)
	prefixRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// clusterRe: a cluster name is an XML element of remote_servers.
	clusterRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)
	cronSpec  = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
)

// ParseSchedule parses a five-field cron spec or a descriptor (@hourly,
// @every 5m), in UTC.
func ParseSchedule(spec string) (cron.Schedule, error) {
	if strings.HasPrefix(strings.TrimSpace(spec), "TZ=") || strings.HasPrefix(strings.TrimSpace(spec), "CRON_TZ=") {
		return nil, fmt.Errorf("time zones are not supported in schedules; mlwatch runs in UTC")
	}
	// robfig/cron turns "@every -5m" (or 0s) into every second: a typo
	// must not run a detector 300 times as often as meant.
	if rest, ok := strings.CutPrefix(strings.TrimSpace(spec), "@every "); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(rest)); err == nil && d < time.Second {
			return nil, fmt.Errorf("@every needs a period of at least 1s, got %s", d)
		}
	}
	return cronSpec.Parse(spec)
}

type validator struct {
	file     string
	lines    map[string]int
	env      Env
	problems Problems
}

func (v *validator) errf(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{File: v.file, Line: lineOf(v.lines, path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// count sets an unset (zero) count at path.key to def and reports a
// negative one.
func (v *validator) count(path, key string, p *int, def int) {
	if *p == 0 {
		*p = def
	}
	if *p < 1 {
		v.errf(path+"."+key, "%s must be at least 1", key)
	}
}

// interval is the range a setting must fall in; an open end excludes its
// bound. It reads as in the error messages: (0, 1), [0.5, 1).
type interval struct {
	lo, hi         float64
	loOpen, hiOpen bool
}

var (
	closed01 = interval{lo: 0, hi: 1}
	open01   = interval{lo: 0, hi: 1, loOpen: true, hiOpen: true}
)

func (r interval) holds(x float64) bool {
	return (x > r.lo || (!r.loOpen && x == r.lo)) && (x < r.hi || (!r.hiOpen && x == r.hi))
}

func (r interval) String() string {
	lb, rb := "[", "]"
	if r.loOpen {
		lb = "("
	}
	if r.hiOpen {
		rb = ")"
	}
	return fmt.Sprintf("%s%g, %g%s", lb, r.lo, r.hi, rb)
}

// within sets an unset (zero) setting at path.key to def and reports one
// outside r (NaN included).
func (v *validator) within(path, key string, p *float64, def float64, r interval) {
	if *p == 0 {
		*p = def
	}
	if !r.holds(*p) {
		v.errf(path+"."+key, "%s must be in %s", key, r)
	}
}

// schedule parses the cron spec at path.schedule; "" and off (a spec
// meaning never, when not "") give none.
func (v *validator) schedule(path, spec, off string) cron.Schedule {
	if spec == "" || spec == off {
		return nil
	}
	sched, err := ParseSchedule(spec)
	if err != nil {
		hint := ""
		if off != "" {
			hint = " (or " + off + ")"
		}
		v.errf(path+".schedule", "invalid cron spec %q%s: %v", spec, hint, err)
	}
	return sched
}

// reference parses and checks a reference baseline's from and to: both
// absolute or both offsets, from before to, spanning 1 to 60 days, with a
// window of at most a day (its time of day is matched on each day).
func (v *validator) reference(path string, d *Detector) {
	b := &d.Baseline
	parse := func(field, s string) (time.Time, Duration, bool) {
		if s == "" {
			v.errf(path+"."+field, "a reference baseline needs %s (an RFC 3339 time, a date such as 2026-11-02, or an offset such as -28d)", field)
			return time.Time{}, 0, false
		}
		if strings.HasPrefix(s, "-") {
			off, err := ParseDuration(s[1:])
			if err != nil || off <= 0 {
				v.errf(path+"."+field, "%s %q: offset must be a positive duration back from the evaluation time, such as -28d", field, s)
				return time.Time{}, 0, false
			}
			return time.Time{}, Duration(off), true
		}
		for _, layout := range []string{time.RFC3339, "2006-01-02"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), 0, true
			}
		}
		v.errf(path+"."+field, "%s %q: want an RFC 3339 time, a date such as 2026-11-02, or an offset such as -28d", field, s)
		return time.Time{}, 0, false
	}
	ft, fo, okF := parse("from", b.From)
	tt, to, okT := parse("to", b.To)
	if !okF || !okT {
		return
	}
	if ft.IsZero() != tt.IsZero() {
		v.errf(path+".to", "from and to must both be times or both be offsets")
		return
	}
	b.FromTime, b.ToTime, b.FromOffset, b.ToOffset = ft, tt, fo, to
	length := tt.Sub(ft)
	if ft.IsZero() {
		length = fo.D() - to.D()
	}
	if length <= 0 {
		v.errf(path+".to", "to must be after from (%s, %s)", b.From, b.To)
	} else if length < 24*time.Hour || length > 60*24*time.Hour {
		v.errf(path+".to", "the reference period must run from a day to 60 days after from (got %s)", FormatDuration(length))
	}
	if d.Window.D() > 24*time.Hour {
		v.errf(path+".mode", "a reference baseline needs a window of at most 1d")
	}
}

func (v *validator) ident(path, name string) {
	if err := store.ValidateIdent(name); err != nil {
		v.errf(path, "%v", err)
	}
}

// column fills an unset column name with def and checks it.
func (v *validator) column(path string, name *string, def string) {
	if *name == "" {
		*name = def
	}
	v.ident(path, *name)
}

// table checks a table written "name" or "database.name".
func (v *validator) table(path, name string) {
	t := store.ParseTable(name)
	if t.Database != "" {
		v.ident(path, t.Database)
	}
	v.ident(path, t.Name)
}

func (v *validator) name(path, name, what string) {
	switch {
	case name == "":
		v.errf(path, "%s name is required", what)
	case !nameRe.MatchString(name):
		v.errf(path, "%s name %q: use letters, digits, '_', '.', ':' and '-'", what, name)
	}
}

func (v *validator) lookup(name string) (string, bool) {
	if name == "" {
		return "", false
	}
	return v.env(name)
}

// secret resolves a value from an environment variable or a file. A missing
// variable is not an error here (the receiver reports it when used); an
// unreadable file is.
func (v *validator) secret(path, envName, file string) string {
	if val, ok := v.lookup(envName); ok {
		return val
	}
	if file == "" {
		return ""
	}
	b, err := readSecretFile(file)
	if err != nil {
		v.errf(path, "read secret file: %v", err)
		return ""
	}
	return strings.TrimSpace(string(b))
}

// maxSecretSize bounds a secret file; tokens and passwords are short.
const maxSecretSize = 64 << 10

// readSecretFile reads at most maxSecretSize bytes: a secret file that
// points at /dev/zero must not make the loader read forever. Devices and
// pipes (/dev/null, /dev/fd/3) are fine.
func readSecretFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSecretSize {
		return nil, fmt.Errorf("%s is larger than %d KiB", name, maxSecretSize>>10)
	}
	return b, nil
}

func (v *validator) config(c *Config) {
	v.clickhouse(&c.ClickHouse)
	v.state(&c.State, c.ClickHouse.Database)
	v.global(&c.Global)
	v.server(&c.Server)
	v.slack(&c.Slack)

	receivers := map[string]bool{}
	for i := range c.Receivers {
		r := &c.Receivers[i]
		path := fmt.Sprintf("receivers[%d]", i)
		v.receiver(path, r)
		if receivers[r.Name] {
			v.errf(path+".name", "receiver %q is defined twice", r.Name)
		}
		receivers[r.Name] = true
	}

	models := map[string]*Model{}
	if len(c.Models) == 0 {
		v.errf("models", "at least one model is required")
	}
	for i := range c.Models {
		m := &c.Models[i]
		path := fmt.Sprintf("models[%d]", i)
		v.model(path, m, receivers, c.Route.Receiver != "")
		if models[m.Name] != nil {
			v.errf(path+".name", "model %q is defined twice", m.Name)
		}
		models[m.Name] = m
		if m.Cluster != "" && c.ClickHouse.Addr == "" {
			v.errf(path+".cluster", "cluster %q needs a ClickHouse server (clickhouse.addr): the embedded engine has no cluster", m.Cluster)
		}
	}

	detectors := map[string]bool{}
	for i := range c.Detectors {
		d := &c.Detectors[i]
		path := fmt.Sprintf("detectors[%d]", i)
		v.detector(path, d, models, &c.Global)
		if detectors[d.Name] {
			v.errf(path+".name", "detector %q is defined twice", d.Name)
		}
		detectors[d.Name] = true
	}
	v.route("route", &c.Route, receivers, true)
	v.fallbacks(c, receivers)
}

func (v *validator) clickhouse(ch *ClickHouse) {
	if val, ok := v.lookup(EnvClickHouseAddr); ok && val != "" {
		ch.Addr = val
	}
	if val, ok := v.lookup(EnvClickHouseDatabase); ok && val != "" {
		ch.Database = val
	}
	if val, ok := v.lookup(EnvClickHouseUser); ok && val != "" {
		ch.User = val
	}
	if val, ok := v.lookup(EnvClickHousePassword); ok {
		ch.Password = val
	} else {
		ch.Password = v.secret("clickhouse.password_file", ch.PasswordEnv, ch.PasswordFile)
	}
	if ch.Database == "" {
		ch.Database = "default"
	}
	v.ident("clickhouse.database", ch.Database)
	if ch.User == "" {
		ch.User = "default"
	}
	if ch.QueryTimeout == 0 {
		ch.QueryTimeout = Duration(60 * time.Second)
	}
	if ch.MaxOpenConns == 0 {
		ch.MaxOpenConns = 8
	}
	if ch.MaxOpenConns < 0 || ch.MaxOpenConns > 1000 {
		v.errf("clickhouse.max_open_conns", "must be between 1 and 1000")
	}
	if ch.EmbeddedPath == "" {
		ch.EmbeddedPath = ".mlwatch/chdb"
	}
	if ch.Addr != "" {
		if _, _, err := splitHostPort(ch.Addr); err != nil {
			v.errf("clickhouse.addr", "%v", err)
		}
	}
	if ch.CAFile != "" && !ch.Secure {
		v.errf("clickhouse.ca_file", "ca_file is set but secure is false")
	}
}

func splitHostPort(addr string) (string, string, error) {
	i := strings.LastIndexByte(addr, ':')
	if i <= 0 || i == len(addr)-1 {
		return "", "", fmt.Errorf("address %q: want host:port of the native protocol (e.g. 127.0.0.1:9000)", addr)
	}
	for _, c := range addr[i+1:] {
		if c < '0' || c > '9' {
			return "", "", fmt.Errorf("address %q: port must be a number", addr)
		}
	}
	return addr[:i], addr[i+1:], nil
}

func (v *validator) state(s *State, database string) {
	if s.Database == "" {
		s.Database = database
	}
	v.ident("state.database", s.Database)
	if s.TablePrefix == "" {
		s.TablePrefix = "mlwatch_"
	}
	if !prefixRe.MatchString(s.TablePrefix) {
		v.errf("state.table_prefix", "table prefix %q: use letters, digits and '_'", s.TablePrefix)
	}
}

func (v *validator) global(g *Global) {
	if g.RunTimeout == 0 {
		g.RunTimeout = Duration(30 * time.Second)
	}
	if g.FailureThreshold == 0 {
		g.FailureThreshold = 3
	}
	if g.FailureThreshold < 0 {
		v.errf("global.failure_threshold", "must be at least 1")
	}
	if g.ExternalURL == "" {
		g.ExternalURL = "http://127.0.0.1:9107"
	}
	v.url("global.external_url", g.ExternalURL)
	if g.GroupBy == nil {
		g.GroupBy = []string{"model", "class"}
	}
	v.labelNames("global.group_by", g.GroupBy)
	if g.GroupWait == 0 {
		g.GroupWait = Duration(30 * time.Second)
	}
	if g.RepeatInterval == 0 {
		g.RepeatInterval = Duration(4 * time.Hour)
	}
	if g.EvaluationsRetention == 0 {
		g.EvaluationsRetention = Duration(30 * 24 * time.Hour)
	}
	if g.Incremental != nil {
		v.incremental("global.incremental", g.Incremental)
	}
}

// incremental fills incremental evaluation's defaults and checks them.
func (v *validator) incremental(path string, in *Incremental) {
	def := func(d *Duration, x time.Duration) {
		if *d == 0 {
			*d = Duration(x)
		}
	}
	def(&in.Bucket, 5*time.Minute)
	def(&in.LateMargin, 10*time.Minute)
	def(&in.Recheck, 6*time.Hour)
	def(&in.RecheckEvery, 30*time.Minute)
	if b := in.Bucket.D(); b < time.Minute || b%time.Minute != 0 || (24*time.Hour)%b != 0 {
		v.errf(path+".bucket", "bucket %s must be whole minutes that divide a day (1m, 5m, 15m, 1h, ...)", in.Bucket)
	}
	if in.LateMargin < 0 {
		v.errf(path+".late_margin", "late_margin must not be negative")
	}
	if in.Recheck < 0 {
		v.errf(path+".recheck", "recheck must not be negative")
	}
	if in.RecheckEvery < 0 {
		v.errf(path+".recheck_every", "recheck_every must not be negative")
	}
}

func (v *validator) labelNames(path string, names []string) {
	for i, n := range names {
		if !labelNameRe.MatchString(n) {
			v.errf(fmt.Sprintf("%s[%d]", path, i), "%q is not a label name", n)
		}
	}
}

func (v *validator) server(s *Server) {
	if s.ListenAddress == "" {
		s.ListenAddress = "127.0.0.1:9107"
	}
	if s.APITokenEnv == "" {
		s.APITokenEnv = DefaultAPITokenEnv
	}
	s.APIToken = v.secret("server.api_token_file", s.APITokenEnv, s.APITokenFile)
	if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
		v.errf("server", "tls_cert_file and tls_key_file must be set together")
	}
}

func (v *validator) slack(s *Slack) {
	if val, ok := v.lookup(EnvSlackAPIURL); ok && val != "" {
		s.APIURL = val
	}
	if s.APIURL == "" {
		s.APIURL = DefaultSlackAPIURL
	}
	v.url("slack.api_url", s.APIURL)
	if !strings.HasSuffix(s.APIURL, "/") {
		s.APIURL += "/"
	}
	if s.RateLimit == 0 {
		s.RateLimit = Duration(time.Second)
	}
	if i := s.Interactivity; i != nil {
		if i.AppTokenEnv == "" {
			i.AppTokenEnv = DefaultAppTokenEnv
		}
		if i.SigningSecretEnv == "" {
			i.SigningSecretEnv = DefaultSigningEnv
		}
		i.AppToken = v.secret("slack.interactivity.app_token_file", i.AppTokenEnv, i.AppTokenFile)
		i.SigningSecret = v.secret("slack.interactivity.signing_secret_file", i.SigningSecretEnv, i.SigningSecretFile)
	}
}

func (v *validator) url(path, raw string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errf(path, "%q is not an http(s) URL", raw)
	}
}

func (v *validator) model(path string, m *Model, receivers map[string]bool, hasRootReceiver bool) {
	v.name(path+".name", m.Name, "model")
	if m.Table == "" {
		v.errf(path+".table", "table is required")
	} else {
		v.table(path+".table", m.Table)
	}
	v.cluster(path, m)
	if m.ModelValue == "" {
		m.ModelValue = m.Name
	}
	c := &m.Columns
	for _, col := range []struct {
		p    *string
		name string // the key and the default
	}{
		{&c.TS, "ts"}, {&c.RequestID, "request_id"}, {&c.Model, "model"}, {&c.ModelVersion, "model_version"},
		{&c.Role, "role"}, {&c.Score, "score"}, {&c.Decision, "decision"},
	} {
		v.column(path+".columns."+col.name, col.p, col.name)
	}
	if c.DeployedAt != "" {
		v.ident(path+".columns.deployed_at", c.DeployedAt)
	}
	for i, s := range m.Slices {
		v.ident(fmt.Sprintf("%s.slices[%d]", path, i), s)
	}
	v.noDuplicates(path+".slices", m.Slices)
	if m.Rollup != nil {
		if m.Rollup.Table == "" {
			v.errf(path+".rollup.table", "table is required")
		} else {
			v.table(path+".rollup.table", m.Rollup.Table)
		}
	}

	f := &m.Features
	switch f.Layout {
	case "":
		f.Layout = LayoutArrays
		fallthrough
	case LayoutArrays:
		v.column(path+".features.names_column", &f.NamesColumn, "feature_names")
		v.column(path+".features.values_column", &f.ValuesColumn, "feature_values")
	case LayoutColumns:
		if len(f.Names) == 0 {
			v.errf(path+".features.names", "the columns layout needs the list of feature columns")
		}
		for i, n := range f.Names {
			v.ident(fmt.Sprintf("%s.features.names[%d]", path, i), n)
		}
	default:
		v.errf(path+".features.layout", "layout %q: want arrays or columns", f.Layout)
	}
	for i, n := range f.Names {
		if n == "" {
			v.errf(fmt.Sprintf("%s.features.names[%d]", path, i), "empty feature name")
		}
	}
	v.noDuplicates(path+".features.names", f.Names)

	s := &m.Shadow
	switch s.Mode {
	case "":
		s.Mode = ShadowRows
		fallthrough
	case ShadowRows:
		if s.ProductionRole == "" {
			s.ProductionRole = "production"
		}
		if s.ShadowRole == "" {
			s.ShadowRole = "shadow"
		}
		if s.ProductionRole == s.ShadowRole {
			v.errf(path+".shadow.shadow_role", "shadow_role must differ from production_role")
		}
	case ShadowColumns:
		v.column(path+".shadow.score_column", &s.ScoreColumn, "shadow_score")
		v.column(path+".shadow.decision_column", &s.DecisionColumn, "shadow_decision")
	case ShadowNone:
	default:
		v.errf(path+".shadow.mode", "mode %q: want rows, columns or none", s.Mode)
	}

	for _, o := range []struct{ key, name string }{{"product", m.Owners.Product}, {"infra", m.Owners.Infra}} {
		if o.name != "" && !receivers[o.name] {
			v.errf(path+".owners."+o.key, "unknown receiver %q", o.name)
		}
	}
	if (m.Owners.Product == "" || m.Owners.Infra == "") && !hasRootReceiver {
		v.errf(path+".owners", "model %q needs owners.product and owners.infra receivers, or route.receiver as a fallback", m.Name)
	}
	if m.RunbookURL != "" {
		v.url(path+".runbook_url", m.RunbookURL)
	}
	v.labels(path+".labels", m)
	v.guardrails(path+".guardrails", m.Guardrails)
}

// cluster checks models[].cluster and models[].local_table: both or
// neither, a cluster name as remote_servers spells it, and a local table
// other than the Distributed table.
func (v *validator) cluster(path string, m *Model) {
	switch {
	case m.Cluster == "" && m.LocalTable == "":
		return
	case m.Cluster == "":
		v.errf(path+".local_table", "local_table %q needs cluster: the name of the ClickHouse cluster (remote_servers) whose shards hold it", m.LocalTable)
		return
	case m.LocalTable == "":
		v.errf(path+".cluster", "cluster %q needs local_table: the table on each shard that the Distributed table %q reads", m.Cluster, m.Table)
		return
	}
	if !clusterRe.MatchString(m.Cluster) {
		v.errf(path+".cluster", "cluster name %q: use letters, digits, '_', '.' and '-', as in remote_servers", m.Cluster)
	}
	v.table(path+".local_table", m.LocalTable)
	t, l := store.ParseTable(m.Table), store.ParseTable(m.LocalTable)
	if l.Database == "" {
		l.Database = t.Database
	}
	if l == t {
		v.errf(path+".local_table", "local_table %q is the model's table: name the shards' local table, which the Distributed table %q reads", m.LocalTable, m.Table)
	}
}

func (v *validator) noDuplicates(path string, xs []string) {
	seen := map[string]bool{}
	for i, x := range xs {
		if seen[x] {
			v.errf(fmt.Sprintf("%s[%d]", path, i), "%q is listed twice", x)
		}
		seen[x] = true
	}
}

func (v *validator) detector(path string, d *Detector, models map[string]*Model, g *Global) {
	v.name(path+".name", d.Name, "detector")
	m := models[d.Model]
	switch {
	case d.Model == "":
		v.errf(path+".model", "model is required")
	case m == nil:
		v.errf(path+".model", "unknown model %q", d.Model)
	}
	def, ok := kindOf(d.Kind)
	if !ok {
		// Everything below depends on the kind; one problem is enough.
		v.errf(path+".kind", "unknown kind %q; want one of %s", d.Kind, strings.Join(Kinds, ", "))
		return
	}
	if d.Schedule == "" {
		d.Schedule = def.schedule
	}
	d.Cron = v.schedule(path, d.Schedule, "")
	if d.Window == 0 {
		d.Window = Duration(def.window)
	}
	if d.Window.D() < time.Minute {
		v.errf(path+".window", "window must be at least 1m")
	}
	if d.Window.D() > 31*24*time.Hour {
		v.errf(path+".window", "window must be at most 31d")
	}
	switch d.Baseline.Mode {
	case "":
		d.Baseline.Mode = BaselineSeasonal
	case BaselineSeasonal, BaselinePrevious:
		if d.Baseline.From != "" || d.Baseline.To != "" {
			v.errf(path+".baseline.from", "from and to belong to a reference baseline (mode: reference)")
		}
	case BaselineReference:
		v.reference(path+".baseline", d)
	default:
		v.errf(path+".baseline.mode", "mode %q: want seasonal, previous or reference", d.Baseline.Mode)
	}
	// An absent days means 7; an explicit 0 is refused rather than
	// silently read as 7.
	if _, set := v.lines[path+".baseline.days"]; d.Baseline.Days == 0 && !set {
		d.Baseline.Days = 7
	}
	if d.Baseline.Days < 1 || d.Baseline.Days > 60 {
		v.errf(path+".baseline.days", "days must be between 1 and 60")
	}
	if d.Baseline.Mode == BaselineSeasonal && d.Window.D() > 24*time.Hour {
		v.errf(path+".baseline.mode", "a seasonal baseline needs a window of at most 1d")
	}
	if d.Baseline.Span == 0 {
		d.Baseline.Span = d.Window
	}
	if d.TopK == 0 {
		d.TopK = 50
	}
	if d.TopK < 1 || d.TopK > 10000 {
		v.errf(path+".top_k", "top_k must be between 1 and 10000")
	}
	v.count(path, "min_samples", &d.MinSamples, 200)
	v.within(path, "fdr", &d.FDR, 0.05, open01)
	v.within(path, "min_abs_change", &d.MinAbsChange, def.minAbs, closed01)
	if d.MinRelChange == 0 {
		d.MinRelChange = def.minRel
	}
	if d.MinRelChange < 0 || math.IsNaN(d.MinRelChange) {
		v.errf(path+".min_rel_change", "min_rel_change must not be negative")
	}
	switch d.Severity {
	case "", SeverityPage, SeverityTicket, SeverityInfo:
	default:
		v.errf(path+".severity", "severity %q: want page, ticket or info", d.Severity)
	}
	if d.Timeout == 0 {
		d.Timeout = g.RunTimeout
	}
	for k := range d.Labels {
		if !labelNameRe.MatchString(k) {
			v.errf(path+".labels."+k, "%q is not a label name", k)
		}
	}
	if d.RunbookURL != "" {
		v.url(path+".runbook_url", d.RunbookURL)
	}
	if d.Slices != nil {
		for i, s := range *d.Slices {
			v.ident(fmt.Sprintf("%s.slices[%d]", path, i), s)
		}
		v.noDuplicates(path+".slices", *d.Slices)
	}
	v.params(path, d, m, def)
	v.source(path, d, m, def)
	if d.Incremental != nil && *d.Incremental {
		switch {
		case !def.incremental:
			v.errf(path+".incremental", "kind %s has no incremental form; incremental evaluation serves %s", d.Kind, strings.Join(IncrementalKinds, ", "))
		case d.Source == SourceRollup:
			v.errf(path+".incremental", "a detector reading the rollup (source: rollup) is not evaluated incrementally; drop one of the two")
		}
	}
}

// source checks that a detector reading the rollup can: its model has
// one, its kind is served by it, and what it asks for is in it.
func (v *validator) source(path string, d *Detector, m *Model, spec kindSpec) {
	switch d.Source {
	case "", SourceRaw:
		d.Source = SourceRaw
		return
	case SourceRollup:
	default:
		v.errf(path+".source", "source %q: want raw or rollup", d.Source)
		return
	}
	if m == nil {
		return
	}
	if m.Rollup == nil {
		v.errf(path+".source", "model %s has no rollup (set models[].rollup.table and run schema apply --rollups)", m.Name)
		return
	}
	if m.Shadow.Mode == ShadowColumns {
		v.errf(path+".source", "model %s logs shadow scores as columns; rollups support shadow mode rows or none", m.Name)
		return
	}
	if !spec.rollup {
		v.errf(path+".source", "kind %s cannot read a rollup; rollups serve %s", d.Kind, strings.Join(RollupKinds, ", "))
		return
	}
	sl := m.Slices
	if d.Slices != nil {
		sl = *d.Slices
	}
	if d.Kind == KindFeatureHealth {
		if len(sl) > 0 {
			v.errf(path+".slices", "feature_health from the rollup is per feature only: set slices: []")
		}
		if p := d.FeatureHealth; p != nil && (p.DefaultValue != nil && *p.DefaultValue != 0 || len(p.Defaults) > 0) {
			v.errf(path+".feature_health.default_value", "the rollup counts zero values only: default_value must be 0 without defaults")
		}
		return
	}
	for _, s := range sl {
		if !slices.Contains(m.Slices, s) {
			v.errf(path+".slices", "slice %s is not one of model %s's slices, which the rollup is keyed by", s, m.Name)
		}
	}
}

func (v *validator) rate(path string, r *float64) {
	if r != nil && !(*r >= 0 && *r <= 1) {
		v.errf(path, "rate must be in [0, 1]")
	}
}

func (v *validator) psi(path string, warn, alert *float64) {
	if *warn == 0 {
		*warn = 0.1
	}
	if *alert == 0 {
		*alert = 0.25
	}
	if *warn < 0 || *alert < *warn {
		v.errf(path+".psi_alert", "psi_alert must be at least psi_warn, both positive")
	}
}

func (v *validator) match(path string, m *Match) {
	v.ident(path+".column", m.Column)
	switch m.Op {
	case "":
		m.Op = OpEq
	case OpEq, OpNe, OpPrefix:
	case OpIn:
		if len(m.Values) == 0 {
			v.errf(path+".values", "op in needs values")
		}
		return
	default:
		v.errf(path+".op", "op %q: want eq, ne, prefix or in", m.Op)
	}
	if len(m.Values) > 0 {
		v.errf(path+".values", "values is for op in; use value")
	}
}

func (v *validator) route(path string, r *Route, receivers map[string]bool, root bool) {
	if r.Receiver != "" && !receivers[r.Receiver] {
		v.errf(path+".receiver", "unknown receiver %q", r.Receiver)
	}
	if root && len(r.Matchers) > 0 {
		v.errf(path+".matchers", "the root route matches everything; put matchers on its routes")
	}
	if root && r.Continue {
		v.errf(path+".continue", "continue has no meaning on the root route")
	}
	r.Parsed = r.Parsed[:0]
	for i, s := range r.Matchers {
		m, err := ParseMatcher(s)
		if err != nil {
			v.errf(fmt.Sprintf("%s.matchers[%d]", path, i), "%v", err)
			continue
		}
		r.Parsed = append(r.Parsed, m)
	}
	v.labelNames(path+".group_by", r.GroupBy)
	if !root && r.Receiver == "" && len(r.Routes) == 0 {
		v.errf(path, "a route needs a receiver or child routes")
	}
	for i := range r.Routes {
		v.route(fmt.Sprintf("%s.routes[%d]", path, i), &r.Routes[i], receivers, false)
	}
}
