package rootcause

import "math"

type weightedEdge struct {
	to int
	w  float64
}

// personalizedPageRank runs power iteration of
//
//	x = damp·Pᵀx + (1-damp)·v/|v|
//
// where row i of P sends stay[i] back to i and out[i][k].w to out[i][k].to
// (each row sums to 1). A node that keeps its mass (a service with no
// anomalous callee that explains it) collects the walkers of everything
// that calls it, which is what makes it the likely origin. gonum's
// network.PageRank has no personalisation vector or self-loops, and the
// anomalous subgraph is small, so this is a plain O(iterations·edges) loop.
func personalizedPageRank(out [][]weightedEdge, stay, v []float64, damp float64) []float64 {
	n := len(v)
	var total float64
	for _, p := range v {
		total += p
	}
	tele := make([]float64, n)
	for i, p := range v {
		tele[i] = p / total
	}
	x := append([]float64(nil), tele...)
	next := make([]float64, n)
	for iter := 0; iter < 500; iter++ {
		for i := range next {
			next[i] = (1 - damp) * tele[i]
		}
		for i, xi := range x {
			m := damp * xi
			next[i] += m * stay[i]
			for _, e := range out[i] {
				next[e.to] += m * e.w
			}
		}
		var diff float64
		for i := range x {
			diff += math.Abs(next[i] - x[i])
		}
		x, next = next, x
		if diff < 1e-12 {
			break
		}
	}
	return x
}
