package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxSize bounds a config file; a larger file is refused before parsing.
const MaxSize = 4 << 20

// Problem is one thing wrong with a config, with where it is.
type Problem struct {
	File string
	Line int
	Path string // YAML path, e.g. detectors[2].schedule
	Msg  string
}

func (p Problem) String() string {
	msg := p.Msg
	if p.Path != "" {
		msg = p.Path + ": " + msg
	}
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, msg)
	}
	return fmt.Sprintf("%s: %s", p.File, msg)
}

// Problems is every problem found in one config; it is the error Load returns.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Env looks up an environment variable; os.LookupEnv in production, a map in tests.
type Env func(string) (string, bool)

// Load reads, decodes and validates a config file, resolving secrets and
// connection overrides from env (os.LookupEnv when nil).
func Load(path string, env Env) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: err.Error()}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, Problems{{File: path, Msg: err.Error()}}
	}
	if len(data) > MaxSize {
		return nil, Problems{{File: path, Msg: fmt.Sprintf("config is larger than %d MiB; refusing to parse it", MaxSize>>20)}}
	}
	return Parse(path, data, env)
}

var lineRe = regexp.MustCompile(`^line (\d+): (.*)$`)
var unknownFieldRe = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

// Parse decodes and validates config text; name is used in messages.
func Parse(name string, data []byte, env Env) (*Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{yamlProblem(name, err)}
	}
	lines := map[string]int{}
	if len(root.Content) > 0 {
		indexLines(root.Content[0], "", lines)
	}
	cfg := &Config{Path: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var probs Problems
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, Problems{yamlProblem(name, err)}
		}
		for _, e := range te.Errors {
			p := Problem{File: name, Msg: e}
			if m := lineRe.FindStringSubmatch(e); m != nil {
				p.Line, _ = strconv.Atoi(m[1])
				p.Msg = m[2]
			}
			p.Path = pathAtLine(lines, p.Line, "")
			if m := unknownFieldRe.FindStringSubmatch(p.Msg); m != nil {
				p.Msg = fmt.Sprintf("unknown key %q", m[1])
				p.Path = pathAtLine(lines, p.Line, m[1])
			}
			probs = append(probs, p)
		}
	}
	cfg.Path = name
	v := &validator{file: name, lines: lines, env: env}
	v.config(cfg)
	probs = append(probs, v.problems...)
	if len(probs) > 0 {
		sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
		return nil, probs
	}
	return cfg, nil
}

func yamlProblem(name string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := Problem{File: name, Msg: msg}
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Msg = m[2]
	}
	if p.Line == 0 {
		p.Line = 1
	}
	return p
}

// indexLines records the line of every mapping key and sequence item by its
// path, so validation problems can name their line.
func indexLines(n *yaml.Node, path string, lines map[string]int) {
	if _, ok := lines[path]; !ok {
		lines[path] = n.Line
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[p] = k.Line
			indexLines(val, p, lines)
			lines[p] = k.Line
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			indexLines(c, fmt.Sprintf("%s[%d]", path, i), lines)
		}
	}
	// An alias is not followed: what it points to is indexed where the
	// anchor is, and a problem under the alias reports the alias's line.
	// Following it expands nested aliases exponentially (a few hundred
	// bytes of YAML took minutes and gigabytes).
}

// lineOf finds the line of a path, or of its nearest ancestor present in
// the file (for a missing key, the mapping that lacks it).
func lineOf(lines map[string]int, path string) int {
	for p := path; ; {
		if l, ok := lines[p]; ok && l > 0 {
			return l
		}
		cut := strings.LastIndexAny(p, ".[")
		if cut < 0 {
			if l, ok := lines[""]; ok {
				return l
			}
			return 1
		}
		p = p[:cut]
	}
}

// pathAtLine returns the deepest path whose key is on the given line; with
// key set, the deepest one that ends in that key (an unknown key in a flow
// mapping shares its line with its siblings).
func pathAtLine(lines map[string]int, line int, key string) string {
	best := ""
	for p, l := range lines {
		if l != line || len(p) <= len(best) {
			continue
		}
		if key != "" && p != key && !strings.HasSuffix(p, "."+key) {
			continue
		}
		best = p
	}
	if best == "" && key != "" {
		return pathAtLine(lines, line, "")
	}
	return best
}
