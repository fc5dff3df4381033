package rootcause

import (
	"cmp"
	"slices"
	"time"
)

// Correlate splits anomalies into incidents. Two anomalies are linked when
// one starts no later than cfg.Window after the other ended (time) and they
// may share a cause: same service, node or datacenter, or related in the
// call graph (one calls the other transitively, or both depend on a common
// service). Services the call graph does not know are assumed related, so
// without a topology time alone decides. Groups are the connected
// components of the links (single linkage), sorted by start.
func Correlate(anoms []Anomaly, topo Topology, cfg Config) []Group {
	if len(anoms) == 0 {
		return nil
	}
	cfg = cfg.withDefaults()
	place := newPlacement(topo.Instances)
	graph := newCallGraph(topo.Calls)

	obs := make([]observation, len(anoms))
	for i, a := range anoms {
		obs[i] = observe(a, place)
	}
	order := make([]int, len(obs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int { return compareObservations(&obs[i], &obs[j]) })

	parent := make([]int, len(obs))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}

	// Sweep in onset order, keeping the anomalies that are still within
	// reach (end + window ≥ current onset).
	var active []int
	for _, i := range order {
		o := &obs[i]
		kept := active[:0]
		for _, j := range active {
			if !obs[j].end.Add(cfg.Window).Before(o.onset) {
				kept = append(kept, j)
			}
		}
		active = kept
		for _, j := range active {
			ri, rj := find(i), find(j)
			if ri == rj {
				continue
			}
			if mayShareCause(o, &obs[j], graph) {
				parent[ri] = rj
			}
		}
		active = append(active, i)
	}

	byRoot := map[int]int{} // root → group index
	var groups []Group
	for _, i := range order {
		r := find(i)
		gi, ok := byRoot[r]
		if !ok {
			gi = len(groups)
			byRoot[r] = gi
			groups = append(groups, Group{Start: obs[i].onset, End: obs[i].end})
		}
		g := &groups[gi]
		g.Anomalies = append(g.Anomalies, anoms[i])
		if obs[i].end.After(g.End) {
			g.End = obs[i].end
		}
	}
	// order is by onset, so groups are already sorted by Start.
	return groups
}

// observation is an anomaly normalised for analysis.
type observation struct {
	a          Anomaly
	onset, end time.Time
	peak       float64
	// unit is the service the anomaly belongs to; empty for node- or
	// datacenter-level series (no service label).
	unit     string
	node, dc string
	instance string // instanceKey, "" when not located
}

func observe(a Anomaly, p placement) observation {
	o := observation{a: a, onset: a.Onset, end: a.Last, peak: a.Peak}
	if o.end.Before(o.onset) {
		o.end = o.onset
	}
	if !(o.peak >= 0) { // NaN or negative
		o.peak = 0
	}
	if o.peak > 1 {
		o.peak = 1
	}
	o.node, o.dc = p.locate(a.Series)
	o.unit = a.Series.Service
	if o.unit == "" && o.node == "" && o.dc == "" {
		// Nothing to place it by: treat the series itself as a service.
		o.unit = cmp.Or(a.Series.Instance, a.Series.Metric, "unlabelled")
	}
	if o.unit != "" {
		o.instance = instanceKey(a.Series.Instance, o.node, o.dc)
	}
	return o
}

func compareObservations(a, b *observation) int {
	return cmp.Or(
		a.onset.Compare(b.onset),
		cmp.Compare(a.unit, b.unit),
		cmp.Compare(a.a.Series.Metric, b.a.Series.Metric),
		cmp.Compare(a.node, b.node),
		cmp.Compare(a.dc, b.dc),
		cmp.Compare(a.a.Series.Instance, b.a.Series.Instance),
		cmp.Compare(b.peak, a.peak),
		a.end.Compare(b.end),
	)
}

func mayShareCause(a, b *observation, g *callGraph) bool {
	if a.unit != "" && a.unit == b.unit {
		return true
	}
	if a.node != "" && a.node == b.node {
		return true
	}
	if a.dc != "" && a.dc == b.dc {
		return true
	}
	if a.unit == "" || b.unit == "" {
		// A host-level series: only distinct known datacenters separate it.
		return a.dc == "" || b.dc == ""
	}
	rel, known := g.related(a.unit, b.unit)
	return rel || !known
}
