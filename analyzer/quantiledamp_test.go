package analyzer

import (
	"math"
	"math/rand/v2"
	"testing"
)

// burstySeries is Gaussian noise around 100 with a burst of size at every
// burst-th point (none when burst is 0) and one spike of size at point
// spike (none when spike is 0).
func burstySeries(n, burst, spike int, size float64, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 3))
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = 100 + rng.NormFloat64()
		if burst > 0 && i > 0 && i%burst == 0 {
			xs[i] += size
		}
	}
	if spike > 0 {
		xs[spike] += size
	}
	return xs
}

// QuantileDamp leaves a rare anomaly's score as it is and stays quiet on a
// clean wave: while the wrapped model's scores rarely pass Ref, the
// tracked quantile sits at Ref and nothing is damped; a lone high score
// raises it by one step, which damps the points after it by about 2%
// until it decays.
func TestQuantileDampKeepsRareAnomalies(t *testing.T) {
	cases := []struct {
		name  string
		xs    []float64
		at    int // the anomaly, or -1
		alarm bool
	}{
		{"spike on noise", burstySeries(3000, 0, 2000, 12, 1), 2000, true},
		{"spike on a noisy sine", func() []float64 { xs := noisySine(3000, 5); xs[2000] += 40; return xs }(), 2000, true},
		{"clean noisy sine", noisySine(3000, 5), -1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plain := run(NewEWMA(EWMAConfig{Alpha: 0.007}), c.xs)
			damped := run(NewQuantileDamp(NewEWMA(EWMAConfig{Alpha: 0.007}), QuantileDampConfig{}), c.xs)
			for i := range c.xs {
				p, d := plain[i].Score, damped[i].Score
				if d > p || d < p*0.98 || (c.at < 0 || i <= c.at) && d != p {
					t.Fatalf("point %d: damped score %v, plain %v", i, d, p)
				}
			}
			if got := maxScore(damped, 300, len(c.xs)); c.alarm != (got >= 0.015) {
				t.Errorf("max score after warm-up %.4f, want alarm %v", got, c.alarm)
			}
			if c.at >= 0 && damped[c.at].Score < 0.015 {
				t.Errorf("anomaly scored %.4f, want an alarm (>= 0.015)", damped[c.at].Score)
			}
		})
	}
}

// On a series where the wrapped model scores high often (a burst every 40
// points), QuantileDamp lowers those scores once its quantile has learnt
// them, never raises any, and lets the first burst through.
func TestQuantileDampDampsFrequentBursts(t *testing.T) {
	xs := burstySeries(4000, 40, 0, 12, 2)
	plain := run(NewEWMA(EWMAConfig{Alpha: 0.007}), xs)
	damped := run(NewQuantileDamp(NewEWMA(EWMAConfig{Alpha: 0.007}), QuantileDampConfig{}), xs)
	for i := range xs {
		if damped[i].Score > plain[i].Score {
			t.Fatalf("point %d: damped %v above plain %v", i, damped[i].Score, plain[i].Score)
		}
	}
	if d, p := damped[40].Score, plain[40].Score; d < 0.98*p || d < 0.015 {
		t.Errorf("first burst scored %.4f (plain %.4f), want it (nearly) undamped and alarming", d, p)
	}
	last := 3960
	if r := damped[last].Score / plain[last].Score; !(r < 0.8) {
		t.Errorf("burst %d: damped/plain %.2f, want below 0.8 once bursts are routine", last, r)
	}
}

// A NaN point is passed through and leaves the tracked quantile alone.
func TestQuantileDampSkipsNaN(t *testing.T) {
	m := NewQuantileDamp(NewEWMA(EWMAConfig{}), QuantileDampConfig{})
	for _, x := range burstySeries(500, 20, 0, 12, 3) {
		m.Observe(t0, x)
	}
	q := m.q
	if r := m.Observe(t0, math.NaN()); r.Score != 0 || m.q != q {
		t.Errorf("NaN scored %v and moved q %v -> %v", r.Score, q, m.q)
	}
}
