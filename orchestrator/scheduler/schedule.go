package scheduler

import (
	"slices"
	"strconv"
	"strings"

	"opspilot/orchestrator/model"
)

// Request asks for Count more instances of Service. Existing are the
// service's current instances (their resources are already in their
// nodes' Allocated and their tenant's Usage); active ones count for spread
// and anti-affinity. Give at most one Request per service in a call.
type Request struct {
	Service  model.Service
	Count    int
	Existing []model.Instance
}

// Cluster is the state placements start from. Schedule does not modify it.
type Cluster struct {
	Nodes []model.Node
	// Tenants by name. A tenant that is missing has no quota and weight 1.
	Tenants map[string]model.Tenant
	// Usage is each tenant's summed requests now.
	Usage map[string]model.Resources
}

// Placement is where one new instance goes.
type Placement struct {
	Node, Datacenter string
}

// Explanation tells what happened in one datacenter a request considered.
type Explanation struct {
	Datacenter string
	// Wanted is the datacenter's share of Count by weight; Placed may
	// exceed it when shares moved here from full datacenters.
	Wanted, Placed int
	// Nodes is how many nodes the datacenter has.
	Nodes int
	// Filtered maps a filter name (FilterCPU, FilterPartition, …) to how
	// many nodes it removed, each node counted under the first filter that
	// rejected it. Capacity and anti-affinity filters are counted only when
	// the datacenter ran out of room: they describe the last, failed try.
	Filtered map[string]int
	// Reasons maps the same filter names to the phrase that follows the
	// count in String: "lack 2 CPU", "not in partition db".
	Reasons map[string]string
	// MovedOut is how many instances of this datacenter's share (including
	// any it received) went to other datacenters because it was full;
	// MovedIn is how many it received from full datacenters.
	MovedOut, MovedIn int
}

// String reads "datacenter B: 12 nodes, 9 lack 2 CPU, 3 not in partition
// db; placed 1 of 4, 3 moved to other datacenters". Filters are listed by
// count, largest first.
func (e Explanation) String() string {
	var b strings.Builder
	b.WriteString("datacenter " + e.Datacenter + ": " + strconv.Itoa(e.Nodes) + " nodes")
	names := make([]string, 0, len(e.Filtered))
	for name, n := range e.Filtered {
		if n > 0 {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if d := e.Filtered[b] - e.Filtered[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	for _, name := range names {
		reason := e.Reasons[name]
		if reason == "" {
			reason = "removed by " + name
		}
		b.WriteString(", " + strconv.Itoa(e.Filtered[name]) + " " + reason)
	}
	b.WriteString("; placed " + strconv.Itoa(e.Placed) + " of " + strconv.Itoa(e.Wanted))
	if e.MovedIn > 0 {
		b.WriteString(", " + strconv.Itoa(e.MovedIn) + " from other datacenters")
	}
	if e.MovedOut > 0 {
		b.WriteString(", " + strconv.Itoa(e.MovedOut) + " moved to other datacenters")
	}
	return b.String()
}

// Result is the outcome of one Request.
type Result struct {
	Service string
	// Placements in the order they were made.
	Placements []Placement
	// Unplaced is Count minus len(Placements).
	Unplaced int
	// Explanations, one per datacenter considered, by name.
	Explanations []Explanation
	// QuotaRefused is how many of Unplaced the tenant's quota refused, and
	// Quota says why, e.g. "tenant t1: quota 4 CPU reached".
	QuotaRefused int
	Quota        string
}

// String is the service, the counts, then one explanation per line.
func (r Result) String() string {
	var b strings.Builder
	b.WriteString("service " + r.Service + ": placed " + strconv.Itoa(len(r.Placements)) + ", unplaced " + strconv.Itoa(r.Unplaced))
	if r.Quota != "" {
		b.WriteString(" (" + strconv.Itoa(r.QuotaRefused) + " refused: " + r.Quota + ")")
	}
	for _, e := range r.Explanations {
		b.WriteString("\n  " + e.String())
	}
	return b.String()
}

// Schedule places the requests' instances on c and returns one Result per
// request, in the same order.
//
// Within a request, each datacenter gets its weighted share. A datacenter
// that cannot take all of its share (no node passes the checkers) gives
// the rest to the other datacenters of the request that still have room,
// split again by their weights; a datacenter with weight zero never
// receives any. Instances that no datacenter can take are Unplaced.
//
// Across requests, instances are placed one at a time, each going to the
// tenant with the lowest weighted dominant share (its usage of the scarcer
// of CPU and memory, as a fraction of the cluster's capacity, divided by
// its weight; ties by tenant name) and, within the tenant, to the request
// with the fewest placements so far. So when capacity runs short, tenants
// with weights 1 and 2 end up with about a third and two thirds of it.
//
// Limitation: shares split Count, the new instances only; existing
// instances count for spread within a datacenter but do not shift the
// split between datacenters.
func Schedule(c Cluster, reqs []Request) []Result {
	s := newState(c)
	results := make([]Result, len(reqs))
	tenants := map[string]*tenantState{}
	var order []*tenantState
	all := make([]*requestState, len(reqs))
	for i := range reqs {
		r := s.newRequest(&reqs[i], &results[i])
		all[i] = r
		t := tenants[r.tenant]
		if t == nil {
			t = s.newTenant(r.tenant, c)
			tenants[r.tenant] = t
			order = append(order, t)
		}
		if r.remaining > 0 {
			t.active = append(t.active, r)
		}
	}
	slices.SortFunc(order, func(a, b *tenantState) int { return strings.Compare(a.name, b.name) })

	for {
		t := s.lowestShare(order)
		if t == nil {
			break
		}
		r := t.next()
		if t.refuses(r) {
			r.result.QuotaRefused += r.remaining
			r.result.Quota = t.quotaReason(r.need)
			r.remaining = 0
		} else if s.placeOne(r) {
			t.used = t.used.Add(r.need)
		}
		if r.remaining == 0 {
			t.active = slices.DeleteFunc(t.active, func(x *requestState) bool { return x == r })
		}
	}

	for i, r := range all {
		r.finish()
		results[i].Unplaced = max(reqs[i].Count, 0) - len(results[i].Placements)
	}
	return results
}

// state is the cluster as placements change it.
type state struct {
	nodes []nodeState
	// byDC lists node indexes per datacenter, each sorted by node name.
	byDC   map[string][]int32
	dcs    []string // datacenter names with nodes, sorted
	total  model.Resources
	byName map[string]int32
}

type nodeState struct {
	node *model.Node
	free model.Resources
}

func newState(c Cluster) *state {
	s := &state{
		nodes:  make([]nodeState, len(c.Nodes)),
		byDC:   map[string][]int32{},
		byName: make(map[string]int32, len(c.Nodes)),
	}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		s.nodes[i] = nodeState{node: n, free: n.Free()}
		s.total = s.total.Add(n.Capacity)
		s.byName[n.Name] = int32(i)
		if _, ok := s.byDC[n.Datacenter]; !ok {
			s.dcs = append(s.dcs, n.Datacenter)
		}
		s.byDC[n.Datacenter] = append(s.byDC[n.Datacenter], int32(i))
	}
	slices.Sort(s.dcs)
	for _, idx := range s.byDC {
		slices.SortFunc(idx, func(a, b int32) int { return strings.Compare(c.Nodes[a].Name, c.Nodes[b].Name) })
	}
	return s
}

// candidate is a node that passed the static checkers for one request,
// with the request's instance count on it.
type candidate struct {
	node  int32
	count int32
}

type dcState struct {
	name        string
	weight      int
	share       int // wanted plus moved in, minus moved out
	placed      int
	full        bool
	candidates  []candidate
	explanation Explanation
}

type requestState struct {
	index     int
	tenant    string
	need      model.Resources
	remaining int
	placed    int
	dcs       []dcState
	dynamic   []checker
	rank      ranker
	result    *Result
}

func (s *state) newRequest(req *Request, res *Result) *requestState {
	svc := &req.Service
	r := &requestState{
		tenant:    svc.Tenant,
		need:      svc.Requests,
		remaining: max(req.Count, 0),
		dynamic:   dynamicCheckers(svc),
		rank:      rankerFor(svc.Placement.Strategy),
		result:    res,
	}
	res.Service = svc.Name

	// Datacenters: the weighted ones (even those without nodes, so the
	// explanation shows it), or all with nodes, evenly.
	allow := datacenterChecker{svc.Placement.Datacenters}
	var names []string
	if len(svc.Placement.Datacenters) > 0 {
		for dc := range svc.Placement.Datacenters {
			if allow.Allows(dc) {
				names = append(names, dc)
			}
		}
		slices.Sort(names)
	} else {
		names = s.dcs
	}
	weights := make([]int, len(names))
	for i, dc := range names {
		weights[i] = 1
		if len(svc.Placement.Datacenters) > 0 {
			weights[i] = svc.Placement.Datacenters[dc]
		}
	}
	shares := splitByWeight(r.remaining, weights)

	var existing map[int32]int32
	for i := range req.Existing {
		in := &req.Existing[i]
		if idx, ok := s.byName[in.Node]; ok && in.Active() {
			if existing == nil {
				existing = map[int32]int32{}
			}
			existing[idx]++
		}
	}

	static := staticCheckers(svc)
	r.dcs = make([]dcState, len(names))
	for i, dc := range names {
		d := &r.dcs[i]
		nodes := s.byDC[dc]
		*d = dcState{name: dc, weight: weights[i], share: shares[i]}
		d.explanation = Explanation{Datacenter: dc, Wanted: shares[i], Nodes: len(nodes)}
		d.candidates = make([]candidate, 0, len(nodes))
		for _, idx := range nodes {
			v := nodeView{Node: s.nodes[idx].node}
			if c := firstFailing(static, v); c != nil {
				d.explain(c, 1)
				continue
			}
			d.candidates = append(d.candidates, candidate{node: idx, count: existing[idx]})
		}
	}
	return r
}

func (d *dcState) explain(c checker, n int) {
	e := &d.explanation
	if e.Filtered == nil {
		e.Filtered, e.Reasons = map[string]int{}, map[string]string{}
	}
	if _, ok := e.Reasons[c.Name()]; !ok {
		e.Reasons[c.Name()] = c.Reason()
	}
	e.Filtered[c.Name()] += n
}

// placeOne places the request's next instance, moving shares away from
// datacenters that turn out full. It reports whether it placed one; if
// not, the request has nothing left to place.
func (s *state) placeOne(r *requestState) bool {
	for r.remaining > 0 {
		d := r.nextDC()
		if d == nil { // cannot happen: shares of open datacenters sum to remaining
			r.remaining = 0
			break
		}
		best, bestScore := -1, 0.0
		for i, c := range d.candidates {
			ns := &s.nodes[c.node]
			v := nodeView{Node: ns.node, Free: ns.free, Count: int(c.count)}
			if firstFailing(r.dynamic, v) != nil {
				continue
			}
			if score := r.rank.Score(v, r.need); best < 0 || score > bestScore {
				best, bestScore = i, score
			}
		}
		if best < 0 {
			s.closeDC(r, d)
			continue
		}
		c := &d.candidates[best]
		ns := &s.nodes[c.node]
		ns.free = ns.free.Sub(r.need)
		c.count++
		d.placed++
		d.explanation.Placed++
		r.placed++
		r.remaining--
		r.result.Placements = append(r.result.Placements, Placement{Node: ns.node.Name, Datacenter: d.name})
		return true
	}
	return false
}

// nextDC is the open datacenter with the most of its share left, the
// first by name on ties.
func (r *requestState) nextDC() *dcState {
	var best *dcState
	for i := range r.dcs {
		d := &r.dcs[i]
		if !d.full && d.share-d.placed > 0 && (best == nil || d.share-d.placed > best.share-best.placed) {
			best = d
		}
	}
	return best
}

// closeDC marks d full, records why, and moves what is left of its share
// to the other open datacenters by weight.
func (s *state) closeDC(r *requestState, d *dcState) {
	d.full = true
	for _, c := range d.candidates {
		ns := &s.nodes[c.node]
		if f := firstFailing(r.dynamic, nodeView{Node: ns.node, Free: ns.free, Count: int(c.count)}); f != nil {
			d.explain(f, 1)
		}
	}
	left := d.share - d.placed
	d.share = d.placed
	var open []*dcState
	var weights []int
	for i := range r.dcs {
		o := &r.dcs[i]
		if !o.full && o.weight > 0 {
			open = append(open, o)
			weights = append(weights, o.weight)
		}
	}
	if len(open) == 0 {
		r.remaining -= left // nowhere to go: unplaced
		return
	}
	d.explanation.MovedOut += left
	for i, n := range splitByWeight(left, weights) {
		open[i].share += n
		open[i].explanation.MovedIn += n
	}
}

func (r *requestState) finish() {
	r.result.Explanations = make([]Explanation, len(r.dcs))
	for i := range r.dcs {
		r.result.Explanations[i] = r.dcs[i].explanation
	}
}

type tenantState struct {
	name   string
	weight float64
	quota  model.Resources
	used   model.Resources
	active []*requestState
}

func (s *state) newTenant(name string, c Cluster) *tenantState {
	t := &tenantState{name: name, weight: 1, used: c.Usage[name]}
	if spec, ok := c.Tenants[name]; ok {
		t.weight = spec.EffectiveWeight()
		t.quota = spec.Quota
	}
	return t
}

// lowestShare returns the tenant with work left whose weighted dominant
// share is lowest, the first by name on ties, or nil when all are done.
func (s *state) lowestShare(order []*tenantState) *tenantState {
	var best *tenantState
	bestShare := 0.0
	for _, t := range order {
		if len(t.active) == 0 {
			continue
		}
		if sh := s.dominantShare(t); best == nil || sh < bestShare {
			best, bestShare = t, sh
		}
	}
	return best
}

func (s *state) dominantShare(t *tenantState) float64 {
	sh := 0.0
	if s.total.MilliCPU > 0 {
		sh = float64(t.used.MilliCPU) / float64(s.total.MilliCPU)
	}
	if s.total.MemoryBytes > 0 {
		sh = max(sh, float64(t.used.MemoryBytes)/float64(s.total.MemoryBytes))
	}
	return sh / t.weight
}

// next is the tenant's active request with the fewest placements, the
// first given on ties.
func (t *tenantState) next() *requestState {
	best := t.active[0]
	for _, r := range t.active[1:] {
		if r.placed < best.placed {
			best = r
		}
	}
	return best
}

// refuses reports whether one more instance of r would exceed the quota.
// A zero quota amount is no limit.
func (t *tenantState) refuses(r *requestState) bool {
	after := t.used.Add(r.need)
	return t.quota.MilliCPU > 0 && after.MilliCPU > t.quota.MilliCPU ||
		t.quota.MemoryBytes > 0 && after.MemoryBytes > t.quota.MemoryBytes
}

func (t *tenantState) quotaReason(need model.Resources) string {
	after := t.used.Add(need)
	if t.quota.MilliCPU > 0 && after.MilliCPU > t.quota.MilliCPU {
		return "tenant " + t.name + ": quota " + t.quota.MilliCPU.String() + " CPU reached"
	}
	return "tenant " + t.name + ": quota " + t.quota.MemoryBytes.String() + " memory reached"
}
