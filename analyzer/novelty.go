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
	// NoiseMargin, when > 0, is how many noise units (a running median of
	// absolute point-to-point changes, about 0.95 sigma for Gaussian noise
	// and 0 for a mostly flat series) an excess must pass before it
	// scores, so a chance record on a noisy series stays quiet.
	NoiseMargin float64
	// Shape, when set, limits NoiseMargin to points whose recent shape
	// Shape already knows (Distance below ShapeDist): a record with a new
	// shape scores without the margin. Shape must observe each point
	// before this model does (Ensemble does so with its Gate).
	Shape     *Pattern
	ShapeDist float64
	// Confirm waives NoiseMargin for a point whose predecessor was also
	// beyond the range seen before it: a run of records is not chance.
	Confirm bool
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
// A record by a hair counts: on NAB, many anomalies start as a new high or
// low within the noise, so NoiseMargin is limited to known shapes.
type Novelty struct {
	cfg  NoveltyConfig
	seen scaleFloor
	n    int
	prev float64
	dev  float64 // running median of |change| between consecutive points
	rec  bool    // the previous point was beyond the range before it
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
		m.prev = v
		return Result{Expected: v, Lower: v, Upper: v}
	}
	lo, hi := m.seen.min, m.seen.max
	span := math.Max(hi-lo, 1e-9)
	r := Result{Expected: (lo + hi) / 2, Lower: lo, Upper: hi}
	nm := m.cfg.NoiseMargin
	if m.cfg.Shape != nil && !(m.cfg.Shape.Distance() < m.cfg.ShapeDist) {
		nm = 0
	}
	if m.cfg.Confirm && m.rec {
		nm = 0
	}
	ex := math.Max(v-hi, lo-v)
	m.rec = ex > 0
	excess := ex - nm*m.dev
	// dev tracks the median of |change| with multiplicative steps.
	if d := math.Abs(v - m.prev); m.n == 2 || m.dev == 0 {
		m.dev = d
	} else if d > m.dev {
		m.dev *= 1.02
	} else {
		m.dev *= 0.98
	}
	if m.dev < 1e-12*math.Max(1, span) {
		m.dev = 0
	}
	m.prev = v
	m.seen.add(v)
	if m.n > m.cfg.Warmup && excess > 0 {
		r.Score = tailScore(m.cfg.Gain * excess / span)
	}
	if m.n <= m.cfg.Warmup {
		r.Lower, r.Upper = math.Min(lo, v), math.Max(hi, v)
	}
	return r
}
