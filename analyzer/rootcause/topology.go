package rootcause

import (
	"math"
	"slices"
	"sort"
)

// Edge is observed traffic from one service to another, e.g. request counts
// at the gateway over the last hour.
type Edge struct {
	From     string  `json:"from"`
	To       string  `json:"to"`
	Requests float64 `json:"requests"`
}

// TopologyFromTraffic builds the call graph from observed traffic: edges
// with the same endpoints are summed, and pairs with fewer than minRequests
// in total, self-calls, unnamed endpoints and non-finite counts are
// dropped. Weights hold the summed requests.
func TopologyFromTraffic(edges []Edge, minRequests float64) Topology {
	sums := map[string]map[string]float64{}
	for _, e := range edges {
		if e.From == "" || e.To == "" || e.From == e.To || math.IsNaN(e.Requests) || math.IsInf(e.Requests, 0) || e.Requests < 0 {
			continue
		}
		if sums[e.From] == nil {
			sums[e.From] = map[string]float64{}
		}
		sums[e.From][e.To] += e.Requests
	}
	t := Topology{Calls: map[string][]string{}, Weights: map[string]map[string]float64{}}
	for from, tos := range sums {
		for to, n := range tos {
			if n < minRequests || n == 0 {
				continue
			}
			t.Calls[from] = append(t.Calls[from], to)
			if t.Weights[from] == nil {
				t.Weights[from] = map[string]float64{}
			}
			t.Weights[from][to] = n
		}
		sort.Strings(t.Calls[from])
	}
	return t
}

// placement indexes the inventory.
type placement struct {
	byInstance map[[2]string]Instance // (service, instance) → placement
	nodeDC     map[string]string      // node → datacenter
	byService  map[string][]Instance
	nodes      map[string]bool
	dcNodes    map[string]map[string]bool // datacenter → its nodes
}

func newPlacement(inv []Instance) placement {
	p := placement{
		byInstance: map[[2]string]Instance{},
		nodeDC:     map[string]string{},
		byService:  map[string][]Instance{},
		nodes:      map[string]bool{},
		dcNodes:    map[string]map[string]bool{},
	}
	for _, in := range inv {
		if in.Node != "" {
			p.nodes[in.Node] = true
			if in.Datacenter != "" {
				p.nodeDC[in.Node] = in.Datacenter
			}
		}
		if in.Datacenter != "" {
			if p.dcNodes[in.Datacenter] == nil {
				p.dcNodes[in.Datacenter] = map[string]bool{}
			}
			if in.Node != "" {
				p.dcNodes[in.Datacenter][in.Node] = true
			}
		}
		if in.Service != "" {
			p.byService[in.Service] = append(p.byService[in.Service], in)
			if in.Instance != "" {
				p.byInstance[[2]string{in.Service, in.Instance}] = in
			}
		}
	}
	return p
}

// locate fills node and datacenter of a series from the inventory.
func (p placement) locate(s Series) (node, dc string) {
	node, dc = s.Node, s.Datacenter
	if node == "" && s.Service != "" && s.Instance != "" {
		node = p.byInstance[[2]string{s.Service, s.Instance}].Node
	}
	if dc == "" && node != "" {
		dc = p.nodeDC[node]
	}
	if dc == "" && s.Service != "" && s.Instance != "" {
		dc = p.byInstance[[2]string{s.Service, s.Instance}].Datacenter
	}
	return node, dc
}

// instanceKey names an instance for matching anomalies with the inventory.
func instanceKey(instance, node, dc string) string {
	switch {
	case instance != "":
		return instance
	case node != "":
		return "node:" + node
	case dc != "":
		return "datacenter:" + dc
	}
	return ""
}

// callGraph indexes Topology.Calls and answers "could these two services
// share a cause": one reaches the other, or both reach a common callee.
type callGraph struct {
	index  map[string]int
	callee [][]int
	reach  [][]uint64 // lazily computed bitsets, self included
}

func newCallGraph(calls map[string][]string) *callGraph {
	g := &callGraph{index: map[string]int{}}
	id := func(s string) int {
		if i, ok := g.index[s]; ok {
			return i
		}
		g.index[s] = len(g.callee)
		g.callee = append(g.callee, nil)
		return len(g.callee) - 1
	}
	callers := make([]string, 0, len(calls))
	for c := range calls {
		callers = append(callers, c)
	}
	sort.Strings(callers) // deterministic indices
	for _, c := range callers {
		if c == "" {
			continue
		}
		ci := id(c)
		for _, e := range calls[c] {
			if e == "" || e == c {
				continue
			}
			ei := id(e)
			if !slices.Contains(g.callee[ci], ei) {
				g.callee[ci] = append(g.callee[ci], ei)
			}
		}
	}
	g.reach = make([][]uint64, len(g.callee))
	return g
}

func (g *callGraph) reachOf(i int) []uint64 {
	if g.reach[i] != nil {
		return g.reach[i]
	}
	bits := make([]uint64, (len(g.callee)+63)/64)
	stack := []int{i}
	bits[i/64] |= 1 << (i % 64)
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, w := range g.callee[v] {
			if bits[w/64]&(1<<(w%64)) == 0 {
				bits[w/64] |= 1 << (w % 64)
				stack = append(stack, w)
			}
		}
	}
	g.reach[i] = bits
	return bits
}

// related reports whether services a and b can share a cause, and whether
// the graph knows both (known=false means it cannot tell).
func (g *callGraph) related(a, b string) (related, known bool) {
	ia, oka := g.index[a]
	ib, okb := g.index[b]
	if !oka || !okb {
		return false, false
	}
	ra, rb := g.reachOf(ia), g.reachOf(ib)
	for k := range ra {
		if ra[k]&rb[k] != 0 {
			return true, true
		}
	}
	return false, true
}
