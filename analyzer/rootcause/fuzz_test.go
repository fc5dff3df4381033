package rootcause

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// decodeIncident turns fuzz bytes into anomalies and a topology: every 6
// bytes are one anomaly (service, node, datacenter, onset, duration, peak)
// or, after a 0xff byte, one call edge.
func decodeIncident(data []byte) ([]Anomaly, Topology) {
	name := func(prefix string, b byte, n int) string {
		if int(b)%(n+1) == 0 {
			return ""
		}
		return fmt.Sprintf("%s%d", prefix, int(b)%(n+1))
	}
	var anoms []Anomaly
	topo := Topology{Calls: map[string][]string{}, Weights: map[string]map[string]float64{}}
	for len(data) >= 6 {
		b := data[:6]
		data = data[6:]
		if b[0] == 0xff {
			from, to := name("s", b[1], 8), name("s", b[2], 8)
			topo.Calls[from] = append(topo.Calls[from], to)
			if b[3]%2 == 0 {
				if topo.Weights[from] == nil {
					topo.Weights[from] = map[string]float64{}
				}
				topo.Weights[from][to] = float64(b[4]) - 10 // may be negative
			}
			if b[5]%3 == 0 {
				topo.Instances = append(topo.Instances, Instance{Service: from, Instance: name("i", b[5], 4), Node: name("n", b[4], 4), Datacenter: name("d", b[3], 2)})
			}
			continue
		}
		peak := float64(b[5]) / 200 // up to 1.27: out of range on purpose
		if b[5] == 0xfe {
			peak = math.NaN()
		}
		onset := t0.Add(time.Duration(b[3]) * 20 * time.Second)
		anoms = append(anoms, Anomaly{
			Series: Series{Service: name("s", b[0], 8), Node: name("n", b[1], 4), Datacenter: name("d", b[2], 2),
				Instance: name("i", b[4], 4), Metric: name("m", b[4]>>4, 3)},
			Onset: onset,
			Last:  onset.Add(time.Duration(int(b[4])-40) * 10 * time.Second), // may end before onset
			Peak:  peak,
		})
	}
	return anoms, topo
}

func FuzzCorrelateRank(f *testing.F) {
	f.Add([]byte{1, 1, 1, 0, 10, 100, 2, 2, 1, 3, 10, 200, 0xff, 1, 2, 0, 50, 3})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 254})
	f.Add([]byte{3, 1, 1, 0, 9, 100, 4, 1, 1, 1, 9, 100, 5, 1, 1, 2, 9, 100, 3, 2, 2, 0, 9, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		anoms, topo := decodeIncident(data)
		groups := Correlate(anoms, topo, Config{})
		checkGroups(t, anoms, groups)
		for _, g := range groups {
			hints := Rank(g, topo, Config{})
			if len(hints) == 0 {
				t.Fatalf("no hints for a group of %d anomalies", len(g.Anomalies))
			}
			checkHints(t, hints)
			_ = Format(hints, 3)
		}
	})
}

// benchIncidents: 1,000 anomalies over 200 services (3 instances each on
// 20 nodes in 2 datacenters), in 5 bursts 20 min apart; every service calls
// up to 3 services with higher numbers (a DAG).
func benchIncidents() ([]Anomaly, Topology) {
	rng := rand.New(rand.NewPCG(1, 2))
	const services, nodes = 200, 20
	topo := Topology{Calls: map[string][]string{}}
	for s := 0; s < services; s++ {
		name := fmt.Sprintf("svc%03d", s)
		for k := 0; k < 3 && s+1 < services; k++ {
			topo.Calls[name] = append(topo.Calls[name], fmt.Sprintf("svc%03d", s+1+rng.IntN(min(20, services-s-1))))
		}
		for i := 0; i < 3; i++ {
			n := rng.IntN(nodes)
			topo.Instances = append(topo.Instances, Instance{Service: name, Instance: fmt.Sprintf("%s-%d", name, i),
				Node: fmt.Sprintf("n%02d", n), Datacenter: fmt.Sprintf("dc%d", n%2)})
		}
	}
	anoms := make([]Anomaly, 1000)
	for i := range anoms {
		inst := topo.Instances[rng.IntN(len(topo.Instances))]
		burst := time.Duration(rng.IntN(5)) * 20 * time.Minute
		onset := t0.Add(burst + time.Duration(rng.IntN(300))*time.Second)
		anoms[i] = Anomaly{
			Series: Series{Metric: "latency", Service: inst.Service, Instance: inst.Instance},
			Onset:  onset, Last: onset.Add(time.Duration(rng.IntN(120)) * time.Second), Peak: rng.Float64(),
		}
	}
	return anoms, topo
}

func BenchmarkCorrelateRank(b *testing.B) {
	anoms, topo := benchIncidents()
	b.ReportAllocs()
	var groups int
	for b.Loop() {
		gs := Correlate(anoms, topo, Config{})
		groups = len(gs)
		for _, g := range gs {
			Rank(g, topo, Config{})
		}
	}
	b.ReportMetric(float64(groups), "groups")
}

func BenchmarkRankOneGroup(b *testing.B) {
	anoms, topo := benchIncidents()
	g := Group{Anomalies: anoms}
	b.ReportAllocs()
	for b.Loop() {
		Rank(g, topo, Config{})
	}
}
