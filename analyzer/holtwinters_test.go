package analyzer

import (
	"math"
	"testing"
)

// Holt-Winters, fitted after three days of a daily wave, stays quiet on the
// clean wave and flags a break in the pattern, a spike, a dip and a
// flatline; its band follows the wave.
func TestHoltWintersModel(t *testing.T) {
	const perDay = 288
	alarm := tailScore(4)
	tests := []struct {
		name     string
		brk      func(xs []float64)
		from, to int
		quiet    bool
	}{
		{name: "clean wave after the fit", from: 4 * perDay, to: 8 * perDay, quiet: true},
		{name: "break in the daily pattern", brk: func(xs []float64) {
			for i := 5*perDay + 216; i < 5*perDay+240; i++ {
				xs[i] += 20
			}
		}, from: 5*perDay + 216, to: 5*perDay + 240},
		{name: "spike", brk: func(xs []float64) { xs[5*perDay+100] += 15 }, from: 5*perDay + 100, to: 5*perDay + 101},
		{name: "dip", brk: func(xs []float64) { xs[5*perDay+100] -= 15 }, from: 5*perDay + 100, to: 5*perDay + 101},
		{name: "flatline", brk: func(xs []float64) {
			for i := 5*perDay + 60; i < 6*perDay; i++ {
				xs[i] = xs[5*perDay+60]
			}
		}, from: 5*perDay + 60, to: 6 * perDay},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts, xs := dailyWave(8, 11)
			if tc.brk != nil {
				tc.brk(xs)
			}
			m := NewHoltWinters(HoltWintersConfig{})
			hi := 0.0
			inBand := 0
			for i := range xs {
				r := m.Observe(ts[i], xs[i])
				if r.Score < 0 || r.Score > 1 || math.IsNaN(r.Score) {
					t.Fatalf("point %d: score %v out of [0,1]", i, r.Score)
				}
				if i >= tc.from && i < tc.to {
					hi = math.Max(hi, r.Score)
					if xs[i] >= r.Lower && xs[i] <= r.Upper {
						inBand++
					}
				}
			}
			p, ok := m.Params()
			if !ok {
				t.Fatal("never fitted")
			}
			t.Logf("max score %.4f (alarm %.4f); alpha %.3f gammas %v sigma %.3f", hi, alarm, p.Alpha, p.Gammas, p.Sigma)
			if tc.quiet {
				if hi >= alarm {
					t.Errorf("clean wave scored %.4f, want < %.4f", hi, alarm)
				}
				if inBand != tc.to-tc.from {
					t.Errorf("%d of %d clean points outside the band", tc.to-tc.from-inBand, tc.to-tc.from)
				}
			} else if hi < alarm {
				t.Errorf("max score %.4f, want >= %.4f", hi, alarm)
			}
		})
	}
}
