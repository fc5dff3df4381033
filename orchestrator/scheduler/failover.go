package scheduler

import (
	"maps"
	"slices"

	"opspilot/orchestrator/model"
)

// EffectiveWeights returns the datacenter weights a service is placed by
// while the datacenters in out are failed over. known lists every
// datacenter the cluster has.
//
// A failed-over datacenter gets weight 0 and its weight goes to the first
// datacenter of p.Failover that is not failed over (a disaster-recovery
// datacenter may have weight 0 in p.Datacenters and still take over). With
// no such datacenter the share is spread over the service's other
// datacenters by their weights (the scheduler's split does that), and when
// the service has no positive weight left anywhere, every datacenter in
// service that p.Datacenters does not exclude gets weight 1, so a lost
// datacenter's services run somewhere rather than nowhere.
//
// Without failed-over datacenters the result is p.Datacenters (nil when
// the service runs everywhere evenly).
func EffectiveWeights(p model.Placement, known []string, out map[string]bool) map[string]int {
	affected := false
	for _, dc := range known {
		if out[dc] && (len(p.Datacenters) == 0 || p.Datacenters[dc] > 0) {
			affected = true
			break
		}
	}
	if !affected {
		return p.Datacenters
	}
	w := map[string]int{}
	if len(p.Datacenters) == 0 {
		for _, dc := range known {
			w[dc] = 1
		}
	} else {
		maps.Copy(w, p.Datacenters)
	}
	moved := 0
	for _, dc := range slices.Sorted(maps.Keys(w)) {
		if out[dc] {
			moved += max(w[dc], 0)
			w[dc] = 0
		}
	}
	for _, dc := range p.Failover {
		if !out[dc] && slices.Contains(known, dc) {
			w[dc] += moved
			return w
		}
	}
	for _, v := range w {
		if v > 0 {
			return w
		}
	}
	for _, dc := range known {
		if _, excluded := p.Datacenters[dc]; !out[dc] && !excluded {
			w[dc] = 1
		}
	}
	return w
}

// Targets splits desired instances over datacenters by weights (nil: every
// datacenter of known evenly), as Schedule would place them on an empty
// cluster. Datacenters with no share are left out.
func Targets(desired int, weights map[string]int, known []string) map[string]int {
	names := slices.Sorted(maps.Keys(weights))
	ws := make([]int, len(names))
	for k, dc := range names {
		ws[k] = weights[dc]
	}
	if len(weights) == 0 {
		names = slices.Sorted(slices.Values(known))
		ws = make([]int, len(names))
		for k := range ws {
			ws[k] = 1
		}
	}
	out := map[string]int{}
	for k, n := range splitByWeight(desired, ws) {
		if n > 0 {
			out[names[k]] = n
		}
	}
	return out
}
