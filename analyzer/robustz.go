package analyzer

import (
	"math"
	"slices"
	"time"
)

// RobustZConfig configures a RobustZ model.
type RobustZConfig struct {
	// Window is the number of past points the median and MAD cover (default 128).
	Window int
	// Warmup is the number of points scored 0 while the window fills (default 16).
	Warmup int
	// BoundZ is the half-width of Lower/Upper in robust sigmas (default 4).
	BoundZ float64
}

func (c RobustZConfig) withDefaults() RobustZConfig {
	if c.Window <= 0 {
		c.Window = 128
	}
	if c.Warmup <= 0 {
		c.Warmup = 16
	}
	if c.Warmup > c.Window {
		c.Warmup = c.Window
	}
	if c.BoundZ <= 0 {
		c.BoundZ = 4
	}
	return c
}

// RobustZ scores a point by its distance from the median of a sliding
// window, in units of the window's MAD (scaled to a normal sigma). Median
// and MAD ignore the outliers they are meant to find, unlike mean and
// standard deviation.
type RobustZ struct {
	cfg    RobustZConfig
	ring   []float64 // last Window values, oldest at pos when full
	sorted []float64 // the same values in order, updated in O(Window)
	pos, n int
	scale  scaleFloor
}

// NewRobustZ returns a RobustZ model; zero config fields take defaults.
func NewRobustZ(cfg RobustZConfig) *RobustZ {
	cfg = cfg.withDefaults()
	return &RobustZ{cfg: cfg, ring: make([]float64, cfg.Window), sorted: make([]float64, 0, cfg.Window)}
}

// Observe implements Model.
func (m *RobustZ) Observe(_ time.Time, v float64) Result {
	if math.IsNaN(v) {
		return nanResult // a missing point carries no evidence; skip it
	}
	med, sigma := v, 0.0
	if m.n > 0 {
		med, sigma = m.medianSigma()
	}
	floor := m.scale.floor()
	m.scale.add(v)
	m.push(v)
	sigma = math.Max(sigma, floor)
	r := Result{Expected: med, Lower: med - m.cfg.BoundZ*sigma, Upper: med + m.cfg.BoundZ*sigma}
	if m.n <= m.cfg.Warmup || sigma == 0 {
		r.Lower, r.Upper = math.Min(r.Lower, v), math.Max(r.Upper, v)
		return r
	}
	r.Score = tailScore((v - med) / sigma)
	return r
}

func (m *RobustZ) push(v float64) {
	if m.n == len(m.ring) {
		old := m.ring[m.pos]
		i, _ := slices.BinarySearch(m.sorted, old)
		m.sorted = slices.Delete(m.sorted, i, i+1)
	}
	i, _ := slices.BinarySearch(m.sorted, v)
	m.sorted = slices.Insert(m.sorted, i, v)
	m.ring[m.pos] = v
	m.pos = (m.pos + 1) % len(m.ring)
	if m.n < len(m.ring) {
		m.n++
	}
}

// medianSigma returns the window's median and MAD*1.4826. The absolute
// deviations are two sorted runs (below and above the median), merged
// lazily up to the middle, so no sort is needed.
func (m *RobustZ) medianSigma() (float64, float64) {
	s := m.sorted
	n := len(s)
	med := median(s)
	i, j := n/2-1, n/2 // next below / above the median
	next := func() float64 {
		if j >= n || (i >= 0 && med-s[i] <= s[j]-med) {
			i--
			return med - s[i+1]
		}
		j++
		return s[j-1] - med
	}
	var a, b float64
	for k := 0; k <= n/2; k++ {
		a, b = b, next()
	}
	if n%2 == 1 {
		return med, 1.4826 * b
	}
	return med, 1.4826 * (a + b) / 2
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// scaleFloor tracks the running min and max so models have a minimum
// spread: a flat stretch would otherwise have zero variance and make every
// tiny wiggle infinitely anomalous.
type scaleFloor struct {
	min, max float64
	seen     bool
}

func (s *scaleFloor) add(v float64) {
	if !s.seen {
		s.min, s.max, s.seen = v, v, true
		return
	}
	s.min, s.max = math.Min(s.min, v), math.Max(s.max, v)
}

// floor is 1% of the range seen so far, or a tiny absolute value.
func (s *scaleFloor) floor() float64 {
	return math.Max(0.01*(s.max-s.min), 1e-9)
}
