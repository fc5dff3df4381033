package analyzer

import (
	"math"
	"testing"
)

func TestDecompose(t *testing.T) {
	const perDay, days = 288, 10
	const at = 6 * perDay // breaks start at day 6, 00:00
	tests := []struct {
		name     string
		cfg      DecomposeConfig
		brk      func(xs []float64) // nil: clean
		from, to int                // checked span
		quiet    bool               // want every score below tailScore(5); else max >= tailScore(6)
	}{
		{name: "clean daily wave after 2 days", cfg: DecomposeConfig{Period: perDay}, from: 2 * perDay, to: days * perDay, quiet: true},
		{name: "clean daily wave, detected period", cfg: DecomposeConfig{MaxPeriod: 300}, from: 4 * perDay, to: days * perDay, quiet: true},
		{name: "wave shifts half a period", cfg: DecomposeConfig{Period: perDay}, brk: func(xs []float64) {
			for i := at; i < len(xs); i++ {
				xs[i] -= 20 * math.Sin(2*math.Pi*float64(i)/perDay) // sin(x+pi) = -sin(x)
			}
		}, from: at, to: at + perDay},
		{name: "wave disappears", cfg: DecomposeConfig{Period: perDay}, brk: func(xs []float64) {
			for i := at; i < len(xs); i++ {
				xs[i] -= 10 * math.Sin(2*math.Pi*float64(i)/perDay)
			}
		}, from: at, to: at + perDay},
		{name: "trough held at the peak level (within the range)", cfg: DecomposeConfig{Period: perDay}, brk: func(xs []float64) {
			for i := at + 216; i < at+240; i++ {
				xs[i] += 20
			}
		}, from: at + 216, to: at + 240},
		{name: "spike", cfg: DecomposeConfig{Period: perDay}, brk: func(xs []float64) { xs[at+100] += 12 }, from: at + 100, to: at + 101},
		{name: "dip", cfg: DecomposeConfig{Period: perDay}, brk: func(xs []float64) { xs[at+100] -= 12 }, from: at + 100, to: at + 101},
		{name: "spike, detected period", cfg: DecomposeConfig{MaxPeriod: 300}, brk: func(xs []float64) { xs[at+100] += 12 }, from: at + 100, to: at + 101},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts, xs := dailyWave(days, 7)
			if tc.brk != nil {
				tc.brk(xs)
			}
			m := NewDecompose(tc.cfg)
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
			if p := m.Period(); tc.cfg.Period == 0 && (p < perDay-1 || p > perDay+1) {
				t.Errorf("detected period %d, want %d±1", p, perDay)
			}
			if tc.quiet && hi >= tailScore(5) {
				t.Errorf("max score %.4f on a clean wave, want < %.4f (z 5)", hi, tailScore(5))
			}
			if !tc.quiet && hi < tailScore(6) {
				t.Errorf("max score %.4f, want >= %.4f (z 6)", hi, tailScore(6))
			}
		})
	}
}

// Before its first full period the model only learns; without a period
// to find it scores residuals from the level alone.
func TestDecomposeWarmupAndNoPeriod(t *testing.T) {
	tests := []struct {
		name   string
		cfg    DecomposeConfig
		xs     []float64
		silent int // points that must score 0
	}{
		{"given period: 2 periods silent", DecomposeConfig{Period: 50}, noisySine(400, 3), 100},
		{"detecting: buffer silent", DecomposeConfig{MaxPeriod: 60}, noisySine(400, 3), 180},
		{"noise, no period", DecomposeConfig{MaxPeriod: 60}, stepSeries(1000, 1000, 3, nil), 180},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewDecompose(tc.cfg)
			rs := run(m, tc.xs)
			if s := maxScore(rs, 0, tc.silent); s != 0 {
				t.Errorf("score %.4f during warm-up", s)
			}
			if s := maxScore(rs, tc.silent, len(rs)); s >= tailScore(5) || s == 0 {
				t.Errorf("max score %.4f after warm-up, want in (0, %.4f)", s, tailScore(5))
			}
		})
	}
}

func TestDecomposeBounds(t *testing.T) {
	ts, xs := dailyWave(6, 8)
	m := NewDecompose(DecomposeConfig{Period: 288})
	in := 0
	for i := range xs {
		r := m.Observe(ts[i], xs[i])
		if i < 2*288 {
			continue
		}
		if r.Lower > r.Upper || math.IsNaN(r.Expected) {
			t.Fatalf("point %d: bad result %+v", i, r)
		}
		if xs[i] >= r.Lower && xs[i] <= r.Upper {
			in++
		}
	}
	if frac := float64(in) / (4 * 288); frac < 0.98 {
		t.Errorf("bounds contain %.1f%% of values", 100*frac)
	}
}
