package analyzer

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// kpis is n points of (throughput, latency, errors): throughput wanders
// (AR(1), sd about 100 around 1000), latency and errors rise with it, each
// with its own small noise.
func kpis(n int, seed uint64) [][]float64 {
	rng := rand.New(rand.NewPCG(seed, 6))
	xs := make([][]float64, n)
	g := 0.0
	for i := range xs {
		g = 0.7*g + math.Sqrt(1-0.49)*rng.NormFloat64()
		thr := 1000 + 100*g
		xs[i] = []float64{thr, 50 + 0.2*(thr-1000) + 2*rng.NormFloat64(), 5 + 0.02*(thr-1000) + 0.3*rng.NormFloat64()}
	}
	return xs
}

func TestMultivariate(t *testing.T) {
	const n, at = 2000, 1500
	const thr, lat, errs = 0, 1, 2
	tests := []struct {
		name    string
		mutate  func(x []float64) // applied to point at; nil: clean
		wantDim int               // dimension Contrib must point at; -1: none
		high    bool
	}{
		{name: "clean correlated movement", wantDim: -1},
		{name: "busy but consistent: all three at throughput +2.5 sd", mutate: func(x []float64) {
			x[thr] = 1250
			x[lat], x[errs] = 50+0.2*250, 5+0.02*250
		}, wantDim: -1},
		{name: "latency low while throughput is high (each within its range)", mutate: func(x []float64) {
			x[thr] = 1150
			x[lat], x[errs] = 50-0.2*150, 5+0.02*150 // latency of a quiet hour
		}, wantDim: lat, high: true},
		{name: "errors high at normal traffic (within their range)", mutate: func(x []float64) {
			x[thr] = 950
			x[lat], x[errs] = 50-0.2*50, 5+0.02*180
		}, wantDim: errs, high: true},
		{name: "throughput drops, latency and errors do not", mutate: func(x []float64) {
			x[thr] = 820
			x[lat], x[errs] = 50+0.2*150, 5+0.02*150
		}, wantDim: thr, high: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			xs := kpis(n, 3)
			if tc.mutate != nil {
				tc.mutate(xs[at])
			}
			// Every value of the mutated point lies inside its series' clean range.
			for j := range 3 {
				lo, hi := math.Inf(1), math.Inf(-1)
				for i, x := range xs {
					if i != at {
						lo, hi = math.Min(lo, x[j]), math.Max(hi, x[j])
					}
				}
				if v := xs[at][j]; v < lo || v > hi {
					t.Fatalf("dimension %d: value %.1f outside the clean range [%.1f, %.1f]", j, v, lo, hi)
				}
			}
			m := NewMultivariate(3, MultivariateConfig{})
			var hit VecResult
			cleanMax := 0.0
			for i, x := range xs {
				r := m.ObserveVec(t0.Add(time.Duration(i)*time.Minute), x)
				if r.Score < 0 || r.Score > 1 || math.IsNaN(r.Score) {
					t.Fatalf("point %d: score %v", i, r.Score)
				}
				if i == at {
					hit = r
				} else if i >= 100 {
					cleanMax = math.Max(cleanMax, r.Score)
				}
			}
			t.Logf("score at %d: %.4f (clean max %.4f), contrib %.2f, expected %.1f", at, hit.Score, cleanMax, hit.Contrib, hit.Expected)
			if cleanMax >= tailScore(5) {
				t.Errorf("clean points score up to %.4f, want < %.4f", cleanMax, tailScore(5))
			}
			if tc.high && (hit.Score < tailScore(6) || hit.Score < 2*cleanMax) {
				t.Errorf("joint anomaly scored %.4f, want >= %.4f and > 2x clean max", hit.Score, tailScore(6))
			}
			if !tc.high && hit.Score >= tailScore(5) {
				t.Errorf("consistent point scored %.4f, want < %.4f", hit.Score, tailScore(5))
			}
			if tc.wantDim >= 0 {
				for j, c := range hit.Contrib {
					if j != tc.wantDim && c >= hit.Contrib[tc.wantDim] {
						t.Errorf("contrib %.2f: dimension %d, not %d, carries the most", hit.Contrib, j, tc.wantDim)
					}
				}
				if e := hit.Expected[tc.wantDim]; xs[at][tc.wantDim] >= hit.Lower[tc.wantDim] && xs[at][tc.wantDim] <= hit.Upper[tc.wantDim] {
					t.Errorf("broken value %.1f inside its conditional bounds around %.1f", xs[at][tc.wantDim], e)
				}
			}
		})
	}
}

func TestMultivariateNaNAndDims(t *testing.T) {
	xs := kpis(300, 4)
	a, b := NewMultivariate(3, MultivariateConfig{}), NewMultivariate(3, MultivariateConfig{})
	for i, x := range xs {
		if i%37 == 5 {
			if r := b.ObserveVec(t0, []float64{x[0], math.NaN(), x[2]}); r.Score != 0 || !math.IsNaN(r.Expected[0]) {
				t.Fatalf("NaN vector: %+v", r)
			}
		}
		ra, rb := a.ObserveVec(t0, x), b.ObserveVec(t0, x)
		if ra.Score != rb.Score || ra.Expected[1] != rb.Expected[1] {
			t.Fatalf("point %d: state changed by a NaN vector", i)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("no panic on a vector of the wrong length")
		}
	}()
	a.ObserveVec(t0, []float64{1, 2})
}
