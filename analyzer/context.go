package analyzer

import (
	"math"
	"time"
)

// ContextConfig configures a Context model.
type ContextConfig struct {
	// Levels is the number of value levels the range seen so far is cut
	// into (at most 16; default 8).
	Levels int
	// Orders is the longest context, in level changes before the current
	// level (at most 14; default 4).
	Orders int
	// Bits is the size of the table of seen contexts, a power of two of
	// at least 64 (default 8192, 1 KB).
	Bits int
	// Warmup is the number of points scored 0 while contexts are learnt
	// (default 300).
	Warmup int
	// Solid, when > 0, scores a level change only when the value is at
	// least Solid noise units (a running median of absolute point-to-point
	// changes) inside its new level: noise that crosses a level boundary
	// still learns contexts but does not score them.
	Solid float64
}

func (c ContextConfig) withDefaults() ContextConfig {
	if c.Levels <= 1 || c.Levels > 16 {
		c.Levels = 8
	}
	if c.Orders <= 0 || c.Orders > 14 {
		c.Orders = 4
	}
	if c.Bits < 64 || c.Bits&(c.Bits-1) != 0 {
		c.Bits = 8192
	}
	if c.Warmup <= 0 {
		c.Warmup = 300
	}
	return c
}

// Context scores how new the recent sequence of value levels is, in the
// spirit of the contextual anomaly detector (CAD OSE), with bounded memory
// and causal levels: the range seen so far is cut into Levels levels, and
// each time the level changes, the sequences ("contexts") of the last
// 1..Orders level changes ending in the new level are looked up in a fixed
// table of seen contexts (a hashed bit set) and added to it. The score is
// the fraction of the Orders contexts that were new; a point that keeps
// its level scores 0. Memory is Bits/8 bytes plus a few words; each point
// costs O(Orders).
type Context struct {
	cfg    ContextConfig
	lo, hi float64
	n      int
	seq    uint64 // the last level changes, 4 bits per level, newest lowest
	nseq   int    // levels in seq, at most Orders+1
	table  []uint64
	prev   float64
	dev    float64 // running median of |change|
}

// NewContext returns a Context model; zero config fields take defaults.
func NewContext(cfg ContextConfig) *Context {
	cfg = cfg.withDefaults()
	return &Context{cfg: cfg, table: make([]uint64, cfg.Bits/64)}
}

// Observe implements Model.
func (m *Context) Observe(_ time.Time, v float64) Result {
	if math.IsNaN(v) {
		return nanResult
	}
	m.n++
	if m.n == 1 {
		m.lo, m.hi, m.prev = v, v, v
	}
	m.lo, m.hi = math.Min(m.lo, v), math.Max(m.hi, v)
	r := Result{Expected: v, Lower: m.lo, Upper: m.hi}
	if d := math.Abs(v - m.prev); m.n == 2 || m.dev == 0 {
		m.dev = d
	} else if d > m.dev {
		m.dev *= 1.02
	} else {
		m.dev *= 0.98
	}
	m.prev = v
	L := m.cfg.Levels
	step := (m.hi - m.lo) / float64(L)
	var l uint64
	x := 0.0 // position inside the level
	if step > 0 {
		k := min(max(int((v-m.lo)/step), 0), L-1)
		l, x = uint64(k), v-m.lo-float64(k)*step
	}
	if m.nseq > 0 && m.seq&15 == l {
		return r
	}
	m.seq = m.seq<<4 | l
	if m.nseq <= m.cfg.Orders {
		m.nseq++
	}
	novel := 0
	mask := uint64(m.cfg.Bits - 1)
	for k := 1; k < m.nseq; k++ {
		ctx := m.seq & (1<<(4*(k+1)) - 1)
		h := (ctx*0x9E3779B97F4A7C15 + uint64(k)*0xC2B2AE3D27D4EB4F) >> 20 & mask
		w, b := h>>6, uint64(1)<<(h&63)
		if m.table[w]&b == 0 {
			novel++
			m.table[w] |= b
		}
	}
	if sd := m.cfg.Solid; sd > 0 && (l > 0 && x < sd*m.dev || int(l) < L-1 && step-x < sd*m.dev) {
		return r // near a level boundary: may be noise
	}
	if m.n > m.cfg.Warmup {
		r.Score = float64(novel) / float64(m.cfg.Orders)
	}
	return r
}
