package analyzer

import (
	"math"
	"time"
)

// QuantileDampConfig configures a QuantileDamp.
type QuantileDampConfig struct {
	// Quantile is the quantile of the wrapped model's scores that is
	// tracked per series (default 0.996).
	Quantile float64
	// Ref is how high that quantile may be before scores are damped
	// (default 0.02, the score of about z 4.9).
	Ref float64
	// Rate is the tracker's step, in natural-log units of the quantile
	// (default 0.02).
	Rate float64
}

func (c QuantileDampConfig) withDefaults() QuantileDampConfig {
	if !(c.Quantile > 0 && c.Quantile < 1) {
		c.Quantile = 0.996
	}
	if !(c.Ref > 0) {
		c.Ref = 0.02
	}
	if !(c.Rate > 0) {
		c.Rate = 0.02
	}
	return c
}

// QuantileDamp calibrates a model's scores per series: it tracks a high
// quantile q of the scores the model gave the points before (a
// stochastic-approximation tracker that steps q up by Rate*Quantile in
// log units when a score exceeds it and down by Rate*(1-Quantile)
// otherwise; q starts at Ref and never goes below it) and multiplies each
// score by min(1, Ref/q). A detector that fires often on one series (EWMA
// on bursty counts, CUSUM on a series that keeps shifting) then needs a
// larger deviation there to weigh as much, while on a series where its
// scores stay low nothing changes. It only ever lowers scores. O(1): one
// float64 of state besides the wrapped model's.
type QuantileDamp struct {
	inner    Model
	ref      float64
	up, down float64 // multiplicative steps of q
	q        float64
}

// NewQuantileDamp wraps inner; zero config fields take defaults.
func NewQuantileDamp(inner Model, cfg QuantileDampConfig) *QuantileDamp {
	cfg = cfg.withDefaults()
	return &QuantileDamp{
		inner: inner,
		ref:   cfg.Ref,
		up:    math.Exp(cfg.Rate * cfg.Quantile),
		down:  math.Exp(-cfg.Rate * (1 - cfg.Quantile)),
		q:     cfg.Ref,
	}
}

// Observe implements Model.
func (m *QuantileDamp) Observe(t time.Time, v float64) Result {
	r := m.inner.Observe(t, v)
	if math.IsNaN(v) {
		return r // a skipped point moves nothing
	}
	s := r.Score
	if m.q > m.ref {
		r.Score *= m.ref / m.q
	}
	if s > m.q {
		m.q *= m.up
	} else {
		m.q = math.Max(m.ref, m.q*m.down)
	}
	return r
}
