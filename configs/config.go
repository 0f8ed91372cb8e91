// Package configs loads and validates mlwatch's YAML configuration: strict
// decoding (unknown keys rejected), every problem collected with its file
// and line, cron specs and durations parsed at load, cross-references
// (detectors → models, routes → receivers) checked.
package configs

import (
	"time"

	"github.com/robfig/cron/v3"
)

// Config is one whole mlwatch configuration.
type Config struct {
	ClickHouse ClickHouse `yaml:"clickhouse"`
	State      State      `yaml:"state"`
	Global     Global     `yaml:"global"`
	Server     Server     `yaml:"server"`
	Slack      Slack      `yaml:"slack"`
	Models     []Model    `yaml:"models"`
	Detectors  []Detector `yaml:"detectors"`
	Receivers  []Receiver `yaml:"receivers"`
	Route      Route      `yaml:"route"`

	// Path is the file the config was read from.
	Path string `yaml:"-"`
}

// ClickHouse is the connection. No addr selects the embedded engine.
type ClickHouse struct {
	Addr         string   `yaml:"addr"`
	Database     string   `yaml:"database"`
	User         string   `yaml:"user"`
	PasswordEnv  string   `yaml:"password_env"`
	PasswordFile string   `yaml:"password_file"`
	Secure       bool     `yaml:"secure"`
	CAFile       string   `yaml:"ca_file"`
	QueryTimeout Duration `yaml:"query_timeout"`
	MaxOpenConns int      `yaml:"max_open_conns"`
	EmbeddedPath string   `yaml:"embedded_path"`

	// Password is resolved from the environment or password_file; it is
	// never read from the YAML text itself.
	Password string `yaml:"-"`
}

// State is where mlwatch keeps its own tables.
type State struct {
	// Database holds mlwatch's tables; default: the connection's database.
	Database string `yaml:"database"`
	// TablePrefix prefixes each of mlwatch's table names. Default "mlwatch_".
	TablePrefix string `yaml:"table_prefix"`
}

// Global holds defaults for every detector and the evaluation loop.
type Global struct {
	// RunTimeout bounds one detector run (context and max_execution_time).
	RunTimeout Duration `yaml:"run_timeout"`
	// FailureThreshold is how many failed runs in a row raise monitoring_failure.
	FailureThreshold int `yaml:"failure_threshold"`
	// ExternalURL is where mlwatch's web pages are reached, for links in alerts.
	ExternalURL string `yaml:"external_url"`
	// GroupBy names the labels that make one notification. Default [model, class].
	GroupBy []string `yaml:"group_by"`
	// GroupWait is how long a new group waits to collect its members, and
	// how long a product alert waits for a root cause to show up (settle).
	GroupWait Duration `yaml:"group_wait"`
	// RepeatInterval re-sends a still-firing alert after this long.
	RepeatInterval Duration `yaml:"repeat_interval"`
	// EvaluationsRetention drops evaluation rows older than this.
	EvaluationsRetention Duration `yaml:"evaluations_retention"`
	// FallbackReceiver gets a copy of a page its own receiver refused for
	// good (a revoked token, an archived channel), unless that receiver
	// names its own fallback_receiver.
	FallbackReceiver string `yaml:"fallback_receiver"`
	// Incremental configures incremental evaluation (detectors that read
	// closed time buckets from partial aggregates instead of rows).
	Incremental *Incremental `yaml:"incremental"`
}

// Incremental configures incremental evaluation: the detectors whose kind
// has a partial form (IncrementalKinds) and that read the prediction table
// compute each closed time bucket once into mlwatch's partials table and
// read only the newest minutes' rows (docs/design-notes.md).
type Incremental struct {
	// Enabled turns it on for every detector that can use it; a
	// detector's own incremental: true or false overrides it.
	Enabled bool `yaml:"enabled"`
	// Bucket is the partials' time bucket: whole minutes that divide a
	// day. Default 5m.
	Bucket Duration `yaml:"bucket"`
	// LateMargin is how long after eval_delay a bucket may still receive
	// rows before it is closed and computed. Default 10m.
	LateMargin Duration `yaml:"late_margin"`
	// Recheck is how far back closed buckets are counted again for rows
	// that arrived after their fill (default 6h), every RecheckEvery
	// (default 30m). Rows later than Recheck are not seen.
	Recheck      Duration `yaml:"recheck"`
	RecheckEvery Duration `yaml:"recheck_every"`
}

// IncrementalOn reports whether detector d is evaluated incrementally:
// its kind has a partial form, it reads the prediction table, and it or
// global.incremental turns it on.
func (c *Config) IncrementalOn(d *Detector) bool {
	spec, ok := kindOf(d.Kind)
	if !ok || !spec.incremental || d.Source == SourceRollup {
		return false
	}
	if d.Incremental != nil {
		return *d.Incremental
	}
	return c.Global.Incremental != nil && c.Global.Incremental.Enabled
}

// Server is the daemon's HTTP endpoint.
type Server struct {
	ListenAddress string `yaml:"listen_address"`
	APITokenEnv   string `yaml:"api_token_env"`
	APITokenFile  string `yaml:"api_token_file"`
	TLSCertFile   string `yaml:"tls_cert_file"`
	TLSKeyFile    string `yaml:"tls_key_file"`

	// APIToken is resolved from api_token_env or api_token_file.
	APIToken string `yaml:"-"`
}

// Slack holds settings shared by every Slack receiver.
type Slack struct {
	// APIURL is the Slack Web API base, e.g. https://slack.com/api/.
	// MLWATCH_SLACK_API_URL overrides it for every receiver.
	APIURL string `yaml:"api_url"`
	// RateLimit is the minimum gap between messages to one channel.
	RateLimit Duration `yaml:"rate_limit"`
	// Interactivity, when set, puts triage buttons on alert messages and
	// takes the clicks over Socket Mode and/or the HTTP endpoint.
	Interactivity *Interactivity `yaml:"interactivity"`
}

// Interactivity configures Slack's interactive messages: Socket Mode with
// an app-level token (no inbound port) and the HTTP endpoint
// POST /slack/interactions checked with the signing secret. A transport
// whose secret is unset is off.
type Interactivity struct {
	// AppTokenEnv names the variable with the app-level token (xapp-...,
	// scope connections:write) for Socket Mode; default SLACK_APP_TOKEN.
	AppTokenEnv  string `yaml:"app_token_env"`
	AppTokenFile string `yaml:"app_token_file"`
	// SigningSecretEnv names the variable with the app's signing secret
	// for the HTTP endpoint; default SLACK_SIGNING_SECRET.
	SigningSecretEnv  string `yaml:"signing_secret_env"`
	SigningSecretFile string `yaml:"signing_secret_file"`

	// AppToken and SigningSecret are resolved from the environment or files.
	AppToken      string `yaml:"-"`
	SigningSecret string `yaml:"-"`
}

// Enabled reports whether at least one transport has its secret.
func (i *Interactivity) Enabled() bool {
	return i != nil && (i.AppToken != "" || i.SigningSecret != "")
}

// Model is one monitored model and the table its predictions are logged in.
type Model struct {
	Name string `yaml:"name"`
	// Table is "name" or "database.name".
	Table string `yaml:"table"`
	// Cluster names the ClickHouse cluster (remote_servers) whose shards
	// hold the model's rows when Table is a Distributed table over
	// LocalTable, sharded by request (both rows of a request on one
	// shard, e.g. cityHash64(request_id)). With it the shadow detector
	// pairs production and shadow rows on each shard, over LocalTable,
	// and only partial aggregates travel (docs/scaling.md).
	Cluster string `yaml:"cluster"`
	// LocalTable is the table on every shard that the Distributed Table
	// reads, "name" or "database.name" (default database: Table's).
	// Required with Cluster.
	LocalTable string `yaml:"local_table"`
	// ModelValue is the value of the model column that selects this model;
	// default: Name. Empty model column: the table holds one model.
	ModelValue string   `yaml:"model_value"`
	Columns    Columns  `yaml:"columns"`
	Slices     []string `yaml:"slices"`
	Features   Features `yaml:"features"`
	Shadow     Shadow   `yaml:"shadow"`
	Owners     Owners   `yaml:"owners"`
	// Rollup, when set, names the model's minute rollup tables, which
	// `mlwatch schema apply --rollups` creates; detectors with
	// source: rollup read them instead of the prediction table.
	Rollup *Rollup `yaml:"rollup"`
	// Labels, when set, names the model's ground truth (labels.go).
	Labels *Labels `yaml:"labels"`
	// Guardrails, when set, are the limits of `mlwatch guardrails`.
	Guardrails *Guardrails `yaml:"guardrails"`
	// Threshold is the decision threshold on the score, for reports.
	RunbookURL string `yaml:"runbook_url"`
}

// Columns maps the canonical prediction-log columns to the table's names.
type Columns struct {
	TS           string `yaml:"ts"`
	RequestID    string `yaml:"request_id"`
	Model        string `yaml:"model"`
	ModelVersion string `yaml:"model_version"`
	Role         string `yaml:"role"`
	Score        string `yaml:"score"`
	Decision     string `yaml:"decision"`
	// DeployedAt, when set, names a DateTime column with the serving
	// version's deploy time; otherwise staleness uses the version's first row.
	DeployedAt string `yaml:"deployed_at"`
}

// Feature layouts.
const (
	LayoutArrays  = "arrays"
	LayoutColumns = "columns"
)

// Features says where feature values are logged.
type Features struct {
	// Layout is "arrays" (parallel name and value arrays) or "columns" (one
	// Nullable(Float64) column per feature).
	Layout       string `yaml:"layout"`
	NamesColumn  string `yaml:"names_column"`
	ValuesColumn string `yaml:"values_column"`
	// Names lists the features to watch. With the arrays layout, empty means
	// every name found in the data; with the columns layout it lists the columns.
	Names []string `yaml:"names"`
}

// Shadow modes.
const (
	ShadowRows    = "rows"
	ShadowColumns = "columns"
	ShadowNone    = "none"
)

// Shadow says how the shadow model's predictions are logged.
type Shadow struct {
	// Mode is "rows" (separate rows joined by request_id, told apart by the
	// role column), "columns" (shadow_score/shadow_decision on the production
	// row) or "none".
	Mode           string `yaml:"mode"`
	ProductionRole string `yaml:"production_role"`
	ShadowRole     string `yaml:"shadow_role"`
	ScoreColumn    string `yaml:"score_column"`
	DecisionColumn string `yaml:"decision_column"`
}

// Rollup names a model's minute rollup: Table (AggregatingMergeTree, per
// model, role, slice values and minute: counts, blocked, score histogram)
// and Table_features (per model, minute and feature: rows, non-null and
// zero counts, extremes, value histogram), each fed by a materialized view
// from the prediction table, so evaluation cost grows with minutes and
// slices, not rows.
type Rollup struct {
	// Table is "name" or "database.name" (default database: the
	// prediction table's).
	Table string `yaml:"table"`
}

// Detector sources.
const (
	SourceRaw    = "raw"
	SourceRollup = "rollup"
)

// Owners names the receiver of each owning team.
type Owners struct {
	Product string `yaml:"product"`
	Infra   string `yaml:"infra"`
}

// Baseline modes.
const (
	BaselinePrevious  = "previous"
	BaselineSeasonal  = "seasonal"
	BaselineReference = "reference"
)

// Baseline says which window the current one is compared with.
type Baseline struct {
	// Mode is "previous" (the span just before the window) or "seasonal"
	// (the same window on each of the previous Days days).
	Mode string `yaml:"mode"`
	Days int    `yaml:"days"`
	// Span is the previous baseline's length; default: the window.
	Span Duration `yaml:"span"`
	// From and To bound a reference baseline: a pinned healthy period,
	// whose days' same time-of-day windows the current one is compared
	// with, so a slow drift cannot move the baseline. Each is an RFC 3339
	// time, a date (2026-11-02), or an offset back from the evaluation
	// time (-28d): a reference that trails at a distance.
	From string `yaml:"from"`
	To   string `yaml:"to"`
	// Parsed From and To: an absolute time, or (when the time is zero) an
	// offset before the evaluation time.
	FromTime, ToTime     time.Time `yaml:"-"`
	FromOffset, ToOffset Duration  `yaml:"-"`
}

// ReferenceSpan returns the reference baseline's [from, to) for an
// evaluation at `at`.
func (b Baseline) ReferenceSpan(at time.Time) (time.Time, time.Time) {
	from, to := b.FromTime, b.ToTime
	if from.IsZero() {
		from = at.Add(-b.FromOffset.D())
	}
	if to.IsZero() {
		to = at.Add(-b.ToOffset.D())
	}
	return from, to
}

// Detector is one scheduled check of one model.
type Detector struct {
	Name     string `yaml:"name"`
	Kind     string `yaml:"kind"`
	Model    string `yaml:"model"`
	Schedule string `yaml:"schedule"`
	Disabled bool   `yaml:"disabled"`

	Window    Duration `yaml:"window"`
	Baseline  Baseline `yaml:"baseline"`
	EvalDelay Duration `yaml:"eval_delay"`

	// Slices overrides the model's slice columns for this detector; an
	// explicit empty list means aggregate only.
	Slices       *[]string `yaml:"slices"`
	TopK         int       `yaml:"top_k"`
	MinSamples   int       `yaml:"min_samples"`
	FDR          float64   `yaml:"fdr"`
	MinAbsChange float64   `yaml:"min_abs_change"`
	MinRelChange float64   `yaml:"min_rel_change"`

	For           Duration          `yaml:"for"`
	KeepFiringFor Duration          `yaml:"keep_firing_for"`
	Severity      Severity          `yaml:"severity"`
	Labels        map[string]string `yaml:"labels"`
	RunbookURL    string            `yaml:"runbook_url"`
	Timeout       Duration          `yaml:"timeout"`
	// Source is "raw" (default: the prediction table) or "rollup" (the
	// model's minute rollup; windows then start and end on whole minutes).
	Source string `yaml:"source"`
	// Incremental, when set, overrides global.incremental.enabled for this
	// detector (kinds in IncrementalKinds reading the table only).
	Incremental *bool `yaml:"incremental"`

	BlockRate     *BlockRateParams     `yaml:"block_rate"`
	FeatureHealth *FeatureHealthParams `yaml:"feature_health"`
	ShadowParams  *ShadowParams        `yaml:"shadow"`
	Volume        *VolumeParams        `yaml:"volume"`
	Freshness     *FreshnessParams     `yaml:"freshness"`
	Staleness     *StalenessParams     `yaml:"staleness"`
	Expectation   *ExpectationParams   `yaml:"expectation"`
	Performance   *PerformanceParams   `yaml:"performance"`

	// Cron is Schedule parsed at load.
	Cron cron.Schedule `yaml:"-"`
}

// Match operators.
const (
	OpEq     = "eq"
	OpNe     = "ne"
	OpPrefix = "prefix"
	OpIn     = "in"
)

// Match is one structured row matcher (no raw SQL from config).
type Match struct {
	Column string   `yaml:"column"`
	Op     string   `yaml:"op"`
	Value  string   `yaml:"value"`
	Values []string `yaml:"values"`
}

// Route is a node of the routing tree, as in Alertmanager: matchers on
// labels, first matching child wins unless it sets continue.
type Route struct {
	Receiver       string   `yaml:"receiver"`
	Matchers       []string `yaml:"matchers"`
	Continue       bool     `yaml:"continue"`
	GroupBy        []string `yaml:"group_by"`
	RepeatInterval Duration `yaml:"repeat_interval"`
	Routes         []Route  `yaml:"routes"`

	// Parsed is Matchers parsed at load.
	Parsed []Matcher `yaml:"-"`
}
