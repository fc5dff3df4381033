package grafana

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"opspilot/tsdb"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// board is the part of a dashboard's JSON the tests read, as Grafana
// reads it.
type board struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr       string `json:"expr"`
		RefID      string `json:"refId"`
		Datasource struct {
			UID  string `json:"uid"`
			Type string `json:"type"`
		} `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type variable struct {
	Name       string `json:"name"`
	Query      string `json:"query"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Current struct {
		Value string `json:"value"`
	} `json:"current"`
}

// boards are the generated dashboards as JSON, by file name.
func boards(t *testing.T) map[string][]byte {
	t.Helper()
	bs, err := Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, b := range bs {
		j, err := MarshalDashboard(b.Dashboard)
		if err != nil {
			t.Fatal(err)
		}
		out[b.File] = j
	}
	return out
}

func decode(t *testing.T, name string, j []byte) board {
	t.Helper()
	var b board
	if err := json.Unmarshal(j, &b); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

func (b board) allPanels() []panel {
	var out []panel
	for _, p := range b.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

var labelValues = regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// resolve gives every template variable a value the way Grafana does: it
// runs the variable's label_values query (with the variables before it
// filled in) and takes the dashboard's current value, or else the first.
func resolve(t *testing.T, c *tsdb.Client, b board, start, end time.Time) map[string]string {
	t.Helper()
	vals := map[string]string{}
	for _, v := range b.Templating.List {
		m := labelValues.FindStringSubmatch(v.Query)
		if m == nil {
			t.Fatalf("%s: variable %s: query %q is not label_values(SELECTOR, LABEL)", b.UID, v.Name, v.Query)
		}
		if v.Datasource.UID != DatasourceUID {
			t.Errorf("%s: variable %s reads datasource %q, want %q", b.UID, v.Name, v.Datasource.UID, DatasourceUID)
		}
		sel := expand(m[1], vals, 0)
		got, err := c.LabelValues(context.Background(), m[2], []string{sel}, start, end)
		if err != nil {
			t.Fatalf("%s: variable %s: label values of %s in %s: %v", b.UID, v.Name, m[2], sel, err)
		}
		if len(got) == 0 {
			t.Fatalf("%s: variable %s: no values of %s in %s", b.UID, v.Name, m[2], sel)
		}
		sort.Strings(got)
		vals[v.Name] = got[0]
		if v.Current.Value != "" {
			if !slices.Contains(got, v.Current.Value) {
				t.Fatalf("%s: variable %s: its default %q is not among the values %v", b.UID, v.Name, v.Current.Value, got)
			}
			vals[v.Name] = v.Current.Value
		}
	}
	return vals
}

// expand fills in template variables and Grafana's interval macros as
// Grafana does before sending a query: $__interval is the range over about
// 1,000 points, $__rate_interval at least four of the datasource's 10 s
// scrape interval.
func expand(expr string, vals map[string]string, interval time.Duration) string {
	rate := max(interval+10*time.Second, 40*time.Second)
	pairs := []string{
		"$__rate_interval", model.Duration(rate).String(),
		"$__interval", model.Duration(interval).String(),
	}
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	// Longer names first, so $node is not read as $no + de.
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for _, n := range names {
		pairs = append(pairs, "${"+n+"}", vals[n], "$"+n, vals[n])
	}
	return strings.NewReplacer(pairs...).Replace(expr)
}

// Every panel of every dashboard, its variables set to values the history
// has, returns data over the whole history and over the last 6 hours (the
// dashboards' default range): a metric or label that the system does not
// write, or a query that does not parse, fails here.
func TestEveryPanelQueryReturnsData(t *testing.T) {
	c := backfilled(t)
	end := history.End
	for name, j := range boards(t) {
		b := decode(t, name, j)
		t.Run(b.UID, func(t *testing.T) {
			for _, rng := range []time.Duration{historyDays * 24 * time.Hour, 6 * time.Hour} {
				start := end.Add(-rng)
				vals := resolve(t, c, b, start, end)
				interval := (rng / 1000).Round(time.Second)
				for _, p := range b.allPanels() {
					if p.Type == "row" {
						continue
					}
					if len(p.Targets) == 0 {
						t.Errorf("panel %q has no query", p.Title)
					}
					for _, tg := range p.Targets {
						if tg.Datasource.UID != DatasourceUID || tg.Datasource.Type != "prometheus" {
							t.Errorf("panel %q %s reads datasource %s/%s, want prometheus/%s", p.Title, tg.RefID, tg.Datasource.Type, tg.Datasource.UID, DatasourceUID)
						}
						q := expand(tg.Expr, vals, interval)
						res, err := c.QueryRange(context.Background(), q, tsdb.Range{Start: start, End: end, Step: interval})
						if err != nil {
							t.Errorf("panel %q %s over %s: %s: %v", p.Title, tg.RefID, rng, q, err)
							continue
						}
						if n := points(res.Value); n == 0 {
							t.Errorf("panel %q %s over the last %s returned no data: %s", p.Title, tg.RefID, rng, q)
						}
					}
				}
			}
		})
	}
}

func points(v model.Value) int {
	m, ok := v.(model.Matrix)
	if !ok {
		return 0
	}
	n := 0
	for _, s := range m {
		for _, p := range s.Values {
			if !math.IsNaN(float64(p.Value)) {
				n++
			}
		}
	}
	return n
}

// The service dashboard shows the analyzer's band around the actual KPI:
// the band is there and, outside incidents, holds the actual value most
// of the time.
func TestServiceAnomalyBand(t *testing.T) {
	c := backfilled(t)
	end := history.End
	start := end.Add(-6 * time.Hour)
	r := tsdb.Range{Start: start, End: end, Step: time.Minute}
	q := func(expr string) model.Matrix {
		res, err := c.QueryRange(context.Background(), expr, r)
		if err != nil {
			t.Fatal(err)
		}
		return res.Value.(model.Matrix)
	}
	actual := q(`sum by (service) (rate(opspilot_gateway_requests_total{service="billing"}[2m]))`)
	lower := q(`anomaly_lower{for="service_requests",service="billing"}`)
	upper := q(`anomaly_upper{for="service_requests",service="billing"}`)
	if len(actual) != 1 || len(lower) != 1 || len(upper) != 1 {
		t.Fatalf("series: actual %d, lower %d, upper %d; want one each", len(actual), len(lower), len(upper))
	}
	in, total := 0, 0
	for i, p := range actual[0].Values {
		if i >= len(lower[0].Values) || i >= len(upper[0].Values) {
			break
		}
		total++
		if lo, hi := lower[0].Values[i].Value, upper[0].Values[i].Value; p.Value >= lo && p.Value <= hi {
			in++
		}
	}
	if total == 0 || float64(in)/float64(total) < 0.8 {
		t.Errorf("actual requests inside the band at %d of %d points; want most", in, total)
	}
}

// Golden files: the generated JSON is stable; a change to a dashboard shows
// as a diff of testdata/dashboards (rewrite with go test -run Golden -update).
func TestDashboardsGolden(t *testing.T) {
	for name, j := range boards(t) {
		golden(t, filepath.Join("testdata", "dashboards", name), j)
	}
	again := boards(t)
	for name, j := range boards(t) {
		if string(j) != string(again[name]) {
			t.Errorf("%s: two generations differ", name)
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (create it with go test ./grafana -run Golden -update)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from the generated output; if the change is intended, rerun with -update.\n%s", path, firstDiff(string(want), string(got)))
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  golden:    %s\n  generated: %s", i+1, x, y)
		}
	}
	return ""
}

// Dashboards have unique stable uids and panel ids, and every panel reads
// the provisioned datasource.
func TestDashboardStructure(t *testing.T) {
	uids := map[string]string{}
	for name, j := range boards(t) {
		b := decode(t, name, j)
		if prev, dup := uids[b.UID]; dup || !strings.HasPrefix(b.UID, "opspilot-") {
			t.Errorf("%s: uid %q (also %s)", name, b.UID, prev)
		}
		uids[b.UID] = name
		ids := map[int]bool{}
		for _, p := range b.allPanels() {
			if p.ID == 0 || ids[p.ID] {
				t.Errorf("%s: panel %q has id %d: missing or repeated", name, p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && p.Datasource.UID != DatasourceUID {
				t.Errorf("%s: panel %q reads datasource %q", name, p.Title, p.Datasource.UID)
			}
		}
	}
	if len(uids) != 6 {
		t.Errorf("%d dashboards, want 6: cluster, host, service, autoscaler, alerts, self", len(uids))
	}
}

// The alert rules link to dashboards (/d/UID?var-NAME=VALUE); each link
// must name a generated dashboard and one of its variables.
func TestAlertRuleDashboardLinks(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join("..", "examples", "alerting", "billing.rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	links := regexp.MustCompile(`/d/([a-z0-9-]+)\?var-([a-z_]+)=`).FindAllStringSubmatch(string(rules), -1)
	if len(links) == 0 {
		t.Fatal("no dashboard link in examples/alerting/billing.rules.yaml")
	}
	byUID := map[string]board{}
	for name, j := range boards(t) {
		b := decode(t, name, j)
		byUID[b.UID] = b
	}
	for _, l := range links {
		b, ok := byUID[l[1]]
		if !ok {
			t.Errorf("the rules link to dashboard %s, which is not generated", l[1])
			continue
		}
		if !slices.ContainsFunc(b.Templating.List, func(v variable) bool { return v.Name == l[2] }) {
			t.Errorf("the rules link to %s with variable %s, which it lacks", l[1], l[2])
		}
	}
}
