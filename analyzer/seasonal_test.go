package analyzer

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// dailyWave is a 5-minute series with a daily sine (amplitude 10) and
// Gaussian noise (sigma 1), starting at t0.
func dailyWave(days int, seed uint64) ([]time.Time, []float64) {
	const perDay = 288
	rng := rand.New(rand.NewPCG(seed, 2))
	ts := make([]time.Time, days*perDay)
	xs := make([]float64, days*perDay)
	for i := range xs {
		ts[i] = t0.Add(time.Duration(i) * 5 * time.Minute)
		xs[i] = 100 + 10*math.Sin(2*math.Pi*float64(i)/perDay) + rng.NormFloat64()
	}
	return ts, xs
}

func TestSeasonal(t *testing.T) {
	const perDay = 288
	tests := []struct {
		name  string
		brk   func(xs []float64) // alters the series; nil for clean
		from  int                // first point of the checked span
		to    int
		quiet bool // want every score in the span below 0.03 (z ~5)
	}{
		{name: "clean wave after warm-up", from: 3 * perDay, to: 10 * perDay, quiet: true},
		{
			// Day 8's trough (around 18:00) stays at the daily peak level
			// for two hours: within the series' range, so only a
			// time-of-day baseline sees it.
			name: "break in the daily pattern",
			brk: func(xs []float64) {
				for i := 7*perDay + 216; i < 7*perDay+240; i++ {
					xs[i] += 20
				}
			},
			from: 7*perDay + 216, to: 7*perDay + 240,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts, xs := dailyWave(10, 7)
			if tc.brk != nil {
				tc.brk(xs)
			}
			m := NewSeasonal(SeasonalConfig{})
			hi := 0.0
			for i := range xs {
				r := m.Observe(ts[i], xs[i])
				if r.Score < 0 || r.Score > 1 || math.IsNaN(r.Score) {
					t.Fatalf("point %d: score %v out of [0,1]", i, r.Score)
				}
				if i >= tc.from && i < tc.to {
					hi = math.Max(hi, r.Score)
				}
			}
			t.Logf("max score in span: %.4f", hi)
			if tc.quiet && hi >= 0.03 {
				t.Errorf("max score %.4f on a clean daily wave, want < 0.03", hi)
			}
			if !tc.quiet && hi < 0.05 {
				t.Errorf("max score %.4f on a broken daily pattern, want >= 0.05", hi)
			}
		})
	}
}

func TestSeasonalNaNLeavesStateUntouched(t *testing.T) {
	ts, xs := dailyWave(4, 9)
	a, b := NewSeasonal(SeasonalConfig{}), NewSeasonal(SeasonalConfig{})
	for i := range xs {
		ra := a.Observe(ts[i], xs[i])
		if i%97 == 0 {
			b.Observe(ts[i], math.NaN())
		}
		rb := b.Observe(ts[i], xs[i])
		if ra != rb {
			t.Fatalf("point %d: %+v after NaNs, want %+v", i, rb, ra)
		}
	}
}
