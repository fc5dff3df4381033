package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"opspilot/orchestrator/model"
)

const gi = model.Bytes(1 << 30)

func node(name, dc, partition string, cpu model.Millicores, mem model.Bytes) model.Node {
	return model.Node{Name: name, Datacenter: dc, Partition: partition, Capacity: model.Resources{MilliCPU: cpu, MemoryBytes: mem}}
}

func service(name string, cpu model.Millicores, mem model.Bytes) model.Service {
	return model.Service{Name: name, Runtime: "process", Command: []string{"x"}, Requests: model.Resources{MilliCPU: cpu, MemoryBytes: mem}}
}

func TestSplitByWeight(t *testing.T) {
	tests := []struct {
		name    string
		count   int
		weights []int
		want    []int
	}{
		{"6:4 of 10", 10, []int{6, 4}, []int{6, 4}},
		{"6:4 of 7", 7, []int{6, 4}, []int{4, 3}},
		{"6:4 of 1", 1, []int{6, 4}, []int{1, 0}},
		{"6:4 of 0", 0, []int{6, 4}, []int{0, 0}},
		{"with a zero", 5, []int{1, 0, 1}, []int{3, 0, 2}},
		{"1:1:1 of 10 ties by name", 10, []int{1, 1, 1}, []int{4, 3, 3}},
		{"1:1:1 of 2", 2, []int{1, 1, 1}, []int{1, 1, 0}},
		{"all zero", 3, []int{0, 0}, []int{0, 0}},
		{"negative count", -1, []int{1}, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := splitByWeight(tt.count, tt.weights); !slices.Equal(got, tt.want) {
				t.Errorf("splitByWeight(%d, %v) = %v, want %v", tt.count, tt.weights, got, tt.want)
			}
		})
	}
}

func TestCheckersAlone(t *testing.T) {
	n := model.Node{Name: "n1", Datacenter: "A", Partition: "db", Labels: map[string]string{"disk": "ssd", "zone": "1"}}
	free := model.Resources{MilliCPU: 1000, MemoryBytes: gi}
	v := nodeView{Node: &n, Free: free}
	tests := []struct {
		name string
		c    checker
		v    nodeView
		want bool
	}{
		{"partition match", partitionChecker{[]string{"web", "db"}}, v, true},
		{"partition miss", partitionChecker{[]string{"web"}}, v, false},
		{"partition any", partitionChecker{nil}, v, true},
		{"labels match", labelChecker{map[string]string{"disk": "ssd"}}, v, true},
		{"labels wrong value", labelChecker{map[string]string{"disk": "hdd"}}, v, false},
		{"labels missing", labelChecker{map[string]string{"gpu": "yes"}}, v, false},
		{"anti-affinity empty node", antiAffinityChecker{"web", true}, v, true},
		{"anti-affinity occupied", antiAffinityChecker{"web", true}, nodeView{Node: &n, Count: 1}, false},
		{"anti-affinity off", antiAffinityChecker{"web", false}, nodeView{Node: &n, Count: 3}, true},
		{"cpu fits exactly", cpuFitChecker{1000}, v, true},
		{"cpu lacks", cpuFitChecker{1001}, v, false},
		{"memory fits", memoryFitChecker{gi}, v, true},
		{"memory lacks", memoryFitChecker{gi + 1}, v, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.Feasible(tt.v); got != tt.want {
				t.Errorf("%s.Feasible = %v, want %v", tt.c.Name(), got, tt.want)
			}
		})
	}
	dc := datacenterChecker{map[string]int{"A": 1, "B": 0}}
	if !dc.Allows("A") || dc.Allows("B") || dc.Allows("C") {
		t.Error("datacenterChecker with weights A:1 B:0: want only A")
	}
	if !(datacenterChecker{}).Allows("anything") {
		t.Error("datacenterChecker without weights must allow every datacenter")
	}
	if got := (cpuFitChecker{2000}).Reason(); got != "lack 2 CPU" {
		t.Errorf("cpu reason = %q", got)
	}
	if got := (memoryFitChecker{512 << 20}).Reason(); got != "lack 512Mi memory" {
		t.Errorf("memory reason = %q", got)
	}
}

func TestRankers(t *testing.T) {
	empty := node("empty", "A", "", 4000, 4*gi)
	half := node("half", "A", "", 4000, 4*gi)
	need := model.Resources{MilliCPU: 1000, MemoryBytes: gi}
	ve := nodeView{Node: &empty, Free: empty.Capacity}
	vh := nodeView{Node: &half, Free: model.Resources{MilliCPU: 2000, MemoryBytes: 3 * gi}}
	if s, b := (spreadRanker{}), (binpackRanker{}); !(s.Score(ve, need) > s.Score(vh, need)) || !(b.Score(vh, need) > b.Score(ve, need)) {
		t.Error("spread must prefer the emptier node and binpack the fuller one")
	}
	// Fewer instances of the service beats lower allocation for spread.
	vh.Count, ve.Count = 0, 1
	if s := (spreadRanker{}); !(s.Score(vh, need) > s.Score(ve, need)) {
		t.Error("spread must prefer the node with fewer instances")
	}
}

func nodeNames(ps []Placement) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Node
	}
	return out
}

func TestScheduleStrategies(t *testing.T) {
	nodes := []model.Node{
		node("n1", "A", "", 2000, 8*gi),
		node("n2", "A", "", 2000, 8*gi),
		node("n3", "A", "", 2000, 8*gi),
	}
	tests := []struct {
		strategy string
		want     []string
	}{
		{"spread", []string{"n1", "n2", "n3", "n1"}},
		{"", []string{"n1", "n2", "n3", "n1"}},
		{"binpack", []string{"n1", "n1", "n2", "n2"}},
	}
	for _, tt := range tests {
		t.Run(tt.strategy, func(t *testing.T) {
			svc := service("web", 1000, gi)
			svc.Placement.Strategy = tt.strategy
			res := Schedule(Cluster{Nodes: nodes}, []Request{{Service: svc, Count: 4}})[0]
			if got := nodeNames(res.Placements); !slices.Equal(got, tt.want) {
				t.Errorf("placements = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestScheduleFitAccounting(t *testing.T) {
	n := node("n1", "A", "", 2000, 8*gi)
	n.Allocated = model.Resources{MilliCPU: 500}
	// Room for 1.5 CPU: one instance of 1 CPU, and with two requests in the
	// same call the second must see the first's allocation.
	c := Cluster{Nodes: []model.Node{n, node("n2", "A", "", 2000, 8*gi)}}
	res := Schedule(c, []Request{
		{Service: service("a", 1000, gi), Count: 5},
		{Service: service("b", 1000, gi), Count: 5},
	})
	total := len(res[0].Placements) + len(res[1].Placements)
	perNode := map[string]int{}
	for _, r := range res {
		for _, p := range r.Placements {
			perNode[p.Node]++
		}
	}
	if total != 3 || perNode["n1"] != 1 || perNode["n2"] != 2 {
		t.Errorf("placed %d (%v), want 3: 1 on n1, 2 on n2", total, perNode)
	}
	if res[0].Unplaced+res[1].Unplaced != 7 {
		t.Errorf("unplaced = %d + %d, want 7", res[0].Unplaced, res[1].Unplaced)
	}
	if c.Nodes[0].Allocated.MilliCPU != 500 {
		t.Error("Schedule modified the cluster")
	}
}

func TestScheduleAntiAffinity(t *testing.T) {
	nodes := []model.Node{node("n1", "A", "", 8000, 8*gi), node("n2", "A", "", 8000, 8*gi), node("n3", "A", "", 8000, 8*gi)}
	svc := service("web", 100, 1<<20)
	svc.Placement.AntiAffinity = true
	existing := []model.Instance{
		{ID: "1", Service: "web", Node: "n1", State: model.StateRunning},
		{ID: "2", Service: "web", Node: "n3", State: model.StateFailed}, // not active: ignored
	}
	res := Schedule(Cluster{Nodes: nodes}, []Request{{Service: svc, Count: 3, Existing: existing}})[0]
	if got := nodeNames(res.Placements); !slices.Equal(got, []string{"n2", "n3"}) {
		t.Errorf("placements = %v, want [n2 n3]", got)
	}
	if res.Unplaced != 1 {
		t.Errorf("unplaced = %d, want 1", res.Unplaced)
	}
	want := "datacenter A: 3 nodes, 3 already run web; placed 2 of 3"
	if got := res.Explanations[0].String(); got != want {
		t.Errorf("explanation = %q, want %q", got, want)
	}
}

func TestScheduleWeightsAndSpill(t *testing.T) {
	var nodes []model.Node
	for i := range 4 {
		nodes = append(nodes, node(fmt.Sprintf("a%d", i), "A", "", 1000, 8*gi)) // A: room for 4
		nodes = append(nodes, node(fmt.Sprintf("b%d", i), "B", "", 8000, 8*gi))
	}
	nodes = append(nodes, node("c0", "C", "", 8000, 8*gi)) // weight 0: never used
	svc := service("web", 1000, gi)
	svc.Placement.Datacenters = map[string]int{"A": 6, "B": 4, "C": 0}

	res := Schedule(Cluster{Nodes: nodes}, []Request{{Service: svc, Count: 7}})[0]
	perDC := map[string]int{}
	for _, p := range res.Placements {
		perDC[p.Datacenter]++
	}
	if perDC["A"] != 4 || perDC["B"] != 3 || res.Unplaced != 0 {
		t.Errorf("7 at 6:4 with room for 4 in A: got %v unplaced %d, want A:4 B:3", perDC, res.Unplaced)
	}

	res = Schedule(Cluster{Nodes: nodes}, []Request{{Service: svc, Count: 10}})[0]
	perDC = map[string]int{}
	for _, p := range res.Placements {
		perDC[p.Datacenter]++
	}
	if perDC["A"] != 4 || perDC["B"] != 6 || perDC["C"] != 0 || res.Unplaced != 0 {
		t.Errorf("10 at 6:4 with room for 4 in A: got %v, want A:4 B:6", perDC)
	}
	if len(res.Explanations) != 2 {
		t.Fatalf("explanations = %v, want A and B", res.Explanations)
	}
	a, b := res.Explanations[0], res.Explanations[1]
	if a.Wanted != 6 || a.Placed != 4 || a.MovedOut != 2 || a.Filtered[FilterCPU] != 4 {
		t.Errorf("A explanation = %+v", a)
	}
	if b.Wanted != 4 || b.Placed != 6 || b.MovedIn != 2 {
		t.Errorf("B explanation = %+v", b)
	}
	if got, want := a.String(), "datacenter A: 4 nodes, 4 lack 1 CPU; placed 4 of 6, 2 moved to other datacenters"; got != want {
		t.Errorf("A: %q, want %q", got, want)
	}
	if got, want := b.String(), "datacenter B: 4 nodes; placed 6 of 4, 2 from other datacenters"; got != want {
		t.Errorf("B: %q, want %q", got, want)
	}
}

func TestScheduleNoWeightsSpreadsEvenly(t *testing.T) {
	var nodes []model.Node
	for _, dc := range []string{"C", "A", "B"} {
		nodes = append(nodes, node("n"+dc, dc, "", 64000, 64*gi))
	}
	res := Schedule(Cluster{Nodes: nodes}, []Request{{Service: service("web", 100, 1), Count: 10}})[0]
	got := map[string]int{}
	for _, p := range res.Placements {
		got[p.Datacenter]++
	}
	if got["A"] != 4 || got["B"] != 3 || got["C"] != 3 {
		t.Errorf("per datacenter = %v, want A:4 B:3 C:3", got)
	}
}

func TestScheduleFilterCountsInExplanation(t *testing.T) {
	var nodes []model.Node
	for i := range 12 {
		n := node(fmt.Sprintf("b%02d", i), "B", "db", 1000, 8*gi)
		if i >= 9 {
			n.Partition = "web"
		}
		if i == 0 {
			n.Capacity.MilliCPU = 4000 // the only db node with room for 2 CPU
		}
		nodes = append(nodes, n)
	}
	svc := service("pg", 2000, gi)
	svc.Placement.Datacenters = map[string]int{"B": 1}
	svc.Placement.Partitions = []string{"db"}
	res := Schedule(Cluster{Nodes: nodes}, []Request{{Service: svc, Count: 4}})[0]
	e := res.Explanations[0]
	if e.Filtered[FilterPartition] != 3 || e.Filtered[FilterCPU] != 9 || e.Placed != 2 {
		t.Errorf("explanation = %+v", e)
	}
	want := "datacenter B: 12 nodes, 9 lack 2 CPU, 3 not in partition db; placed 2 of 4"
	if got := e.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}

	svc.Placement.Partitions = nil
	svc.Placement.NodeLabels = map[string]string{"disk": "ssd"}
	nodes[5].Labels = map[string]string{"disk": "ssd"}
	res = Schedule(Cluster{Nodes: nodes}, []Request{{Service: svc, Count: 1}})[0]
	want = "datacenter B: 12 nodes, 11 lack labels disk=ssd, 1 lack 2 CPU; placed 0 of 1"
	if got := res.Explanations[0].String(); got != want || res.Unplaced != 1 {
		t.Errorf("String() = %q, unplaced %d; want %q, 1", got, res.Unplaced, want)
	}
}

func TestScheduleWeightedDatacenterWithoutNodes(t *testing.T) {
	svc := service("web", 100, 1)
	svc.Placement.Datacenters = map[string]int{"A": 1, "Z": 1}
	res := Schedule(Cluster{Nodes: []model.Node{node("a", "A", "", 8000, gi)}}, []Request{{Service: svc, Count: 4}})[0]
	if len(res.Placements) != 4 {
		t.Fatalf("placed %d, want 4 (Z's share moves to A)", len(res.Placements))
	}
	if got, want := res.Explanations[1].String(), "datacenter Z: 0 nodes; placed 0 of 2, 2 moved to other datacenters"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestScheduleQuota(t *testing.T) {
	c := Cluster{
		Nodes:   []model.Node{node("n1", "A", "", 64000, 64*gi)},
		Tenants: map[string]model.Tenant{"t1": {Name: "t1", Quota: model.Resources{MilliCPU: 4000}}},
		Usage:   map[string]model.Resources{"t1": {MilliCPU: 1000}},
	}
	svc := service("web", 1000, gi)
	svc.Tenant = "t1"
	res := Schedule(c, []Request{{Service: svc, Count: 5}})[0]
	if len(res.Placements) != 3 || res.Unplaced != 2 || res.QuotaRefused != 2 {
		t.Errorf("placed %d unplaced %d refused %d, want 3, 2, 2", len(res.Placements), res.Unplaced, res.QuotaRefused)
	}
	if want := "tenant t1: quota 4 CPU reached"; res.Quota != want {
		t.Errorf("quota reason %q, want %q", res.Quota, want)
	}
	if !strings.Contains(res.String(), "2 refused: tenant t1: quota 4 CPU reached") {
		t.Errorf("Result.String() = %q", res.String())
	}
}

func TestScheduleDRF(t *testing.T) {
	var nodes []model.Node
	for i := range 3 {
		nodes = append(nodes, node(fmt.Sprintf("n%d", i), "A", "", 3000, 3*gi)) // 9 slots
	}
	c := Cluster{Nodes: nodes, Tenants: map[string]model.Tenant{
		"t1": {Name: "t1", Weight: 1},
		"t2": {Name: "t2", Weight: 2},
	}}
	a, b := service("a", 1000, gi), service("b", 1000, gi)
	a.Tenant, b.Tenant = "t1", "t2"
	// Order of requests must not matter.
	for _, reqs := range [][]Request{
		{{Service: a, Count: 9}, {Service: b, Count: 9}},
		{{Service: b, Count: 9}, {Service: a, Count: 9}},
	} {
		res := Schedule(c, reqs)
		got := map[string]int{}
		for _, r := range res {
			got[r.Service] = len(r.Placements)
		}
		if got["a"] != 3 || got["b"] != 6 {
			t.Errorf("placements %v, want a (weight 1): 3, b (weight 2): 6", got)
		}
	}
}

func TestScheduleDeterministic(t *testing.T) {
	c, reqs := bigCluster(5, 60, 20, 400)
	first := Schedule(c, reqs)
	second := Schedule(c, reqs)
	for i := range first {
		if !slices.Equal(first[i].Placements, second[i].Placements) {
			t.Fatalf("request %d placed differently on a second run", i)
		}
	}
}

// bigCluster builds dcs datacenters with nodes in total and services
// requests asking for instances in total.
func bigCluster(dcs, nodes, services, instances int) (Cluster, []Request) {
	c := Cluster{Tenants: map[string]model.Tenant{}}
	for i := range nodes {
		dc := fmt.Sprintf("dc%02d", i%dcs)
		n := node(fmt.Sprintf("node%04d", i), dc, []string{"web", "db"}[i%2], 32000, 128*gi)
		n.Labels = map[string]string{"disk": []string{"ssd", "hdd"}[i%3%2]}
		c.Nodes = append(c.Nodes, n)
	}
	for t := range 5 {
		name := fmt.Sprintf("t%d", t)
		c.Tenants[name] = model.Tenant{Name: name, Weight: float64(t + 1)}
	}
	var reqs []Request
	for s := range services {
		svc := service(fmt.Sprintf("svc%03d", s), model.Millicores(100+s%5*100), model.Bytes(s%4+1)<<28)
		svc.Tenant = fmt.Sprintf("t%d", s%5)
		switch s % 4 {
		case 1:
			svc.Placement.Datacenters = map[string]int{"dc00": 6, "dc01": 4, "dc02": 1}
		case 2:
			svc.Placement.Partitions = []string{"db"}
			svc.Placement.Strategy = model.StrategyBinpack
		case 3:
			svc.Placement.NodeLabels = map[string]string{"disk": "ssd"}
		}
		reqs = append(reqs, Request{Service: svc, Count: instances / services})
	}
	return c, reqs
}

func TestScheduleLargeIsCorrect(t *testing.T) {
	c, reqs := bigCluster(33, 1200, 100, 10000)
	res := Schedule(c, reqs)
	free := map[string]model.Resources{}
	dcOf := map[string]*model.Node{}
	for i := range c.Nodes {
		free[c.Nodes[i].Name] = c.Nodes[i].Free()
		dcOf[c.Nodes[i].Name] = &c.Nodes[i]
	}
	placed := 0
	for i, r := range res {
		svc := reqs[i].Service
		if len(r.Placements)+r.Unplaced != reqs[i].Count {
			t.Fatalf("%s: %d placed + %d unplaced != %d", svc.Name, len(r.Placements), r.Unplaced, reqs[i].Count)
		}
		for _, p := range r.Placements {
			n := dcOf[p.Node]
			if n.Datacenter != p.Datacenter {
				t.Fatalf("%s: placement %v in the wrong datacenter", svc.Name, p)
			}
			if w := svc.Placement.Datacenters; len(w) > 0 && w[p.Datacenter] == 0 {
				t.Fatalf("%s: placed in %s, which has no weight", svc.Name, p.Datacenter)
			}
			if len(svc.Placement.Partitions) > 0 && !slices.Contains(svc.Placement.Partitions, n.Partition) {
				t.Fatalf("%s: node %s outside partitions", svc.Name, p.Node)
			}
			if l := svc.Placement.NodeLabels; len(l) > 0 && n.Labels["disk"] != l["disk"] {
				t.Fatalf("%s: node %s lacks labels", svc.Name, p.Node)
			}
			free[p.Node] = free[p.Node].Sub(svc.Requests)
		}
		placed += len(r.Placements)
	}
	for name, f := range free {
		if f.MilliCPU < 0 || f.MemoryBytes < 0 {
			t.Fatalf("node %s overcommitted: free %v", name, f)
		}
	}
	if placed != 10000 {
		t.Errorf("placed %d of 10000", placed)
	}
}

func BenchmarkSchedule10kOn1200Nodes(b *testing.B) {
	c, reqs := bigCluster(33, 1200, 100, 10000)
	b.ReportAllocs()
	for b.Loop() {
		Schedule(c, reqs)
	}
}

// firstFit is the baseline for BenchmarkSchedule10kOn1200Nodes: the
// simplest scheduler that honours resource fit alone — each instance on the
// first node (by index) with room, no weights, filters, ranking, quotas or
// explanations. It shows what the real pipeline's extra work costs.
func firstFit(c Cluster, reqs []Request) int {
	free := make([]model.Resources, len(c.Nodes))
	for i := range c.Nodes {
		free[i] = c.Nodes[i].Free()
	}
	placed := 0
	for _, r := range reqs {
		for range r.Count {
			for i := range free {
				if r.Service.Requests.Fits(free[i]) {
					free[i] = free[i].Sub(r.Service.Requests)
					placed++
					break
				}
			}
		}
	}
	return placed
}

// BenchmarkSchedule10kBaselineFirstFit places the same 10,000 instances
// with firstFit. Compare with BenchmarkSchedule10kOn1200Nodes in one run:
// go test ./orchestrator/scheduler -run '^$' -bench 'Schedule10k' -benchtime 5x -count 3
func BenchmarkSchedule10kBaselineFirstFit(b *testing.B) {
	c, reqs := bigCluster(33, 1200, 100, 10000)
	b.ReportAllocs()
	for b.Loop() {
		if n := firstFit(c, reqs); n != 10000 {
			b.Fatalf("first fit placed %d", n)
		}
	}
}
