package analyzer

import (
	"math"
	"time"
)

// NoveltyConfig configures a Novelty model.
type NoveltyConfig struct {
	// Gain converts an excess beyond the seen range, as a fraction of that
	// range, into a z-score: an excess of 1/Gain of the range scores like a
	// one-sigma deviation (default 80, so 5% of the range is z 4).
	Gain float64
	// Margin is the fraction of the seen range an excess must pass before
	// it scores, so chance records by a hair on a noisy series stay quiet
	// (default 0).
	Margin float64
	// Warmup is the number of points scored 0 while the range forms (default 100).
	Warmup int
}

func (c NoveltyConfig) withDefaults() NoveltyConfig {
	if c.Gain <= 0 {
		c.Gain = 80
	}
	if c.Warmup <= 0 {
		c.Warmup = 100
	}
	return c
}

// Novelty scores values outside the range seen so far: many operational
// anomalies are record highs or lows, which window-based models stop seeing
// as unusual once the window has moved on. Memory is O(1).
type Novelty struct {
	cfg  NoveltyConfig
	seen scaleFloor
	n    int
}

// NewNovelty returns a Novelty model; zero config fields take defaults.
func NewNovelty(cfg NoveltyConfig) *Novelty { return &Novelty{cfg: cfg.withDefaults()} }

// Observe implements Model.
func (m *Novelty) Observe(_ time.Time, v float64) Result {
	if math.IsNaN(v) {
		return nanResult // a missing point carries no evidence; skip it
	}
	m.n++
	if !m.seen.seen {
		m.seen.add(v)
		return Result{Expected: v, Lower: v, Upper: v}
	}
	lo, hi := m.seen.min, m.seen.max
	span := math.Max(hi-lo, 1e-9)
	r := Result{Expected: (lo + hi) / 2, Lower: lo, Upper: hi}
	excess := math.Max(v-hi, lo-v) - m.cfg.Margin*span
	m.seen.add(v)
	if m.n > m.cfg.Warmup && excess > 0 {
		r.Score = tailScore(m.cfg.Gain * excess / span)
	}
	if m.n <= m.cfg.Warmup {
		r.Lower, r.Upper = math.Min(lo, v), math.Max(hi, v)
	}
	return r
}
