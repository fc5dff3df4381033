package analyzer

import (
	"math"
	"time"
)

// CUSUMConfig configures a CUSUM level-shift detector.
type CUSUMConfig struct {
	// Alpha is the EW weight of the baseline mean and variance (default 0.05).
	Alpha float64
	// Slack is the allowance k in sigmas below which drift is ignored (default 1).
	Slack float64
	// Limit is the decision interval h in sigmas; past it the detector
	// re-baselines (default 8).
	Limit float64
	// Warmup is the number of points scored 0 at the start (default 50).
	Warmup int
}

func (c CUSUMConfig) withDefaults() CUSUMConfig {
	if c.Alpha <= 0 || c.Alpha >= 1 {
		c.Alpha = 0.05
	}
	if c.Slack <= 0 {
		c.Slack = 1
	}
	if c.Limit <= 0 {
		c.Limit = 8
	}
	if c.Warmup <= 0 {
		c.Warmup = 50
	}
	return c
}

// CUSUM detects sustained level shifts: it accumulates standardized
// deviations beyond a slack in both directions and scores the larger sum.
// When a sum passes the limit it re-baselines to the new level, so one shift
// raises one alarm instead of many.
type CUSUM struct {
	cfg    CUSUMConfig
	hi, lo float64
	ewBaseline
}

// NewCUSUM returns a CUSUM model; zero config fields take defaults.
func NewCUSUM(cfg CUSUMConfig) *CUSUM { return &CUSUM{cfg: cfg.withDefaults()} }

// Observe implements Model.
func (m *CUSUM) Observe(_ time.Time, v float64) Result {
	if math.IsNaN(v) {
		return nanResult // a missing point carries no evidence; skip it
	}
	sigma := m.next(v)
	d := v - m.mean
	z := math.Max(-maxZ, math.Min(maxZ, d/sigma))
	r := Result{Expected: m.mean, Lower: m.mean - 4*sigma, Upper: m.mean + 4*sigma}
	a := m.cfg.Alpha
	if m.n <= m.cfg.Warmup {
		r.Lower, r.Upper = math.Min(r.Lower, v), math.Max(r.Upper, v)
		m.learn(a, d)
		if m.n < 10 { // learn the start faster
			m.mean += (v - m.mean) / float64(m.n)
		}
		return r
	}
	m.hi = math.Max(0, m.hi+z-m.cfg.Slack)
	m.lo = math.Max(0, m.lo-z-m.cfg.Slack)
	s := math.Max(m.hi, m.lo)
	// A sum of Limit scores like a single point Limit/2 sigmas away.
	r.Score = tailScore(s / 2)
	if s > m.cfg.Limit {
		// Re-baseline at the new level; keep the variance.
		m.mean, m.hi, m.lo = v, 0, 0
		return r
	}
	m.learn(a, d)
	return r
}
