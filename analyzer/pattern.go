package analyzer

import (
	"math"
	"time"
)

// PatternConfig configures a Pattern model.
type PatternConfig struct {
	// Window is the number of recent (downsampled) values in a pattern
	// (default 6, at most 64).
	Window int
	// Step is the number of points averaged into one window value (default 1).
	Step int
	// Protos is the number of remembered patterns (default 48).
	Protos int
	// Vigilance is the distance, as a fraction of the range seen so far,
	// beyond which a pattern is new (default 0.1).
	Vigilance float64
	// Rate is how far a matched prototype moves toward the pattern (default 0.1).
	Rate float64
	// Warmup is the number of points scored 0 while patterns form (default 150).
	Warmup int
}

// maxPatternWindow is the largest PatternConfig.Window.
const maxPatternWindow = 64

// protoOne is a prototype value of 1 (the top of the range) in 16 bits.
const protoOne = math.MaxUint16

// protoQ stores a value in [0,1] (clipped) in 16 bits; unprotoQ reads it.
func protoQ(x float64) uint16 { return toFixed[uint16](x) }

func unprotoQ(q uint16) float64 { return fromFixed(q) }

func (c PatternConfig) withDefaults() PatternConfig {
	if c.Window <= 0 || c.Window > maxPatternWindow {
		c.Window = 6
	}
	if c.Step <= 0 {
		c.Step = 1
	}
	if c.Protos <= 0 {
		c.Protos = 48
	}
	if c.Vigilance <= 0 {
		c.Vigilance = 0.1
	}
	if c.Rate <= 0 || c.Rate > 1 {
		c.Rate = 0.1
	}
	if c.Warmup <= 0 {
		c.Warmup = 150
	}
	return c
}

// Pattern scores how new the shape of the last few points is, in the
// spirit of ARTime's adaptive-resonance categories: it keeps a small set of
// prototype windows (Window values, each the mean of Step points, scaled by
// the range seen so far) and finds the nearest one by the largest
// per-value difference. Within Vigilance the prototype learns the window
// (moves by Rate); otherwise the window becomes a new prototype, replacing
// the least recently matched one when the set is full, and scores its
// distance (clipped to 1) once Warmup points have passed. Memory is
// Protos*(2*Window+4) bytes (prototype values in 16-bit fixed point, to
// 1/65535 of the range) plus a Window-length float64 buffer; each point
// costs O(Protos*Window).
type Pattern struct {
	cfg    PatternConfig
	ring   []float64
	pos    int
	filled int
	acc    float64
	accN   int
	lo, hi float64
	n      int
	protos []uint16 // Protos x Window, in units of protoOne
	used   []uint32 // last match (point index) per prototype
	np     int
	dist   float64 // the last window's distance to its nearest prototype
}

// Distance is the last window's distance (the largest difference of its
// values, as a fraction of the range seen so far) to the nearest remembered
// prototype, before learning it: 0 until the first window is complete and
// +Inf for that first window, when nothing is remembered yet.
func (m *Pattern) Distance() float64 { return m.dist }

// NewPattern returns a Pattern model; zero config fields take defaults.
func NewPattern(cfg PatternConfig) *Pattern {
	cfg = cfg.withDefaults()
	return &Pattern{cfg: cfg, ring: make([]float64, cfg.Window),
		protos: make([]uint16, cfg.Protos*cfg.Window), used: make([]uint32, cfg.Protos)}
}

// Observe implements Model.
func (m *Pattern) Observe(_ time.Time, v float64) Result {
	if math.IsNaN(v) {
		return nanResult
	}
	m.n++
	if m.n == 1 {
		m.lo, m.hi = v, v
	}
	m.lo, m.hi = math.Min(m.lo, v), math.Max(m.hi, v)
	r := Result{Expected: v, Lower: m.lo, Upper: m.hi}
	m.acc += v
	m.accN++
	// the window: completed steps plus the partial current step
	W := m.cfg.Window
	cur := m.acc / float64(m.accN)
	if m.filled < W-1 {
		if m.accN == m.cfg.Step {
			m.ring[m.pos] = cur
			m.pos = (m.pos + 1) % W
			m.filled++
			m.acc, m.accN = 0, 0
		}
		return r
	}
	span := m.hi - m.lo
	if span <= 0 {
		span = 1e-9
	}
	// oldest first: ring holds W-1 completed values ending before pos
	var fa [maxPatternWindow]float64 // on the stack
	feat := fa[:W]
	for i := 0; i < W-1; i++ {
		feat[i] = (m.ring[(m.pos+1+i)%W] - m.lo) / span
	}
	feat[W-1] = (cur - m.lo) / span
	best, bi := math.Inf(1), -1
	for k := 0; k < m.np; k++ {
		p := m.protos[k*W : (k+1)*W]
		d := 0.0
		for i, f := range feat {
			d = math.Max(d, math.Abs(f-unprotoQ(p[i])))
			if d >= best {
				break
			}
		}
		if d < best {
			best, bi = d, k
		}
	}
	m.dist = best
	if bi >= 0 && best <= m.cfg.Vigilance {
		p := m.protos[bi*W : (bi+1)*W]
		for i, f := range feat {
			q := unprotoQ(p[i])
			p[i] = protoQ(q + m.cfg.Rate*(f-q))
		}
		m.used[bi] = uint32(m.n)
	} else {
		k := m.np
		if k < m.cfg.Protos {
			m.np++
		} else { // replace the least recently matched
			k = 0
			for j := 1; j < m.np; j++ {
				if m.used[j] < m.used[k] {
					k = j
				}
			}
		}
		p := m.protos[k*W : (k+1)*W]
		for i, f := range feat {
			p[i] = protoQ(f)
		}
		m.used[k] = uint32(m.n)
		if m.n > m.cfg.Warmup {
			if math.IsInf(best, 1) {
				best = 1
			}
			r.Score = math.Min(1, best)
		}
	}
	if m.accN == m.cfg.Step {
		m.ring[m.pos] = cur
		m.pos = (m.pos + 1) % W
		m.acc, m.accN = 0, 0
	}
	return r
}
