package analyzer

import (
	"math"
	"time"
)

// Differenced feeds its inner model the change since the previous point
// instead of the value, so a sudden jump stands out even on a trending or
// slowly varying series. Expected and bounds are mapped back to values.
type Differenced struct {
	inner Model
	prev  float64
	seen  bool
}

// NewDifferenced wraps inner.
func NewDifferenced(inner Model) *Differenced { return &Differenced{inner: inner} }

// Observe implements Model.
func (m *Differenced) Observe(t time.Time, v float64) Result {
	if math.IsNaN(v) {
		return nanResult
	}
	if !m.seen {
		m.prev, m.seen = v, true
		return Result{Expected: v, Lower: v, Upper: v}
	}
	r := m.inner.Observe(t, v-m.prev)
	r.Expected += m.prev
	r.Lower += m.prev
	r.Upper += m.prev
	m.prev = v
	return r
}
