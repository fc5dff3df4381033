package rootcause

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"time"
)

// unconfirmedHost scales a node or datacenter whose peers cannot be checked
// because the inventory does not list any other node (datacenter).
const unconfirmedHost = 0.5

// unknownDependencies scales a node or datacenter when there is no call
// graph, so the services it groups may depend on each other unseen.
const unknownDependencies = 0.7

// Rank scores the candidate origins of one incident: its anomalous
// services, and the nodes and datacenters that group them. See the package
// documentation for the method. Hints are sorted best first with Rank
// 1..n; ties are broken by earlier onset, then kind (service, node,
// datacenter), then name.
func Rank(g Group, topo Topology, cfg Config) []Hint {
	if len(g.Anomalies) == 0 {
		return nil
	}
	cfg = cfg.withDefaults()
	r := newRanking(g.Anomalies, topo, cfg)
	r.scoreServices()
	r.scoreHosts()
	return r.hints()
}

type location struct{ node, dc string }

type serviceCand struct {
	name    string
	first   *observation
	peak    float64
	located map[string]location // anomalous instance key → where
	callees []int               // anomalous direct callees, by index
	callers []int               // anomalous direct callers, by index
	hasCall bool                // the topology lists callees for it
	allCall []string            // all callees in the topology

	dep, onset, peakTerm float64
	explainer            *hostCand
	explained            float64
	score                float64
}

type hostCand struct {
	kind, name string
	first      *observation
	services   []int           // anomalous services located here, sorted
	direct     []*observation  // host-level series (no service label) here
	nodes      map[string]bool // datacenter only: nodes with anomalies

	units, in, out, healthy, components, inventoryNodes int
	confirmed                                           bool
	g, score                                            float64
}

type ranking struct {
	cfg      Config
	topo     Topology
	place    placement
	obs      []observation
	t0       time.Time
	maxPeak  float64
	services []*serviceCand
	byName   map[string]int
	hosts    []*hostCand
	units    int // services + host-level units
	hasEdges bool
}

func newRanking(anoms []Anomaly, topo Topology, cfg Config) *ranking {
	r := &ranking{cfg: cfg, topo: topo, place: newPlacement(topo.Instances), byName: map[string]int{}}
	unsorted := make([]observation, len(anoms))
	order := make([]int, len(anoms))
	for i, a := range anoms {
		unsorted[i] = observe(a, r.place)
		order[i] = i
	}
	// Sort indices: observations are too big to swap cheaply.
	slices.SortFunc(order, func(i, j int) int { return compareObservations(&unsorted[i], &unsorted[j]) })
	r.obs = make([]observation, len(anoms))
	for k, i := range order {
		r.obs[k] = unsorted[i]
	}
	r.t0 = r.obs[0].onset

	nodes := map[string]*hostCand{}
	dcs := map[string]*hostCand{}
	host := func(m map[string]*hostCand, kind, name string, o *observation) *hostCand {
		h := m[name]
		if h == nil {
			h = &hostCand{kind: kind, name: name, first: o, nodes: map[string]bool{}}
			m[name] = h
		}
		return h
	}
	// Names first, so indices follow name order and stay deterministic.
	var names []string
	for i := range r.obs {
		if u := r.obs[i].unit; u != "" {
			if _, ok := r.byName[u]; !ok {
				r.byName[u] = -1
				names = append(names, u)
			}
		}
	}
	sort.Strings(names)
	for i, n := range names {
		r.byName[n] = i
		r.services = append(r.services, &serviceCand{name: n, located: map[string]location{}})
	}
	directUnits := map[string]bool{}
	for i := range r.obs {
		o := &r.obs[i]
		r.maxPeak = math.Max(r.maxPeak, o.peak)
		if o.unit != "" {
			s := r.services[r.byName[o.unit]]
			if s.first == nil {
				s.first = o
			}
			s.peak = math.Max(s.peak, o.peak)
			if o.instance != "" {
				s.located[o.instance] = location{o.node, o.dc}
			}
		}
		if o.node != "" {
			h := host(nodes, KindNode, o.node, o)
			if o.unit == "" {
				h.direct = append(h.direct, o)
				directUnits["n/"+o.node] = true
			}
		}
		if o.dc != "" {
			h := host(dcs, KindDatacenter, o.dc, o)
			if o.node != "" {
				h.nodes[o.node] = true
			}
			if o.unit == "" {
				h.direct = append(h.direct, o)
				if o.node == "" {
					directUnits["d/"+o.dc] = true
				}
			}
		}
	}
	r.units = len(r.services) + len(directUnits)
	for _, s := range r.services {
		for _, l := range s.located {
			if l.node != "" {
				nodes[l.node].services = appendUnique(nodes[l.node].services, r.byName[s.name])
			}
			if l.dc != "" {
				dcs[l.dc].services = appendUnique(dcs[l.dc].services, r.byName[s.name])
			}
		}
	}
	for _, m := range []map[string]*hostCand{nodes, dcs} {
		for _, h := range m {
			slices.Sort(h.services)
			r.hosts = append(r.hosts, h)
		}
	}
	slices.SortFunc(r.hosts, func(a, b *hostCand) int { return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.name, b.name)) })

	// Direct call edges among anomalous services.
	for ci, c := range r.services {
		callees := topo.Calls[c.name]
		c.hasCall = len(callees) > 0
		for _, e := range callees {
			if e == c.name || e == "" || slices.Contains(c.allCall, e) {
				continue
			}
			c.allCall = append(c.allCall, e)
			if ei, ok := r.byName[e]; ok {
				c.callees = append(c.callees, ei)
				r.services[ei].callers = append(r.services[ei].callers, ci)
			}
		}
		sort.Strings(c.allCall)
		slices.Sort(c.callees)
	}
	for _, s := range r.services {
		slices.Sort(s.callers)
	}
	return r
}

func appendUnique(xs []int, x int) []int {
	if slices.Contains(xs, x) {
		return xs
	}
	return append(xs, x)
}

// explains reports whether callee e's anomaly can have caused caller c's:
// it must not have started later than c's, up to the tolerance.
func (r *ranking) explains(e, c *serviceCand) bool {
	return !e.first.onset.After(c.first.onset.Add(r.cfg.OnsetTolerance))
}

func (r *ranking) onsetTerm(t time.Time) float64 {
	return math.Exp(-float64(t.Sub(r.t0)) / float64(r.cfg.OnsetScale))
}

func (r *ranking) peakTerm(p float64) float64 {
	if r.maxPeak <= 0 {
		return 1
	}
	return p / r.maxPeak
}

// scoreServices computes the dependency (personalised PageRank), onset and
// peak terms of every anomalous service.
func (r *ranking) scoreServices() {
	n := len(r.services)
	if n == 0 {
		return
	}
	for _, s := range r.services {
		s.onset = r.onsetTerm(s.first.onset)
		s.peakTerm = r.peakTerm(s.peak)
	}
	// Flow goes from a caller to the anomalous callees that can explain
	// it (started no later than it, up to the tolerance), split by
	// traffic; whatever is not explained stays put.
	out := make([][]weightedEdge, n)
	stay := make([]float64, n)
	pers := make([]float64, n)
	for ci, c := range r.services {
		pers[ci] = 1 // peak has its own term; do not count it twice
		stay[ci] = 1
		var total float64
		for _, ei := range c.callees {
			if r.explains(r.services[ei], c) {
				total += r.trafficWeight(c.name, r.services[ei].name)
			}
		}
		for _, ei := range c.callees {
			if e := r.services[ei]; r.explains(e, c) {
				w := r.trafficWeight(c.name, e.name) / total
				out[ci] = append(out[ci], weightedEdge{to: ei, w: w})
				stay[ci] -= w
				r.hasEdges = true
			}
		}
		stay[ci] = math.Max(0, stay[ci])
	}
	if r.hasEdges {
		rank := personalizedPageRank(out, stay, pers, r.cfg.Damping)
		maxRank := slices.Max(rank)
		for i, s := range r.services {
			s.dep = rank[i] / maxRank
		}
	}
	wd, wo, wp := r.cfg.DependencyWeight, r.cfg.OnsetWeight, r.cfg.PeakWeight
	if !r.hasEdges {
		wd = 0
	}
	sum := wd + wo + wp
	if sum == 0 { // only the dependency weight was set and there are no edges
		wo, sum = 1, 1
	}
	for _, s := range r.services {
		s.score = (wd*s.dep + wo*s.onset + wp*s.peakTerm) / sum
	}
}

func (r *ranking) trafficWeight(from, to string) float64 {
	if w, ok := r.topo.Weights[from][to]; ok && w > 0 && !math.IsInf(w, 1) {
		return w
	}
	if len(r.topo.Weights[from]) > 0 {
		return 0.01 * r.meanWeight(from) // configured but never observed
	}
	return 1
}

func (r *ranking) meanWeight(from string) float64 {
	var sum float64
	var n int
	for _, w := range r.topo.Weights[from] {
		if w > 0 && !math.IsInf(w, 1) {
			sum += w
			n++
		}
	}
	if n == 0 {
		return 1
	}
	return sum / float64(n)
}

// components counts groups of the given services connected by anomalous
// call edges: services in one group may explain each other, services in
// different groups need a common cause.
func (r *ranking) components(idx []int) int {
	in := map[int]int{}
	parent := make([]int, len(idx))
	for k, i := range idx {
		in[i] = k
		parent[k] = k
	}
	var find func(int) int
	find = func(k int) int {
		if parent[k] != k {
			parent[k] = find(parent[k])
		}
		return parent[k]
	}
	n := len(idx)
	for k, i := range idx {
		for _, e := range r.services[i].callees {
			if ke, ok := in[e]; ok {
				a, b := find(k), find(ke)
				if a != b {
					parent[a] = b
					n--
				}
			}
		}
	}
	return n
}

// scoreHosts computes the grouping score of every node and datacenter and
// discounts the services they explain.
func (r *ranking) scoreHosts() {
	otherInInventory := func(h *hostCand) bool {
		if h.kind == KindNode {
			for n := range r.place.nodes {
				if n != h.name {
					return true
				}
			}
			return false
		}
		for d := range r.place.dcNodes {
			if d != h.name {
				return true
			}
		}
		return false
	}
	for _, h := range r.hosts {
		where := func(l location) string {
			if h.kind == KindNode {
				return l.node
			}
			return l.dc
		}
		h.units = len(h.services)
		directHere := false
		directNodes := map[string]bool{}
		for _, o := range h.direct {
			if h.kind == KindNode || o.node == "" {
				directHere = true
			} else {
				directNodes[o.node] = true
			}
		}
		if directHere {
			h.units++
		}
		h.units += len(directNodes)
		for _, si := range h.services {
			s := r.services[si]
			for _, l := range s.located {
				switch w := where(l); {
				case w == h.name:
					h.in++
				case w != "":
					h.out++
				}
			}
			for _, inv := range r.place.byService[s.name] {
				dc := cmp.Or(inv.Datacenter, r.place.nodeDC[inv.Node])
				w := where(location{inv.Node, dc})
				if w == "" || w == h.name {
					continue
				}
				if _, bad := s.located[instanceKey(inv.Instance, inv.Node, dc)]; !bad {
					h.healthy++
				}
			}
		}
		h.components = r.components(h.services) + len(directNodes)
		cover := float64(h.units) / float64(r.units)
		spec := 1.0
		if h.in+h.out > 0 {
			spec = float64(h.in) / float64(h.in+h.out)
		}
		multi := math.Min(1, float64(h.components-1)/2)
		if directHere {
			multi = 1
		}
		spread := 1.0
		if h.kind == KindDatacenter {
			h.inventoryNodes = len(r.place.dcNodes[h.name])
		}
		if h.kind == KindDatacenter && !directHere {
			an := len(h.nodes)
			switch {
			case h.inventoryNodes > 0:
				spread = float64(an) / float64(max(h.inventoryNodes, an))
			case an > 0:
				spread = math.Min(1, float64(an-1)/2)
			}
		}
		h.confirmed = otherInInventory(h)
		confirm := 1.0
		if !h.confirmed {
			confirm = unconfirmedHost
		}
		if len(r.topo.Calls) == 0 && !directHere {
			confirm *= unknownDependencies
		}
		h.g = math.Max(0, cover*spec*multi*spread*confirm)
		h.score = h.g * (0.5 + 0.5*r.onsetTerm(h.first.onset))
		for _, si := range h.services {
			s := r.services[si]
			if h.g > s.explained {
				s.explained, s.explainer = h.g, h
			}
		}
	}
	for _, s := range r.services {
		s.score *= 1 - r.cfg.HostDiscount*s.explained
	}
}

// roundScore keeps four decimals so float noise cannot reorder ties.
func roundScore(x float64) float64 {
	if !(x > 0) {
		return 0
	}
	return math.Min(1, math.Round(x*1e4)/1e4)
}

type rankedHint struct {
	Hint
	onset time.Time
	kind  int
}

func (r *ranking) hints() []Hint {
	var all []rankedHint
	for _, s := range r.services {
		all = append(all, rankedHint{
			Hint:  Hint{Kind: KindService, Name: s.name, Score: roundScore(s.score), Evidence: r.serviceEvidence(s)},
			onset: s.first.onset, kind: 0,
		})
	}
	for _, h := range r.hosts {
		sc := roundScore(h.score)
		if sc == 0 {
			continue
		}
		k := 1
		if h.kind == KindDatacenter {
			k = 2
		}
		all = append(all, rankedHint{
			Hint:  Hint{Kind: h.kind, Name: h.name, Score: sc, Evidence: r.hostEvidence(h)},
			onset: h.first.onset, kind: k,
		})
	}
	slices.SortFunc(all, func(a, b rankedHint) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), a.onset.Compare(b.onset), cmp.Compare(a.kind, b.kind), cmp.Compare(a.Name, b.Name))
	})
	out := make([]Hint, len(all))
	for i, h := range all {
		out[i] = h.Hint
		out[i].Rank = i + 1
	}
	return out
}
