package scheduler

import "opspilot/orchestrator/model"

// ranker scores a feasible node for one more instance needing need;
// the highest score wins, ties going to the node that comes first by name.
type ranker interface {
	Name() string
	Score(v nodeView, need model.Resources) float64
}

// spreadRanker prefers the node with the fewest instances of the service,
// then the one least allocated after placing the instance.
type spreadRanker struct{}

func (spreadRanker) Name() string { return model.StrategySpread }

func (spreadRanker) Score(v nodeView, need model.Resources) float64 {
	// The fraction is within [0, 1] for a node the instance fits on, so
	// one more instance always outweighs any difference in allocation.
	return -(2*float64(v.Count) + allocatedFraction(v, need))
}

// binpackRanker prefers the node most allocated after placing the
// instance, filling nodes before starting new ones.
type binpackRanker struct{}

func (binpackRanker) Name() string { return model.StrategyBinpack }

func (binpackRanker) Score(v nodeView, need model.Resources) float64 {
	return allocatedFraction(v, need)
}

// allocatedFraction is the node's dominant allocated fraction (the larger
// of CPU and memory) once need is placed on it. Resources the node has no
// capacity of are ignored.
func allocatedFraction(v nodeView, need model.Resources) float64 {
	capacity := v.Node.Capacity
	f := 0.0
	if capacity.MilliCPU > 0 {
		f = 1 - float64(v.Free.MilliCPU-need.MilliCPU)/float64(capacity.MilliCPU)
	}
	if capacity.MemoryBytes > 0 {
		f = max(f, 1-float64(v.Free.MemoryBytes-need.MemoryBytes)/float64(capacity.MemoryBytes))
	}
	return f
}

func rankerFor(strategy string) ranker {
	if strategy == model.StrategyBinpack {
		return binpackRanker{}
	}
	return spreadRanker{}
}
