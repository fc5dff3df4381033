package analyzer

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// Context learns a repeating level sequence (quiet once known), scores a
// new sequence, keeps scores in [0,1] and skips NaN without moving state.
func TestContextScoresNewSequences(t *testing.T) {
	m := NewContext(ContextConfig{Levels: 4, Orders: 3, Warmup: 50})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	wave := []float64{0, 1, 2, 3, 2, 1}
	var late float64
	i := 0
	for ; i < 600; i++ {
		s := m.Observe(t0.Add(time.Duration(i)*time.Minute), 10*wave[i%len(wave)]+float64(i%2)*0.1).Score
		if s < 0 || s > 1 {
			t.Fatalf("point %d: score %v out of [0,1]", i, s)
		}
		if i > 300 {
			late = math.Max(late, s)
		}
	}
	if late != 0 {
		t.Fatalf("a learnt repeating sequence scored %v", late)
	}
	before := *m
	if r := m.Observe(t0, math.NaN()); r.Score != 0 || m.n != before.n || m.seq != before.seq {
		t.Fatalf("NaN changed state or scored: %+v", r)
	}
	// a new order of levels: 0 3 0 3 ...
	hi := 0.0
	for k := 0; k < 6; k++ {
		hi = math.Max(hi, m.Observe(t0.Add(time.Duration(i+k)*time.Minute), 30*float64(k%2)).Score)
	}
	if hi < 0.5 {
		t.Fatalf("a new level sequence scored at most %v", hi)
	}
}

// Context's table is bounded: a long random walk costs no more memory.
func TestContextBoundedOnNoise(t *testing.T) {
	m := NewContext(ContextConfig{})
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20000 {
		m.Observe(t0.Add(time.Duration(i)*time.Minute), rng.NormFloat64())
	}
	if len(m.table) != 8192/64 {
		t.Fatalf("table grew to %d words", len(m.table))
	}
}
