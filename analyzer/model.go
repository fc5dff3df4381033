package analyzer

import (
	"math"
	"time"
)

// Result is one model's verdict on one point.
type Result struct {
	// Score is the anomaly score in [0,1]; higher is more anomalous.
	Score float64
	// Expected is the model's forecast for the point before it saw it.
	Expected float64
	// Lower and Upper bound the values the model considers normal.
	Lower, Upper float64
}

// Model scores a series one point at a time. Implementations are causal:
// the result for a point depends only on that point and earlier ones.
// A Model is not safe for concurrent use; use one per series.
type Model interface {
	Observe(t time.Time, v float64) Result
}

// nanResult is what models return for a NaN input, leaving state untouched.
var nanResult = Result{Expected: math.NaN(), Lower: math.NaN(), Upper: math.NaN()}

// maxZ caps z-scores so tail probabilities stay finite and ranked.
const maxZ = 37

// tailScore maps |z| to [0,1] through the two-sided normal tail
// probability p: score = -log10(p)/scoreDecades, clipped. The log keeps
// huge deviations ranked above merely large ones instead of saturating at 1.
func tailScore(z float64) float64 {
	z = math.Abs(z)
	if math.IsNaN(z) {
		return 0
	}
	if z > maxZ {
		z = maxZ
	}
	p := math.Erfc(z / math.Sqrt2)
	if p <= 0 {
		return 1
	}
	s := -math.Log10(p) / scoreDecades
	return math.Min(1, math.Max(0, s))
}

// TailScore is the shared calibration: the score of a deviation of z
// sigmas.
func TailScore(z float64) float64 { return tailScore(z) }

// scoreDecades is the number of decades of tail probability that map to a
// score of 1 (p = 1e-300 ~ z 37).
const scoreDecades = 300
