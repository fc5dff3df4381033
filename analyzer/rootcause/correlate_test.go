package rootcause

import (
	"reflect"
	"testing"
	"time"
)

func TestCorrelate(t *testing.T) {
	split := Topology{Calls: map[string][]string{"shop": {"cart"}, "mail": {"smtp"}}}
	shared := Topology{Calls: map[string][]string{"shop": {"db"}, "report": {"db"}}}
	tests := []struct {
		name  string
		anoms []Anomaly
		topo  Topology
		want  [][]string // services per group, in onset order
	}{
		{name: "empty"},
		{
			name: "two bursts an hour apart",
			anoms: []Anomaly{
				anomaly("b", "errors", "", "", "", time.Hour+10*time.Second, 0.5),
				anomaly("a", "latency", "", "", "", 0, 0.5),
				anomaly("b", "latency", "", "", "", 30*time.Second, 0.5),
				anomaly("a", "errors", "", "", "", time.Hour, 0.5),
			},
			want: [][]string{{"a", "b"}, {"a", "b"}},
		},
		{
			name: "unrelated services at the same time, with topology",
			anoms: []Anomaly{
				anomaly("shop", "errors", "", "n1", "", 0, 0.5),
				anomaly("mail", "errors", "", "n2", "", 10*time.Second, 0.5),
				anomaly("cart", "latency", "", "n3", "", 20*time.Second, 0.5),
			},
			topo: split,
			want: [][]string{{"shop", "cart"}, {"mail"}},
		},
		{
			name: "same services without topology: time alone links them",
			anoms: []Anomaly{
				anomaly("shop", "errors", "", "n1", "", 0, 0.5),
				anomaly("mail", "errors", "", "n2", "", 10*time.Second, 0.5),
				anomaly("cart", "latency", "", "n3", "", 20*time.Second, 0.5),
			},
			want: [][]string{{"shop", "mail", "cart"}},
		},
		{
			name: "unrelated by calls but on one node",
			anoms: []Anomaly{
				anomaly("shop", "errors", "", "n1", "", 0, 0.5),
				anomaly("mail", "errors", "", "n1", "", 10*time.Second, 0.5),
			},
			topo: split,
			want: [][]string{{"shop", "mail"}},
		},
		{
			name: "callers of a common callee",
			anoms: []Anomaly{
				anomaly("shop", "errors", "", "", "", 0, 0.5),
				anomaly("report", "errors", "", "", "", time.Minute, 0.5),
			},
			topo: shared,
			want: [][]string{{"shop", "report"}},
		},
		{
			// b starts 9 min after a, but a was still anomalous 3 min
			// before that: within the window of a's end.
			name: "long anomaly bridges the window",
			anoms: []Anomaly{
				{Series: Series{Service: "a"}, Onset: t0, Last: t0.Add(6 * time.Minute)},
				{Series: Series{Service: "b"}, Onset: t0.Add(9 * time.Minute), Last: t0.Add(10 * time.Minute)},
				{Series: Series{Service: "c"}, Onset: t0.Add(20 * time.Minute)},
			},
			want: [][]string{{"a", "b"}, {"c"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			groups := Correlate(tc.anoms, tc.topo, Config{})
			var got [][]string
			for _, g := range groups {
				var names []string
				for _, a := range g.Anomalies {
					names = append(names, a.Series.Service)
				}
				got = append(got, names)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("groups = %v, want %v", got, tc.want)
			}
			checkGroups(t, tc.anoms, groups)
		})
	}
}

// checkGroups asserts every anomaly lands in exactly one group and the
// groups' bounds and order are consistent.
func checkGroups(t testing.TB, anoms []Anomaly, groups []Group) {
	t.Helper()
	n := 0
	for i, g := range groups {
		if len(g.Anomalies) == 0 {
			t.Fatalf("group %d is empty", i)
		}
		n += len(g.Anomalies)
		if i > 0 && g.Start.Before(groups[i-1].Start) {
			t.Fatalf("group %d starts before group %d", i, i-1)
		}
		for j, a := range g.Anomalies {
			if a.Onset.Before(g.Start) || g.End.Before(a.Onset) {
				t.Fatalf("group %d anomaly %d onset %v outside [%v, %v]", i, j, a.Onset, g.Start, g.End)
			}
			if j > 0 && a.Onset.Before(g.Anomalies[j-1].Onset) {
				t.Fatalf("group %d anomalies not sorted by onset", i)
			}
		}
	}
	if n != len(anoms) {
		t.Fatalf("groups hold %d anomalies, input has %d", n, len(anoms))
	}
}

func TestTopologyFromTraffic(t *testing.T) {
	got := TopologyFromTraffic([]Edge{
		{From: "gateway", To: "shop", Requests: 600},
		{From: "gateway", To: "shop", Requests: 400},
		{From: "gateway", To: "admin", Requests: 3},
		{From: "shop", To: "db", Requests: 50},
		{From: "shop", To: "cache", Requests: 80},
		{From: "shop", To: "shop", Requests: 999},
		{From: "", To: "db", Requests: 999},
	}, 10)
	want := Topology{
		Calls:   map[string][]string{"gateway": {"shop"}, "shop": {"cache", "db"}},
		Weights: map[string]map[string]float64{"gateway": {"shop": 1000}, "shop": {"db": 50, "cache": 80}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TopologyFromTraffic = %+v, want %+v", got, want)
	}
}

func TestTrafficWeightsSplitBlame(t *testing.T) {
	// shop calls db and cache, both anomalous before it; 90% of its
	// traffic goes to db, so db collects more of shop's blame.
	topo := TopologyFromTraffic([]Edge{{From: "shop", To: "db", Requests: 900}, {From: "shop", To: "cache", Requests: 100}}, 0)
	hints := Rank(group(
		anomaly("cache", "latency", "", "", "", 0, 0.5),
		anomaly("db", "latency", "", "", "", 0, 0.5),
		anomaly("shop", "errors", "", "", "", 20*time.Second, 0.5),
	), topo, Config{})
	if hints[0].Name != "db" || hints[1].Name != "cache" {
		t.Fatalf("want db then cache:\n%s", Format(hints, 0))
	}
}

func TestSeriesFromLabels(t *testing.T) {
	got := SeriesFromLabels(map[string]string{"__name__": "http_errors", "service": "shop", "instance": "shop-1", "node": "n1", "datacenter": "dc1", "tenant": "t"})
	want := Series{Metric: "http_errors", Service: "shop", Instance: "shop-1", Node: "n1", Datacenter: "dc1"}
	if got != want {
		t.Errorf("SeriesFromLabels = %+v, want %+v", got, want)
	}
}
