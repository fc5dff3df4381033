package analyzer

import (
	"math"
	"math/rand/v2"
	"testing"
)

// stepSeries is Gaussian noise (sigma 1) around 50 with a change at `at`
// applied by f.
func stepSeries(n, at int, seed uint64, f func(i int, v float64) float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 5))
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = 50 + rng.NormFloat64()
		if i >= at {
			xs[i] = f(i, xs[i])
		}
	}
	return xs
}

func TestBOCPD(t *testing.T) {
	const n, at = 1500, 1000
	tests := []struct {
		name   string
		change func(i int, v float64) float64
		minHit float64 // max score in [at, at+20) must reach this
		// and exceed the clean run's max this many times
		vsClean float64
	}{
		{"level shift +8 sigma", func(_ int, v float64) float64 { return v + 8 }, tailScore(5), 2},
		{"level shift -8 sigma", func(_ int, v float64) float64 { return v - 8 }, tailScore(5), 2},
		{"spike", func(i int, v float64) float64 {
			if i == at {
				return v + 30
			}
			return v
		}, tailScore(10), 2},
		{"dip", func(i int, v float64) float64 {
			if i == at {
				return v - 30
			}
			return v
		}, tailScore(10), 2},
	}
	clean := run(NewBOCPD(BOCPDConfig{}), stepSeries(n, n, 1, nil))
	base := maxScore(clean, 100, n)
	if base > tailScore(4.5) {
		t.Errorf("clean noise: max score %.4f after warm-up, want < %.4f", base, tailScore(4.5))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := run(NewBOCPD(BOCPDConfig{}), stepSeries(n, at, 1, tc.change))
			if got := maxScore(rs, at, at+20); got < tc.minHit || got <= tc.vsClean*base {
				t.Errorf("max score %.4f near the change, want >= %.4f and > %vx clean %.4f", got, tc.minHit, tc.vsClean, base)
			}
			if pre := maxScore(rs, 100, at); pre != maxScore(clean, 100, at) {
				t.Errorf("scores before the change differ from the clean run: not causal")
			}
		})
	}
}

// A change need not score high on any one point (a variance change, or a
// shift the predictive half expects) to move the run-length posterior:
// ChangeProb stays below 0.8 on noise and passes it within a few points
// of the change, and the run length then counts from the change.
func TestBOCPDChangeProb(t *testing.T) {
	const at = 500
	tests := []struct {
		name   string
		change func(i int, v float64) float64
	}{
		{"shift -4 sigma", func(_ int, v float64) float64 { return v - 4 }},
		{"shift +4 sigma", func(_ int, v float64) float64 { return v + 4 }},
		{"shift +6 sigma", func(_ int, v float64) float64 { return v + 6 }},
		{"shift -10 sigma", func(_ int, v float64) float64 { return v - 10 }},
		{"variance x6", func(_ int, v float64) float64 { return 50 + 6*(v-50) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewBOCPD(BOCPDConfig{})
			xs := stepSeries(800, at, 2, tc.change)
			falseAlarms, after, runAfter := 0, 0.0, 0
			for i, x := range xs {
				m.Observe(t0, x)
				switch {
				case i >= 100 && i < at && m.ChangeProb() >= 0.8:
					falseAlarms++
				case i >= at && i < at+10:
					after = math.Max(after, m.ChangeProb())
				case i == at+29:
					runAfter = m.RunLength()
				}
			}
			if falseAlarms > 0 || after < 0.8 {
				t.Errorf("change probability >= 0.8 at %d of 400 points before, up to %.3f within 10 points after; want 0, then >= 0.8", falseAlarms, after)
			}
			if runAfter < 25 || runAfter > 32 {
				t.Errorf("run length %d 30 points after the change, want about 30", runAfter)
			}
		})
	}
}

// Standardisation makes BOCPD scale-free: an affine image of a series
// scores (nearly) the same.
func TestBOCPDScaleFree(t *testing.T) {
	xs := stepSeries(1200, 800, 3, func(_ int, v float64) float64 { return v + 4 })
	ys := make([]float64, len(xs))
	for i, x := range xs {
		ys[i] = 1e6*x - 3e7
	}
	a, b := run(NewBOCPD(BOCPDConfig{}), xs), run(NewBOCPD(BOCPDConfig{}), ys)
	for i := range a {
		if math.Abs(a[i].Score-b[i].Score) > 1e-6 {
			t.Fatalf("point %d: score %.6f vs %.6f after scaling", i, a[i].Score, b[i].Score)
		}
	}
}

func TestBOCPDBounds(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
	}{
		{"noise", stepSeries(3000, 3000, 4, nil)},
		{"noise with a shift", stepSeries(3000, 1500, 5, func(_ int, v float64) float64 { return v + 10 })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := run(NewBOCPD(BOCPDConfig{}), tc.xs)
			in := 0
			for i, r := range rs[100:] {
				if r.Lower > r.Expected || r.Expected > r.Upper || math.IsNaN(r.Expected) {
					t.Fatalf("point %d: bad result %+v", i+100, r)
				}
				if x := tc.xs[i+100]; x >= r.Lower && x <= r.Upper {
					in++
				}
			}
			if frac := float64(in) / float64(len(rs)-100); frac < 0.97 {
				t.Errorf("99%% bounds contain %.1f%% of values", 100*frac)
			}
		})
	}
}
