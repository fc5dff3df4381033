package analyzer

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestDetectPeriod(t *testing.T) {
	rng := func(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 4)) }
	series := func(n int, seed uint64, f func(i int, r *rand.Rand) float64) []float64 {
		r := rng(seed)
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = f(i, r)
		}
		return xs
	}
	tests := []struct {
		name     string
		xs       []float64
		min, max int
		want     int // 0: no period
		tol      int
	}{
		{"noisy sine 288", series(288*5, 1, func(i int, r *rand.Rand) float64 {
			return 100 + 10*math.Sin(2*math.Pi*float64(i)/288) + 2*r.NormFloat64()
		}), 4, 400, 288, 3},
		{"square wave 60", series(600, 2, func(i int, r *rand.Rand) float64 {
			return float64((i/30)%2)*5 + 0.5*r.NormFloat64()
		}), 4, 200, 60, 1},
		{"daily+weekly (24, 168): the dominant daily", series(168*4, 3, func(i int, r *rand.Rand) float64 {
			return 10*math.Sin(2*math.Pi*float64(i)/24) + 5*math.Sin(2*math.Pi*float64(i)/168) + r.NormFloat64()
		}), 4, 200, 24, 1},
		{"sine on a trend", series(1000, 4, func(i int, r *rand.Rand) float64 {
			return 0.05*float64(i) + 3*math.Sin(2*math.Pi*float64(i)/50) + r.NormFloat64()
		}), 4, 300, 50, 1},
		{"white noise", series(2000, 5, func(i int, r *rand.Rand) float64 { return r.NormFloat64() }), 4, 600, 0, 0},
		{"linear trend", series(2000, 6, func(i int, r *rand.Rand) float64 { return 3 + 0.1*float64(i) }), 4, 600, 0, 0},
		{"noisy linear trend", series(2000, 7, func(i int, r *rand.Rand) float64 { return 0.1*float64(i) + r.NormFloat64() }), 4, 600, 0, 0},
		{"constant", series(500, 8, func(int, *rand.Rand) float64 { return 7 }), 4, 100, 0, 0},
		{"too short for 3 periods", series(100, 9, func(i int, r *rand.Rand) float64 {
			return math.Sin(2 * math.Pi * float64(i) / 50)
		}), 40, 60, 0, 0},
		{"NaN inside", append(series(300, 10, func(i int, r *rand.Rand) float64 {
			return math.Sin(2 * math.Pi * float64(i) / 20)
		}), math.NaN()), 4, 100, 0, 0},
	}
	for seed := uint64(0); seed < 8; seed++ {
		walk := 0.0
		tests = append(tests, struct {
			name     string
			xs       []float64
			min, max int
			want     int
			tol      int
		}{"random walk", series(2000, 100+seed, func(i int, r *rand.Rand) float64 {
			walk += r.NormFloat64()
			return walk
		}), 4, 600, 0, 0})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, s := DetectPeriod(tc.xs, tc.min, tc.max)
			if s < 0 || s > 1 || math.IsNaN(s) {
				t.Fatalf("strength %v outside [0,1]", s)
			}
			if tc.want == 0 {
				if p != 0 || s != 0 {
					t.Errorf("got period %d (strength %.2f), want none", p, s)
				}
				return
			}
			if p < tc.want-tc.tol || p > tc.want+tc.tol {
				t.Errorf("got period %d (strength %.2f), want %d±%d", p, s, tc.want, tc.tol)
			}
			if s < periodMinACF {
				t.Errorf("strength %.2f below %.2f", s, periodMinACF)
			}
		})
	}
}

func TestPeriodTracker(t *testing.T) {
	tr := NewPeriodTracker(4, 100, 50)
	r := rand.New(rand.NewPCG(1, 1))
	var p int
	var s float64
	for i := 0; i < 600; i++ {
		v := 5*math.Sin(2*math.Pi*float64(i)/40) + r.NormFloat64()
		if i%50 == 7 {
			v = math.NaN()
		}
		p, s = tr.Add(v)
		if i < 290 && p != 0 {
			t.Fatalf("point %d: period %d before the buffer filled", i, p)
		}
	}
	if p < 39 || p > 41 || s < 0.5 {
		t.Errorf("period %d strength %.2f, want 40", p, s)
	}
	// The period disappears: white noise for long enough replaces the buffer.
	for i := 0; i < 400; i++ {
		p, _ = tr.Add(r.NormFloat64())
	}
	if p != 0 {
		t.Errorf("period %d after the wave stopped, want 0", p)
	}
}
