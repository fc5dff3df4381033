package grafana

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metricsql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// dashboardMetricNames are the metric names the dashboards' queries read.
func dashboardMetricNames(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name, j := range boards(t) {
		b := decode(t, name, j)
		vals := map[string]string{}
		for _, v := range b.Templating.List {
			vals[v.Name] = "x"
		}
		for _, p := range b.allPanels() {
			for _, tg := range p.Targets {
				q := expand(tg.Expr, vals, 60e9)
				e, err := metricsql.Parse(q)
				if err != nil {
					t.Fatalf("%s: panel %q: %s: %v", b.UID, p.Title, q, err)
				}
				metricsql.VisitAll(e, func(e metricsql.Expr) {
					me, ok := e.(*metricsql.MetricExpr)
					if !ok {
						return
					}
					for _, group := range me.LabelFilterss {
						for _, f := range group {
							if f.Label == "__name__" && !f.IsRegexp && !f.IsNegative {
								out[f.Value] = append(out[f.Value], b.UID+": "+p.Title)
							}
						}
					}
				})
			}
		}
	}
	return out
}

// The backfill writes whatever the dashboards read, so the query test
// alone cannot catch a made-up name. Here every metric a dashboard reads
// must be one opspilot's own code writes (a quoted name in a non-test Go
// file outside grafana/, or a histogram's _bucket of one), or one of the
// Go and process collectors its self-monitoring registers.
func TestDashboardMetricsAreWrittenBySystem(t *testing.T) {
	var src strings.Builder
	root := ".."
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "grafana", "testdata", ".git", "bench", "test":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") || strings.HasSuffix(path, ".yaml") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			src.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	code := src.String()
	mi, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Skipf("no /proc/meminfo (%v): the host collector's memory metric names cannot be checked here", err)
	}
	meminfo := "\n" + string(mi)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	runtime := map[string]bool{
		"up":     true, // the self-monitoring shipper's, as Prometheus records for a target
		"ALERTS": true, // Prometheus' rule manager, which alerting runs, writes it (prometheus/rules)
	}
	for _, mf := range mfs {
		runtime[mf.GetName()] = true
	}
	names := dashboardMetricNames(t)
	if len(names) < 30 {
		t.Fatalf("found only %d metric names in the dashboards: %v", len(names), names)
	}
	var missing []string
	for name, where := range names {
		base := strings.TrimSuffix(name, "_bucket")
		if runtime[name] || strings.Contains(code, `"`+name+`"`) || strings.Contains(code, `"`+base+`"`) {
			continue
		}
		// The host collector names memory metrics after /proc/meminfo's
		// keys: node_memory_<Key>_bytes.
		if key, ok := strings.CutPrefix(strings.TrimSuffix(name, "_bytes"), "node_memory_"); ok && strings.Contains(code, `"node_memory_"`) && strings.Contains(meminfo, "\n"+key+":") {
			continue
		}
		missing = append(missing, name+" (read by "+strings.Join(where, ", ")+")")
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("no opspilot code writes %s", m)
	}
}
