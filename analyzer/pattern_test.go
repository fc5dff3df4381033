package analyzer

import (
	"math"
	"testing"
)

func TestPatternScoresNewShapes(t *testing.T) {
	xs := noisySine(2000, 17)
	clean := run(NewPattern(PatternConfig{}), xs)
	xs[1500] += 30 // a spike: a shape never seen
	rs := run(NewPattern(PatternConfig{}), xs)
	if got := maxScore(rs, 1500, 1510); got < 0.3 {
		t.Errorf("spike scored %.3f, want a new pattern (>= 0.3)", got)
	}
	if got := maxScore(clean, 1000, 2000); got > 0.15 {
		t.Errorf("clean sine scored %.3f after warm-up, want known patterns (<= 0.15)", got)
	}
}

func TestPatternDistance(t *testing.T) {
	m := NewPattern(PatternConfig{Window: 3})
	if d := m.Distance(); d != 0 {
		t.Fatalf("fresh model distance %v", d)
	}
	for i := 0; i < 300; i++ { // a square wave: two shapes and two edges
		v := 0.0
		if i/10%2 == 1 {
			v = 10
		}
		m.Observe(t0, v)
	}
	if d := m.Distance(); d > 1e-6 {
		t.Errorf("known square-wave shape at distance %v", d)
	}
	m.Observe(t0, 5) // half-way level: new shape
	if d := m.Distance(); math.Abs(d-0.5) > 1e-6 {
		t.Errorf("half-way level at distance %v, want 0.5", d)
	}
}

// TestPatternContract: scores in [0,1], bounds ordered, and a NaN leaves
// the state untouched. (Pattern is not in the models table: its score is
// a shape distance, not a calibrated tail score, so a clean noisy sine
// still makes a few new prototypes; the default ensemble uses it as a gate.)
func TestPatternContract(t *testing.T) {
	xs := []float64{0, 0, 0, 1e300, -1e300, 0, math.Inf(1), 0, 5}
	for i := 0; i < 300; i++ {
		xs = append(xs, float64(i%7))
	}
	for i, r := range run(NewPattern(PatternConfig{}), xs) {
		if !(r.Score >= 0 && r.Score <= 1) || r.Lower > r.Upper {
			t.Fatalf("point %d: bad result %+v", i, r)
		}
	}
	ys := noisySine(400, 21)
	withNaN := append(append(append([]float64(nil), ys[:200]...), math.NaN()), ys[200:]...)
	a, b := NewPattern(PatternConfig{}), NewPattern(PatternConfig{})
	ra, rb := run(a, ys), run(b, withNaN)
	if rb[200].Score != 0 || ra[399] != rb[400] || a.Distance() != b.Distance() {
		t.Errorf("NaN changed the state: %+v vs %+v", ra[399], rb[400])
	}
}
