package alerts

import (
	"fmt"
	"time"

	"github.com/mlwatch/mlwatch/configs"
	"github.com/mlwatch/mlwatch/detectors"
)

// Destination is one receiver an alert reaches, with the grouping and
// repeat settings of the route that chose it.
type Destination struct {
	Receiver       string
	GroupBy        []string
	RepeatInterval time.Duration
	// Route says which route chose it: a config path such as
	// "route.routes[0]", or "owner" for the class-owner default.
	Route string
}

// Router decides the receivers of a label set. It walks the route tree as
// Alertmanager does (first matching child wins unless it sets continue);
// the class-owner default (the model's owners.product or owners.infra
// receiver) is an implicit last child of the root, so an alert no route
// claims goes to the team that owns its failure class, and a route with
// continue adds a receiver on top of the owner's.
type Router struct {
	root     *routeNode
	owners   map[string]configs.Owners
	fallback string
}

type routeNode struct {
	path     string
	receiver string
	matchers []configs.Matcher
	cont     bool
	groupBy  []string
	repeat   time.Duration
	children []*routeNode
}

// NewRouter builds the router of a loaded config.
func NewRouter(cfg *configs.Config) *Router {
	r := &Router{owners: map[string]configs.Owners{}, fallback: cfg.Route.Receiver}
	for _, m := range cfg.Models {
		r.owners[m.Name] = m.Owners
	}
	groupBy := cfg.Global.GroupBy
	if len(cfg.Route.GroupBy) > 0 {
		groupBy = cfg.Route.GroupBy
	}
	repeat := cfg.Global.RepeatInterval.D()
	if cfg.Route.RepeatInterval > 0 {
		repeat = cfg.Route.RepeatInterval.D()
	}
	r.root = &routeNode{path: "route", groupBy: groupBy, repeat: repeat}
	for i := range cfg.Route.Routes {
		r.root.children = append(r.root.children, buildRoute(fmt.Sprintf("route.routes[%d]", i), &cfg.Route.Routes[i], r.root))
	}
	return r
}

func buildRoute(path string, c *configs.Route, parent *routeNode) *routeNode {
	n := &routeNode{path: path, receiver: c.Receiver, matchers: c.Parsed, cont: c.Continue, groupBy: parent.groupBy, repeat: parent.repeat}
	if len(c.Matchers) > 0 && len(c.Parsed) == 0 {
		// Matchers not parsed (a config not from Load): parse them here.
		for _, s := range c.Matchers {
			if m, err := configs.ParseMatcher(s); err == nil {
				n.matchers = append(n.matchers, m)
			}
		}
	}
	if n.receiver == "" {
		n.receiver = parent.receiver
	}
	if len(c.GroupBy) > 0 {
		n.groupBy = c.GroupBy
	}
	if c.RepeatInterval > 0 {
		n.repeat = c.RepeatInterval.D()
	}
	for i := range c.Routes {
		n.children = append(n.children, buildRoute(fmt.Sprintf("%s.routes[%d]", path, i), &c.Routes[i], n))
	}
	return n
}

// Route returns the destinations of a label set, without duplicates, in
// the order the tree found them. A route without a receiver (and no
// ancestor's) means the owner's receiver.
func (r *Router) Route(labels map[string]string) []Destination {
	var out []Destination
	matched := false
	for _, c := range r.root.children {
		ds := c.match(labels)
		if ds == nil {
			continue
		}
		out = append(out, ds...)
		if !c.cont {
			matched = true
			break
		}
	}
	if !matched {
		out = append(out, Destination{GroupBy: r.root.groupBy, RepeatInterval: r.root.repeat, Route: "owner"})
	}
	seen := map[string]bool{}
	res := out[:0]
	for _, d := range out {
		if d.Receiver == "" {
			d.Receiver = r.ownerReceiver(labels)
		}
		if d.Receiver == "" || seen[d.Receiver] {
			continue
		}
		seen[d.Receiver] = true
		res = append(res, d)
	}
	return res
}

// match is Alertmanager's Route.Match: nil when the node does not match;
// its matching descendants, or the node itself when none does.
func (n *routeNode) match(labels map[string]string) []Destination {
	if !configs.MatchAll(n.matchers, labels) {
		return nil
	}
	var out []Destination
	for _, c := range n.children {
		ds := c.match(labels)
		if ds == nil {
			continue
		}
		out = append(out, ds...)
		if !c.cont {
			break
		}
	}
	if len(out) == 0 {
		out = append(out, Destination{Receiver: n.receiver, GroupBy: n.groupBy, RepeatInterval: n.repeat, Route: n.path})
	}
	return out
}

// ownerReceiver is the model's receiver for the owner of the alert's class
// (the owner label, else the class's), else the root route's receiver.
func (r *Router) ownerReceiver(labels map[string]string) string {
	owner := labels["owner"]
	if owner == "" {
		owner = string(detectors.Classes[detectors.Class(labels["class"])].Owner)
	}
	o := r.owners[labels["model"]]
	switch owner {
	case string(detectors.OwnerProduct):
		if o.Product != "" {
			return o.Product
		}
	case string(detectors.OwnerInfra):
		if o.Infra != "" {
			return o.Infra
		}
	}
	return r.fallback
}
