package rootcause

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// anomaly builds an anomaly that starts at t0+onset and lasts two minutes.
func anomaly(service, metric, instance, node, dc string, onset time.Duration, peak float64) Anomaly {
	return Anomaly{
		Series: Series{Metric: metric, Service: service, Instance: instance, Node: node, Datacenter: dc},
		Onset:  t0.Add(onset),
		Peak:   peak,
		Last:   t0.Add(onset + 2*time.Minute),
	}
}

func group(anoms ...Anomaly) Group { return Group{Anomalies: anoms} }

// inventory places every service's instances "<svc>-<node>" on the nodes.
func inventory(services []string, nodes map[string]string) []Instance {
	var out []Instance
	for _, s := range services {
		for _, n := range slices.Sorted(mapsKeys(nodes)) {
			out = append(out, Instance{Service: s, Instance: s + "-" + n, Node: n, Datacenter: nodes[n]})
		}
	}
	return out
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

var chain = Topology{Calls: map[string][]string{"billing": {"payments"}, "payments": {"db"}}}

// chainAnomalies: db's latency starts first (12:00:03), payments' errors
// 40 s later, billing's 40 s after that; the symptoms peak higher.
func chainAnomalies() []Anomaly {
	return []Anomaly{
		anomaly("billing", "errors", "billing-1", "n1", "dc1", 83*time.Second, 0.9),
		anomaly("payments", "errors", "payments-1", "n2", "dc1", 43*time.Second, 0.9),
		anomaly("db", "latency", "db-1", "n3", "dc1", 3*time.Second, 0.6),
	}
}

type wantHint struct {
	kind, name string
	score      float64 // checked to ±1e-4 when non-zero
}

func TestRank(t *testing.T) {
	nodeInventory := inventory([]string{"auth", "cart", "search"}, map[string]string{"n7": "dc1", "n8": "dc1", "n9": "dc1"})
	dcInventory := inventory([]string{"api", "cache", "worker"}, map[string]string{"n1": "dc1", "n2": "dc1", "n3": "dc2", "n4": "dc2"})

	tests := []struct {
		name     string
		group    Group
		topo     Topology
		want     []wantHint
		exact    bool                // no hints beyond want
		evidence map[string][]string // hint name → substrings its evidence must contain
	}{
		{
			// Hand-worked: onset terms exp(-Δ/60s) = 1, 0.5134, 0.2636;
			// peak terms 0.667, 1, 1; personalised PageRank (uniform
			// teleport, damping 0.85; billing → payments → db, db keeps
			// its mass) gives billing 0.15/3 = 0.05, payments 0.05 +
			// 0.85·0.05 = 0.0925, db 0.8575, so the dependency terms are
			// 0.0583, 0.1079, 1. Score = 0.5·dep + 0.35·onset + 0.15·peak.
			// Nodes hold one service each, and dc1's services form one
			// call chain: no host hints.
			name:  "chain, callee first",
			group: group(chainAnomalies()...),
			topo:  chain,
			want:  []wantHint{{KindService, "db", 0.95}, {KindService, "payments", 0.3836}, {KindService, "billing", 0.2714}},
			exact: true,
			evidence: map[string][]string{
				"db": {
					"first anomaly at 12:00:03 (db latency), 40 s before payments errors",
					"payments calls db; payments' errors began 40 s after db's latency",
				},
				"payments": {"calls db, whose latency began 40 s before its own: likely a symptom", "billing calls payments; billing's errors began 40 s after payments' errors"},
				"billing":  {"anomalous from 12:01:23 (billing errors), 1 min 20 s after the first anomaly (db latency)"},
			},
		},
		{
			// Without edges the terms are 0.7·onset + 0.3·peak:
			// db 0.7+0.2 = 0.9, payments 0.7·0.5134+0.3, billing
			// 0.7·0.2636+0.3. Without topology dc1 might group three
			// independent services, but neither its peers nor the
			// dependencies are known: G = 0.5·0.7 = 0.35, which takes
			// 0.6·0.35 off each service.
			name:  "chain without topology: onset order decides",
			group: group(chainAnomalies()...),
			want: []wantHint{{KindService, "db", 0.711}, {KindService, "payments", 0.5209}, {KindService, "billing", 0.3828},
				{KindDatacenter, "dc1", 0.35}},
		},
		{
			name: "callee anomalous after its caller does not explain it",
			group: group(
				anomaly("billing", "errors", "", "", "", 0, 0.5),
				anomaly("payments", "latency", "", "", "", 2*time.Minute, 0.9),
			),
			topo:     chain,
			want:     []wantHint{{KindService, "billing", 0}, {KindService, "payments", 0}},
			evidence: map[string][]string{"billing": {"its anomalous callees (payments) began later, so they do not explain it"}},
		},
		{
			// Node n7: cover 3/3, all anomalous instances on it, 3
			// independent services, other nodes in the inventory: G = 1,
			// score 1·(0.5+0.5·1). Services: (0.7·onset+0.3)·(1-0.6·1).
			// dc1: 1 of 3 nodes anomalous and no other datacenter known:
			// G = 1/3·0.5.
			name: "three services on one node",
			group: group(
				anomaly("cart", "latency", "cart-n7", "n7", "", 0, 0.5),
				anomaly("search", "errors", "search-n7", "n7", "", 10*time.Second, 0.5),
				anomaly("auth", "latency", "auth-n7", "n7", "", 20*time.Second, 0.5),
			),
			topo: Topology{Instances: nodeInventory, Calls: map[string][]string{"gateway": {"auth", "cart", "search"}}},
			want: []wantHint{{KindNode, "n7", 1}, {KindService, "cart", 0.4}, {KindService, "search", 0.357},
				{KindService, "auth", 0.3206}, {KindDatacenter, "dc1", 0.1667}},
			evidence: map[string][]string{"n7": {
				"3 of 3 anomalous services run on node n7 (auth, cart, search)",
				"none of them calls another, so dependencies do not explain them",
				"their 6 instances on other nodes are normal",
				"services on other nodes are normal",
			}},
		},
		{
			// dc1: both its nodes anomalous, 3 services, dc2 normal, but
			// no call graph to show the services are independent:
			// G = 0.7, score 0.7·(0.5+0.5·1). Services lose 0.6·0.7.
			// n2 holds 2 of 3 services: G = 2/3·0.5·0.7.
			name: "all nodes of a datacenter",
			group: group(
				anomaly("api", "latency", "api-n1", "", "", 0, 0.5),
				anomaly("worker", "errors", "worker-n2", "", "", 5*time.Second, 0.5),
				anomaly("cache", "latency", "cache-n2", "", "", 10*time.Second, 0.5),
			),
			topo: Topology{Instances: dcInventory},
			want: []wantHint{{KindDatacenter, "dc1", 0.7}, {KindService, "api", 0.58}},
			evidence: map[string][]string{"dc1": {
				"2 of 2 nodes in datacenter dc1 have anomalies (n1, n2)",
				"their 6 instances in other datacenters are normal",
			}},
		},
		{
			name:     "caller anomalous alone",
			group:    group(anomaly("billing", "errors", "billing-1", "n1", "dc1", 0, 0.2)),
			topo:     chain,
			want:     []wantHint{{KindService, "billing", 1}},
			exact:    true,
			evidence: map[string][]string{"billing": {"none of its callees (payments) is anomalous: the fault is likely in billing itself"}},
		},
		{
			name: "ties broken by name",
			group: group(
				anomaly("beta", "errors", "", "", "", 0, 0.5),
				anomaly("alpha", "errors", "", "", "", 0, 0.5),
			),
			want: []wantHint{{KindService, "alpha", 1}, {KindService, "beta", 1}},
		},
		{
			name: "node-level series",
			group: group(
				anomaly("", "cpu", "", "n4", "", 0, 0.8),
				anomaly("cart", "latency", "cart-1", "n4", "", 30*time.Second, 0.5),
			),
			want:     []wantHint{{KindNode, "n4", 0}},
			evidence: map[string][]string{"n4": {"the node's own cpu was anomalous from 12:00:00, peak score 0.80"}},
		},
		{name: "empty", group: Group{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hints := Rank(tc.group, tc.topo, Config{})
			if len(tc.want) == 0 && len(hints) != 0 {
				t.Fatalf("got %d hints, want none:\n%s", len(hints), Format(hints, 0))
			}
			if len(hints) < len(tc.want) {
				t.Fatalf("got %d hints, want at least %d:\n%s", len(hints), len(tc.want), Format(hints, 0))
			}
			if tc.exact && len(hints) != len(tc.want) {
				t.Fatalf("got %d hints, want %d:\n%s", len(hints), len(tc.want), Format(hints, 0))
			}
			for i, w := range tc.want {
				h := hints[i]
				if h.Kind != w.kind || h.Name != w.name || h.Rank != i+1 {
					t.Fatalf("hint %d = %s %s rank %d, want %s %s:\n%s", i+1, h.Kind, h.Name, h.Rank, w.kind, w.name, Format(hints, 0))
				}
				if w.score != 0 && math.Abs(h.Score-w.score) > 1e-4 {
					t.Errorf("%s %s score = %v, want %v", h.Kind, h.Name, h.Score, w.score)
				}
			}
			for name, subs := range tc.evidence {
				i := slices.IndexFunc(hints, func(h Hint) bool { return h.Name == name })
				if i < 0 {
					t.Fatalf("no hint for %s", name)
				}
				joined := strings.Join(hints[i].Evidence, "\n")
				for _, sub := range subs {
					if !strings.Contains(joined, sub) {
						t.Errorf("%s evidence lacks %q; got:\n%s", name, sub, joined)
					}
				}
			}
			checkHints(t, hints)
		})
	}
}

// checkHints asserts the invariants every Rank result keeps.
func checkHints(t testing.TB, hints []Hint) {
	t.Helper()
	for i, h := range hints {
		if !(h.Score >= 0 && h.Score <= 1) {
			t.Fatalf("hint %d score %v outside [0,1]", i, h.Score)
		}
		if h.Rank != i+1 {
			t.Fatalf("hint %d has rank %d", i, h.Rank)
		}
		if i > 0 && h.Score > hints[i-1].Score {
			t.Fatalf("hint %d score %v above previous %v", i, h.Score, hints[i-1].Score)
		}
		if h.Kind != KindService && h.Kind != KindNode && h.Kind != KindDatacenter {
			t.Fatalf("hint %d kind %q", i, h.Kind)
		}
	}
}

func TestRankIgnoresInputOrder(t *testing.T) {
	anoms := []Anomaly{
		anomaly("cart", "latency", "cart-n7", "n7", "", 0, 0.5),
		anomaly("search", "errors", "search-n7", "n7", "", 0, 0.5),
		anomaly("auth", "latency", "auth-n7", "n7", "", 0, 0.7),
		anomaly("db", "latency", "db-n1", "n1", "", 0, 0.5),
	}
	topo := Topology{Calls: map[string][]string{"cart": {"db"}, "auth": {"db"}}}
	want := Rank(group(anoms...), topo, Config{})
	for _, perm := range [][]int{{3, 2, 1, 0}, {1, 3, 0, 2}, {2, 0, 3, 1}} {
		var shuffled []Anomaly
		for _, i := range perm {
			shuffled = append(shuffled, anoms[i])
		}
		if got := Rank(group(shuffled...), topo, Config{}); !reflect.DeepEqual(got, want) {
			t.Errorf("order %v:\n%s\nwant\n%s", perm, Format(got, 0), Format(want, 0))
		}
	}
}

func TestHintJSON(t *testing.T) {
	b, err := json.Marshal(Hint{Kind: KindNode, Name: "n7", Score: 0.5, Rank: 1, Evidence: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"kind":"node","name":"n7","score":0.5,"rank":1,"evidence":["x"]}`; string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
}

func TestFormat(t *testing.T) {
	hints := []Hint{
		{Kind: KindService, Name: "db", Score: 0.95, Rank: 1, Evidence: []string{"first anomaly at 12:00:03 (db latency)", "peak score 0.60"}},
		{Kind: KindNode, Name: "n7", Score: 0.123, Rank: 2},
	}
	tests := []struct {
		n    int
		want string
	}{
		{0, "1. service db (score 0.95): first anomaly at 12:00:03 (db latency); peak score 0.60\n2. node n7 (score 0.12)"},
		{1, "1. service db (score 0.95): first anomaly at 12:00:03 (db latency); peak score 0.60"},
		{5, "1. service db (score 0.95): first anomaly at 12:00:03 (db latency); peak score 0.60\n2. node n7 (score 0.12)"},
	}
	for _, tc := range tests {
		if got := Format(hints, tc.n); got != tc.want {
			t.Errorf("Format(n=%d) =\n%s\nwant\n%s", tc.n, got, tc.want)
		}
	}
	if got := Format(nil, 3); got != "" {
		t.Errorf("Format(nil) = %q", got)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0 s", 40 * time.Second: "40 s", 80 * time.Second: "1 min 20 s", 2 * time.Minute: "2 min",
		time.Hour + 3*time.Minute: "1 h 3 min", 2 * time.Hour: "2 h", -5 * time.Second: "5 s",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"defaults", DefaultConfig(), true},
		{"negative window", Config{Window: -time.Second}, false},
		{"damping 1", Config{Damping: 1}, false},
		{"negative weight", Config{OnsetWeight: -1}, false},
		{"NaN weight", Config{PeakWeight: math.NaN()}, false},
		{"host discount 2", Config{HostDiscount: 2}, false},
	}
	for _, tc := range tests {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if got := (Config{Damping: 2, OnsetWeight: -1}).withDefaults(); got != DefaultConfig() {
		t.Errorf("withDefaults = %+v, want defaults", got)
	}
}
