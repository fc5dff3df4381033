package analyzer

import (
	"math"
	"testing"
)

// TestDefaultQuietOnCleanWaves: clean periodic series with Gaussian noise
// (a 5-minute daily sine over 14 days, and a 50-point sine) must not alarm
// once the default detector has warmed up (a day, or 300 points), for any
// of 20 noise seeds. Chance records of the noise are what this guards:
// Novelty's noise margin exists for them.
func TestDefaultQuietOnCleanWaves(t *testing.T) {
	const perDay, alarm = 288, 0.015
	for seed := uint64(1); seed <= 20; seed++ {
		ts, xs := dailyWave(14, seed)
		m := NewDefaultEnsemble()
		for i := range xs {
			if r := m.Observe(ts[i], xs[i]); i >= perDay && r.Score >= alarm {
				t.Errorf("daily wave seed %d: point %d (day %d) scored %.4f", seed, i, i/perDay, r.Score)
			}
		}
		rs := run(NewDefaultEnsemble(), noisySine(3000, seed))
		for i := 300; i < len(rs); i++ {
			if rs[i].Score >= alarm {
				t.Errorf("noisy sine seed %d: point %d scored %.4f", seed, i, rs[i].Score)
			}
		}
	}
}

// TestDefaultQuietOnLongCleanWaves is TestDefaultQuietOnCleanWaves over
// four weeks and 8,000 points: ARTime's vigilances keep rising on a
// well-learnt wave, and at a higher weight its noise-made clusters alarmed
// in the third and fourth weeks.
func TestDefaultQuietOnLongCleanWaves(t *testing.T) {
	if testing.Short() {
		t.Skip("long series")
	}
	const perDay, alarm = 288, 0.015
	for seed := uint64(1); seed <= 20; seed++ {
		ts, xs := dailyWave(28, seed)
		m := NewDefaultEnsemble()
		for i := range xs {
			if r := m.Observe(ts[i], xs[i]); i >= perDay && r.Score >= alarm {
				t.Errorf("daily wave seed %d: point %d (day %d) scored %.4f", seed, i, i/perDay, r.Score)
			}
		}
		rs := run(NewDefaultEnsemble(), noisySine(8000, seed))
		for i := 300; i < len(rs); i++ {
			if rs[i].Score >= alarm {
				t.Errorf("noisy sine seed %d: point %d scored %.4f", seed, i, rs[i].Score)
			}
		}
	}
}

// TestDefaultFindsChanges: the default detector alarms (score >= 0.015)
// soon after a spike, a dip, a level shift and a variance increase on a
// noisy sine, and not on the same series left clean.
func TestDefaultFindsChanges(t *testing.T) {
	const n, at = 2000, 1400
	cases := []struct {
		name   string
		mutate func(xs []float64)
		within int
	}{
		{"spike", func(xs []float64) { xs[at] += 60 }, 1},
		{"dip", func(xs []float64) { xs[at] -= 60 }, 1},
		{"level shift", func(xs []float64) {
			for i := at; i < n; i++ {
				xs[i] += 30
			}
		}, 5},
		{"variance change", func(xs []float64) {
			xs2 := noisySine(n, 99)
			for i := at; i < n; i++ {
				xs[i] += 8 * (xs2[i] - (100 + 10*math.Sin(2*math.Pi*float64(i)/50)))
			}
		}, 50},
	}
	clean := run(NewDefaultEnsemble(), noisySine(n, 41))
	if s := maxScore(clean, 300, n); s >= 0.015 {
		t.Fatalf("clean noisy sine scored %.4f after warm-up", s)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			xs := noisySine(n, 41)
			c.mutate(xs)
			rs := run(NewDefaultEnsemble(), xs)
			if s := maxScore(rs, at, at+c.within); s < 0.015 {
				t.Errorf("max score %.4f within %d points of the change, want an alarm (>= 0.015)", s, c.within)
			}
		})
	}
}

// TestPatternSeesFlatline: a series that freezes at a mid-range value is
// a new shape for Pattern (the default ensemble's value models do not
// alarm on it: the value is normal, only its stillness is not).
func TestPatternSeesFlatline(t *testing.T) {
	xs := noisySine(1500, 43)
	for i := 1000; i < 1500; i++ {
		xs[i] = 100
	}
	m := NewPattern(PatternConfig{Window: 4, Step: 2})
	maxD := 0.0
	for i, x := range xs {
		m.Observe(t0, x)
		if i >= 1000 && i < 1020 {
			maxD = math.Max(maxD, m.Distance())
		}
	}
	if maxD < 0.1 {
		t.Errorf("flatline distance %.3f, want a new shape (>= 0.1)", maxD)
	}
}

// TestNoveltyNoiseMargin: with a noise margin, a record within the noise
// scores 0, a record well beyond it scores, and with Confirm a second
// record in a row scores even within the noise.
func TestNoveltyNoiseMargin(t *testing.T) {
	base := func() []float64 { // alternating 0, 1: |change| median 1
		xs := make([]float64, 300)
		for i := range xs {
			xs[i] = float64(i % 2)
		}
		return xs
	}
	score := func(cfg NoveltyConfig, tail ...float64) []float64 {
		m := NewNovelty(cfg)
		var out []float64
		for _, x := range append(base(), tail...) {
			out = append(out, m.Observe(t0, x).Score)
		}
		return out[300:]
	}
	cfg := NoveltyConfig{Gain: 100, NoiseMargin: 2}
	if s := score(cfg, 1.5); s[0] != 0 {
		t.Errorf("record within the noise scored %v", s[0])
	}
	if s := score(cfg, 4); s[0] < tailScore(4) {
		t.Errorf("record 3 noise units out scored %v", s[0])
	}
	cfg.Confirm = true
	if s := score(cfg, 1.5, 1.6); s[0] != 0 || s[1] == 0 {
		t.Errorf("run of records within the noise scored %v, want 0 then > 0", s)
	}
}
