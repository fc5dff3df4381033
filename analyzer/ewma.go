package analyzer

import (
	"math"
	"time"
)

// EWMAConfig configures an EWMA model.
type EWMAConfig struct {
	// Alpha is the weight of a new point in the mean and variance (default 0.05).
	Alpha float64
	// Warmup is the number of points scored 0 at the start (default 30).
	Warmup int
	// BoundZ is the half-width of Lower/Upper in sigmas (default 4).
	BoundZ float64
}

func (c EWMAConfig) withDefaults() EWMAConfig {
	if c.Alpha <= 0 || c.Alpha >= 1 {
		c.Alpha = 0.05
	}
	if c.Warmup <= 0 {
		c.Warmup = 30
	}
	if c.BoundZ <= 0 {
		c.BoundZ = 4
	}
	return c
}

// EWMA forecasts the exponentially weighted mean and scores the deviation
// against an exponentially weighted variance. It is O(1) in time and memory.
type EWMA struct {
	cfg EWMAConfig
	ewBaseline
}

// ewBaseline is an exponentially weighted mean and variance (West's
// incremental update) with a floor on the spread; EWMA and CUSUM judge
// each point against one.
type ewBaseline struct {
	mean, vr float64
	n        int
	scale    scaleFloor
}

// next counts v and returns the spread to judge it by, from the points
// before it.
func (b *ewBaseline) next(v float64) (sigma float64) {
	if b.n == 0 {
		b.mean = v
	}
	b.n++
	sigma = math.Max(math.Sqrt(b.vr), b.scale.floor())
	b.scale.add(v)
	return sigma
}

// learn moves the mean and variance by a deviation d with weight a.
func (b *ewBaseline) learn(a, d float64) {
	b.mean += a * d
	b.vr = (1 - a) * (b.vr + a*d*d)
}

// NewEWMA returns an EWMA model; zero config fields take defaults.
func NewEWMA(cfg EWMAConfig) *EWMA { return &EWMA{cfg: cfg.withDefaults()} }

// Observe implements Model.
func (m *EWMA) Observe(_ time.Time, v float64) Result {
	if math.IsNaN(v) {
		return nanResult // a missing point carries no evidence; skip it
	}
	sigma := m.next(v)
	r := Result{Expected: m.mean, Lower: m.mean - m.cfg.BoundZ*sigma, Upper: m.mean + m.cfg.BoundZ*sigma}
	d := v - m.mean
	if m.n > m.cfg.Warmup {
		r.Score = tailScore(d / sigma)
	} else {
		r.Lower, r.Upper = math.Min(r.Lower, v), math.Max(r.Upper, v)
	}
	m.learn(m.cfg.Alpha, d)
	return r
}
