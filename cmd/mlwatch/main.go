// Command mlwatch watches production ML models through their prediction
// logs in ClickHouse and pages the team that owns what broke.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
	"github.com/mlwatch/mlwatch/monitor"
	"github.com/mlwatch/mlwatch/store"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// command is one subcommand: it parses its own flags and returns an exit code.
type command struct {
	summary string
	run     func(ctx context.Context, env *cli, args []string) int
}

// cli is what every subcommand shares: output streams and the environment.
type cli struct {
	stdout, stderr io.Writer
	env            configs.Env
}

func commands() map[string]command {
	return map[string]command{
		"check-config":  {"validate a config file; exit 1 listing each problem as FILE:LINE: message", checkConfig},
		"schema":        {"schema apply: create mlwatch's tables (and --predictions, the canonical prediction table)", schemaCmd},
		"generate":      {"insert realistic synthetic traffic with injectable incidents", generateCmd},
		"run":           {"the daemon: scheduled detectors, alert pipeline, HTTP API and status page", runCmd},
		"eval":          {"evaluate every detector once and print the alerts (--notify also sends them)", evalCmd},
		"guardrails":    {"is the candidate (shadow or --version) safe to ship? exit 0 ship, 1 a guardrail fails, 2 not enough data, 3 bad usage/config, 4 query failed", guardrailsCmd},
		"backtest":      {"replay the detectors over history and print what would have been sent", backtestCmd},
		"report":        {"alert quality per detector from Slack triage: acks, time to ack, false positives", reportCmd},
		"demo":          {"the whole story on the embedded engine, no set-up", demoCmd},
		"routes":        {"routes test: the receivers a label set reaches", routesCmd},
		"silence":       {"silence add|list|expire: mute matching alerts for a while", silenceCmd},
		"notifications": {"notifications list|retry: what the daemon could not deliver; send it again", notificationsCmd},
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mlwatch: unknown command %q\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cmd.run(ctx, &cli{stdout: stdout, stderr: stderr, env: os.LookupEnv}, args[1:])
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: mlwatch COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, cmds[n].summary)
	}
}

// flags builds a subcommand's flag set with the flags every command has.
type flags struct {
	*flag.FlagSet
	config   *string
	logLevel *string
	// output is --format, when the command has one (flags.format).
	output *string
	// daemonURL is --url, when the command talks to the running daemon
	// (flags.daemon).
	daemonURL *string
}

// duration adds a flag of a positive span as configs.ParseDuration
// reads it (30m, 2h, 7d), at least min; value when not given.
func (f *flags) duration(name string, value, min time.Duration, help string) *time.Duration {
	d := value
	f.Var(durationFlag{&d, min}, name, help)
	return &d
}

// durationFlag is the flag.Value of flags.duration.
type durationFlag struct {
	d   *time.Duration
	min time.Duration
}

func (v durationFlag) String() string {
	if v.d == nil || *v.d == 0 {
		return ""
	}
	return configs.FormatDuration(*v.d)
}

func (v durationFlag) Set(s string) error {
	d, err := configs.ParseDuration(s)
	switch {
	case err != nil:
		return err
	case d <= 0:
		return fmt.Errorf("want a positive duration such as 30m, 2h or 7d")
	case d < v.min:
		return fmt.Errorf("want a duration of at least %s", configs.FormatDuration(v.min))
	}
	*v.d = d
	return nil
}

// daemon adds --url, the running daemon's address; without says what
// the command does when no daemon answers ("" when it needs one).
func (f *flags) daemon(without string) {
	help := "the running daemon's address, e.g. http://127.0.0.1:9107 (default: server.listen_address)"
	if without != "" {
		help += "; without a daemon " + without
	}
	f.daemonURL = f.String("url", "", help)
}

// api is the running daemon's API at --url, else at cfg's
// server.listen_address.
func (f *flags) api(cfg *configs.Config) daemonAPI {
	return newDaemonAPI(cfg, *f.daemonURL)
}

// format adds --format text|json (default text), which parse checks;
// each describes what one JSON line holds, e.g. "(one alert per line)".
func (f *flags) format(each string) *string {
	help := "output: text or json"
	if each != "" {
		help += " " + each
	}
	f.output = f.String("format", "text", help)
	return f.output
}

func newFlags(name string, c *cli) *flags {
	fs := flag.NewFlagSet("mlwatch "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	return &flags{
		FlagSet:  fs,
		config:   fs.String("config", "configs/example.yaml", "config file"),
		logLevel: fs.String("log.level", "info", "log level: debug, info, warn, error"),
	}
}

// parseIDs parses the command line of a command that acts through the
// daemon (flags.daemon) on IDs given after its flags (saying what to give
// when none is), loads the config and returns the daemon's API; it
// returns false (and the exit code) when the command cannot go on.
func (f *flags) parseIDs(c *cli, args []string, missing string) (daemonAPI, int, bool) {
	if code, ok := f.parse(args); !ok {
		return daemonAPI{}, code, false
	}
	if f.NArg() == 0 {
		fmt.Fprintf(c.stderr, "%s: %s\n", f.Name(), missing)
		return daemonAPI{}, 2, false
	}
	cfg, ok := c.load(*f.config)
	if !ok {
		return daemonAPI{}, 1, false
	}
	return f.api(cfg), 0, true
}

// jsonLines writes rows to stdout as JSON, one a line; a failed write is
// said on stderr and gives false.
func jsonLines[T any](c *cli, cmd string, rows []T) bool {
	enc := json.NewEncoder(c.stdout)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(c.stderr, "mlwatch %s: %v\n", cmd, err)
			return false
		}
	}
	return true
}

// exitCode is 0 for ok, else 1.
func exitCode(ok bool) int {
	if ok {
		return 0
	}
	return 1
}

// parse parses args; it returns false (and the exit code) on a bad command line.
func (f *flags) parse(args []string) (int, bool) {
	if err := f.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0, false
		}
		return 2, false
	}
	if f.output != nil && *f.output != "text" && *f.output != "json" {
		fmt.Fprintf(f.Output(), "%s: --format %q: want text or json\n", f.Name(), *f.output)
		return 2, false
	}
	return 0, true
}

// subcommand runs args[0] of command name (`mlwatch name sub ...`) from
// subs, or prints usage.
func (c *cli) subcommand(ctx context.Context, name, usage string, args []string, subs map[string]func(context.Context, *cli, []string) int) int {
	if len(args) == 0 {
		fmt.Fprintln(c.stderr, usage)
		return 2
	}
	run, ok := subs[args[0]]
	if !ok {
		fmt.Fprintf(c.stderr, "mlwatch %s: unknown subcommand %q\n%s\n", name, args[0], usage)
		return 2
	}
	return run(ctx, c, args[1:])
}

func (c *cli) logger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log.level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(c.stderr), lvl)
	return zap.New(core), nil
}

// load reads the config and prints its problems on failure.
func (c *cli) load(path string) (*configs.Config, bool) {
	cfg, err := configs.Load(path, c.env)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return nil, false
	}
	return cfg, true
}

// openStore connects to the configured engine.
func openStore(ctx context.Context, cfg *configs.Config, log *zap.Logger, hooks ...store.Hook) (*store.DB, error) {
	ch := cfg.ClickHouse
	return store.Open(ctx, store.Options{
		Addr:         ch.Addr,
		Database:     ch.Database,
		User:         ch.User,
		Password:     ch.Password,
		Secure:       ch.Secure,
		CAFile:       ch.CAFile,
		EmbeddedPath: ch.EmbeddedPath,
		QueryTimeout: ch.QueryTimeout.D(),
		MaxOpenConns: ch.MaxOpenConns,
		Logger:       log,
		Hooks:        hooks,
	})
}

// setup loads the config, builds the logger and opens the store: the
// common start of every command that talks to ClickHouse.
func (c *cli) setup(ctx context.Context, f *flags) (*configs.Config, *zap.Logger, *store.DB, int) {
	log, err := c.logger(*f.logLevel)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return nil, nil, nil, 2
	}
	cfg, ok := c.load(*f.config)
	if !ok {
		return nil, nil, nil, 1
	}
	db, err := openStore(ctx, cfg, log)
	if err != nil {
		fmt.Fprintf(c.stderr, "mlwatch: %v\n", err)
		return nil, nil, nil, 1
	}
	return cfg, log, db, 0
}

func tablesOf(cfg *configs.Config) store.Tables {
	return store.Tables{Database: cfg.State.Database, Prefix: cfg.State.TablePrefix}
}

// applyPartials creates incremental evaluation's tables when a detector
// of cfg is evaluated incrementally (eval writes no other table).
func applyPartials(ctx context.Context, db store.Store, cfg *configs.Config) error {
	for i := range cfg.Detectors {
		if d := &cfg.Detectors[i]; !d.Disabled && cfg.IncrementalOn(d) {
			t := tablesOf(cfg)
			if err := store.Apply(ctx, db, t.Database, detectors.IncrementalTables(t.Partials())); err != nil {
				return fmt.Errorf("incremental evaluation's tables in %s: %w", t.Database, err)
			}
			return nil
		}
	}
	return nil
}

// applyTables creates mlwatch's own tables (monitor.TableDefs) where the
// config keeps them, if missing, and returns their names.
func applyTables(ctx context.Context, db store.Store, cfg *configs.Config) (store.Tables, error) {
	t := tablesOf(cfg)
	if err := store.Apply(ctx, db, t.Database, monitor.TableDefs(t)); err != nil {
		return t, fmt.Errorf("mlwatch tables in %s: %w", t.Database, err)
	}
	return t, nil
}
