package scheduler

import (
	"slices"
	"sort"
	"strings"

	"opspilot/orchestrator/model"
)

// Filter names: the keys of Explanation.Filtered.
const (
	FilterPartition    = "partition"
	FilterLabels       = "labels"
	FilterAntiAffinity = "anti-affinity"
	FilterCPU          = "cpu"
	FilterMemory       = "memory"
)

// nodeView is what a checker or ranker sees of a node: the node, what is
// still free on it (after placements made earlier in this call) and how
// many instances of the service being placed it already runs. It is passed
// by value so checking does not allocate.
type nodeView struct {
	Node  *model.Node
	Free  model.Resources
	Count int
}

// checker is one feasibility filter. Name is its key in
// Explanation.Filtered; Reason completes "N nodes …", e.g. "lack 2 CPU".
type checker interface {
	Name() string
	Reason() string
	Feasible(v nodeView) bool
}

// datacenterChecker admits the datacenters a service may use: those with
// a positive weight, or every datacenter when the service has no weights.
// It works on whole datacenters, since nodes are grouped by datacenter
// before the node checkers run.
type datacenterChecker struct{ weights map[string]int }

func (c datacenterChecker) Allows(dc string) bool {
	if len(c.weights) == 0 {
		return true
	}
	return c.weights[dc] > 0
}

// partitionChecker admits nodes in one of the listed partitions; an empty
// list admits every node.
type partitionChecker struct{ partitions []string }

func (c partitionChecker) Name() string { return FilterPartition }

func (c partitionChecker) Reason() string {
	if len(c.partitions) == 1 {
		return "not in partition " + c.partitions[0]
	}
	return "not in partitions " + strings.Join(c.partitions, ", ")
}

func (c partitionChecker) Feasible(v nodeView) bool {
	return len(c.partitions) == 0 || slices.Contains(c.partitions, v.Node.Partition)
}

// labelChecker admits nodes that have every wanted label with its value.
type labelChecker struct{ labels map[string]string }

func (c labelChecker) Name() string { return FilterLabels }

func (c labelChecker) Reason() string {
	pairs := make([]string, 0, len(c.labels))
	for k, v := range c.labels {
		pairs = append(pairs, k+"="+v)
	}
	sort.Strings(pairs)
	return "lack labels " + strings.Join(pairs, ", ")
}

func (c labelChecker) Feasible(v nodeView) bool {
	for k, want := range c.labels {
		if got, ok := v.Node.Labels[k]; !ok || got != want {
			return false
		}
	}
	return true
}

// antiAffinityChecker, when enabled, admits only nodes without an instance
// of the service.
type antiAffinityChecker struct {
	service string
	enabled bool
}

func (c antiAffinityChecker) Name() string   { return FilterAntiAffinity }
func (c antiAffinityChecker) Reason() string { return "already run " + c.service }
func (c antiAffinityChecker) Feasible(v nodeView) bool {
	return !c.enabled || v.Count == 0
}

// cpuFitChecker admits nodes with at least the requested CPU free.
type cpuFitChecker struct{ need model.Millicores }

func (c cpuFitChecker) Name() string             { return FilterCPU }
func (c cpuFitChecker) Reason() string           { return "lack " + c.need.String() + " CPU" }
func (c cpuFitChecker) Feasible(v nodeView) bool { return v.Free.MilliCPU >= c.need }

// memoryFitChecker admits nodes with at least the requested memory free.
type memoryFitChecker struct{ need model.Bytes }

func (c memoryFitChecker) Name() string             { return FilterMemory }
func (c memoryFitChecker) Reason() string           { return "lack " + c.need.String() + " memory" }
func (c memoryFitChecker) Feasible(v nodeView) bool { return v.Free.MemoryBytes >= c.need }

// staticCheckers are the checkers whose answer cannot change during one
// Schedule call; they run once per node and request.
func staticCheckers(s *model.Service) []checker {
	var cs []checker
	if len(s.Placement.Partitions) > 0 {
		cs = append(cs, partitionChecker{s.Placement.Partitions})
	}
	if len(s.Placement.NodeLabels) > 0 {
		cs = append(cs, labelChecker{s.Placement.NodeLabels})
	}
	return cs
}

// dynamicCheckers depend on placements made in this call; they run for
// every instance on every candidate node. Capacity only shrinks and
// instance counts only grow during a call, so a node they reject stays
// rejected.
func dynamicCheckers(s *model.Service) []checker {
	cs := []checker{cpuFitChecker{s.Requests.MilliCPU}, memoryFitChecker{s.Requests.MemoryBytes}}
	if s.Placement.AntiAffinity {
		cs = append([]checker{antiAffinityChecker{s.Name, true}}, cs...)
	}
	return cs
}

// firstFailing returns the first checker in chain that rejects v, or nil.
func firstFailing(chain []checker, v nodeView) checker {
	for _, c := range chain {
		if !c.Feasible(v) {
			return c
		}
	}
	return nil
}
