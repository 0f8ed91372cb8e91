package alerts

import (
	"reflect"
	"testing"

	"github.com/mlwatch/mlwatch/detectors"
)

func receivers(ds []Destination) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.Receiver)
	}
	return out
}

func TestRouteByClassOwner(t *testing.T) {
	cfg := loadConfig(t, baseYAML, nil)
	r := NewRouter(cfg)
	want := map[detectors.Class]string{
		detectors.ClassFeaturePipeline:   "fraud-infra",
		detectors.ClassPipelineOutage:    "fraud-infra",
		detectors.ClassMonitoringFailure: "fraud-infra",
		detectors.ClassModelBehavior:     "fraud-product",
		detectors.ClassPopulationShift:   "fraud-product",
		detectors.ClassModelDivergence:   "fraud-product",
		detectors.ClassModelStaleness:    "fraud-product",
	}
	if len(want) != len(detectors.Classes) {
		t.Fatalf("table covers %d classes, detectors.Classes has %d", len(want), len(detectors.Classes))
	}
	for class, recv := range want {
		t.Run(string(class), func(t *testing.T) {
			labels := CompleteLabels(map[string]string{"class": string(class), "model": "fraud"})
			ds := r.Route(labels)
			if got := receivers(ds); !reflect.DeepEqual(got, []string{recv}) {
				t.Fatalf("class %s: receivers %v, want [%s]", class, got, recv)
			}
			if ds[0].Route != "owner" || !reflect.DeepEqual(ds[0].GroupBy, []string{"model", "class"}) {
				t.Errorf("destination %+v: want the owner default with group_by [model class]", ds[0])
			}
		})
	}
	t.Run("other model's owner", func(t *testing.T) {
		got := receivers(r.Route(CompleteLabels(map[string]string{"class": "model_behavior", "model": "churn"})))
		if !reflect.DeepEqual(got, []string{"churn-product"}) {
			t.Fatalf("got %v", got)
		}
	})
}

const routesYAML = `
global: {repeat_interval: 4h}
models:
  - name: fraud
    table: predictions
    owners: {product: fraud-product, infra: fraud-infra}
  - name: orphan
    table: predictions
detectors: []
receivers:
  - name: fraud-product
    webhook: {url: "http://127.0.0.1:1/product"}
  - name: fraud-infra
    webhook: {url: "http://127.0.0.1:1/infra"}
  - name: pager
    alertmanager: {url: "http://127.0.0.1:1"}
  - name: audit
    webhook: {url: "http://127.0.0.1:1/audit"}
  - name: fr-team
    webhook: {url: "http://127.0.0.1:1/fr"}
  - name: catch-all
    webhook: {url: "http://127.0.0.1:1/all"}
route:
  receiver: catch-all
  routes:
    - matchers: ['severity="page"']
      receiver: pager
      continue: true
      repeat_interval: 1h
    - matchers: ['detector=~"audit-.*"']
      receiver: audit
    - matchers: ['owner=product']
      group_by: [model, class, country]
      routes:
        - matchers: ['country=~"FR|BE"']
          receiver: fr-team
`

func TestRouteTree(t *testing.T) {
	cfg := loadConfig(t, routesYAML, nil)
	r := NewRouter(cfg)
	cases := []struct {
		name   string
		labels map[string]string
		want   []string
		routes []string
	}{
		{"page continues to owner", map[string]string{"class": "feature_pipeline", "model": "fraud"},
			[]string{"pager", "fraud-infra"}, []string{"route.routes[0]", "owner"}},
		{"ticket goes to owner only", map[string]string{"class": "monitoring_failure", "model": "fraud"},
			[]string{"fraud-infra"}, []string{"owner"}},
		{"first match without continue wins", map[string]string{"class": "model_staleness", "model": "fraud", "detector": "audit-staleness"},
			[]string{"audit"}, []string{"route.routes[1]"}},
		{"page plus first match stops", map[string]string{"class": "model_behavior", "model": "fraud", "detector": "audit-x"},
			[]string{"pager", "audit"}, []string{"route.routes[0]", "route.routes[1]"}},
		{"nested child matches", map[string]string{"class": "population_shift", "model": "fraud", "country": "FR"},
			[]string{"fr-team"}, []string{"route.routes[2].routes[0]"}},
		{"parent without receiver means owner", map[string]string{"class": "population_shift", "model": "fraud", "country": "DE"},
			[]string{"fraud-product"}, []string{"route.routes[2]"}},
		{"severity override to page", map[string]string{"class": "population_shift", "severity": "page", "model": "fraud", "country": "BE"},
			[]string{"pager", "fr-team"}, []string{"route.routes[0]", "route.routes[2].routes[0]"}},
		{"model without owners falls back to root receiver", map[string]string{"class": "model_divergence", "model": "orphan"},
			[]string{"catch-all"}, []string{"route.routes[2]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds := r.Route(CompleteLabels(c.labels))
			if got := receivers(ds); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("receivers %v, want %v", got, c.want)
			}
			var routes []string
			for _, d := range ds {
				routes = append(routes, d.Route)
			}
			if !reflect.DeepEqual(routes, c.routes) {
				t.Fatalf("routes %v, want %v", routes, c.routes)
			}
		})
	}
	t.Run("inherited settings", func(t *testing.T) {
		ds := r.Route(CompleteLabels(map[string]string{"class": "model_behavior", "model": "fraud", "country": "FR"}))
		if len(ds) != 2 || ds[0].RepeatInterval.Hours() != 1 || ds[1].RepeatInterval.Hours() != 4 {
			t.Fatalf("repeat intervals: %+v", ds)
		}
		if !reflect.DeepEqual(ds[1].GroupBy, []string{"model", "class", "country"}) {
			t.Fatalf("group_by not inherited by the child: %+v", ds[1])
		}
	})
}
