package analyzer

import (
	"math"
	"time"

	"opspilot/analyzer/forecast"
)

// HoltWintersConfig configures a HoltWinters anomaly model.
type HoltWintersConfig struct {
	// Model is the Holt-Winters fit: seasons (default daily and weekly),
	// step (default the median spacing), damping. Its Level is set from
	// BoundZ.
	Model forecast.Config
	// FitAfter is the span of points buffered before the parameters are
	// fitted (default 72h: two daily periods start the seasonal indices
	// and the third measures the forecast error honestly; with two days
	// only, the in-sample error understates sigma by about 30%).
	FitAfter time.Duration
	// MaxBuffer bounds the buffered points (default 4096); a buffer that
	// fills before FitAfter is fitted as it is.
	MaxBuffer int
	// BoundZ is the half-width of Lower/Upper in sigmas (default 4).
	BoundZ float64
}

func (c HoltWintersConfig) withDefaults() HoltWintersConfig {
	if c.FitAfter <= 0 {
		c.FitAfter = 72 * time.Hour
	}
	if c.MaxBuffer <= 0 {
		c.MaxBuffer = 4096
	}
	if c.BoundZ <= 0 {
		c.BoundZ = 4
	}
	c.Model.Level = math.Erf(c.BoundZ / math.Sqrt2)
	return c
}

// HoltWinters is the additive Holt-Winters model (forecast.HoltWinters:
// daily and weekly seasons, parameters fitted by Nelder-Mead) as a
// streaming anomaly model. It buffers FitAfter of points, fits, and from
// then on forecasts each point before learning it; the score is the
// deviation from the one-step forecast in units of the forecast's sigma.
// Its state is the seasonal indices (one per step of each season: 2,304
// numbers for daily and weekly seasons at 5 minutes), so it is heavier
// than the O(1) models; use it for series known to be seasonal.
type HoltWinters struct {
	cfg HoltWintersConfig
	hw  *forecast.HoltWinters
	ts  []int64 // buffered points until the fit: Unix nanoseconds and values
	vs  []float64
	// fitErr is the last fit's failure, for diagnosis.
	fitErr error
}

// NewHoltWinters returns a HoltWinters model; zero config fields take
// defaults.
func NewHoltWinters(cfg HoltWintersConfig) *HoltWinters {
	return &HoltWinters{cfg: cfg.withDefaults()}
}

// Observe implements Model.
func (m *HoltWinters) Observe(t time.Time, v float64) Result {
	if math.IsNaN(v) {
		return nanResult
	}
	if m.hw == nil {
		m.buffer(t, v)
		return Result{Expected: v, Lower: v, Upper: v}
	}
	expected, lower, upper := m.hw.Update(t, v)
	if math.IsNaN(expected) { // a late or duplicate point
		return nanResult
	}
	// A series the model fits exactly (constant, or a perfect wave) has
	// sigma 0; any departure from it is then as surprising as can be.
	sigma := math.Max((upper-expected)/m.cfg.BoundZ, 1e-9*math.Max(1, math.Abs(expected)))
	r := Result{Expected: expected, Lower: lower, Upper: upper}
	if !math.IsInf(v, 0) {
		r.Score = tailScore((v - expected) / sigma)
	}
	return r
}

// buffer keeps the point and fits once FitAfter is covered. A failed fit
// (too few distinct values, say) drops the older half and keeps waiting.
func (m *HoltWinters) buffer(t time.Time, v float64) {
	ns := t.UnixNano()
	if n := len(m.ts); n > 0 && ns <= m.ts[n-1] {
		return
	}
	m.ts, m.vs = append(m.ts, ns), append(m.vs, v)
	if time.Duration(ns-m.ts[0]) < m.cfg.FitAfter && len(m.ts) < m.cfg.MaxBuffer {
		return
	}
	ts := make([]time.Time, len(m.ts))
	for i, ns := range m.ts {
		ts[i] = time.Unix(0, ns)
	}
	hw, err := forecast.Fit(ts, m.vs, m.cfg.Model)
	if err != nil {
		m.fitErr = err
		half := len(m.ts) / 2
		m.ts, m.vs = append(m.ts[:0], m.ts[half:]...), append(m.vs[:0], m.vs[half:]...)
		return
	}
	m.hw, m.ts, m.vs, m.fitErr = hw, nil, nil, nil
}

// Params are the fitted parameters, or false while still buffering.
func (m *HoltWinters) Params() (forecast.Params, bool) {
	if m.hw == nil {
		return forecast.Params{}, false
	}
	return m.hw.Params(), true
}

func (m *HoltWinters) saveState(w *stateWriter) {
	w.bool(m.hw != nil)
	if m.hw != nil {
		b, err := m.hw.MarshalBinary()
		if err != nil && w.err == nil {
			w.err = err
		}
		w.bytes(b)
		return
	}
	w.int(len(m.ts))
	for i := range m.ts {
		w.int64(m.ts[i])
		w.f64(m.vs[i])
	}
}

func (m *HoltWinters) loadState(r *stateReader) {
	m.hw, m.ts, m.vs = nil, nil, nil
	if r.bool() {
		b := r.bytes()
		if r.err != nil {
			return
		}
		hw := &forecast.HoltWinters{}
		if err := hw.UnmarshalBinary(b); err != nil {
			r.err = err
			return
		}
		m.hw = hw
		return
	}
	n := r.int()
	if r.err == nil && (n < 0 || n > m.cfg.MaxBuffer) {
		r.fail("the Holt-Winters buffer")
	}
	for range n {
		if r.err != nil {
			return
		}
		m.ts = append(m.ts, r.int64())
		m.vs = append(m.vs, r.f64())
	}
}
