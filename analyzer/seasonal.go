package analyzer

import (
	"math"
	"time"
)

// SeasonalConfig configures a Seasonal model.
type SeasonalConfig struct {
	// Buckets is the number of time-of-day buckets (default 48, half an hour each).
	Buckets int
	// Alpha is the weight of a new point in its bucket's mean (default 0.2:
	// a bucket is visited once a day, so it must learn in a few days).
	Alpha float64
	// ResidAlpha is the weight of a new residual in the shared residual
	// variance (default 0.02).
	ResidAlpha float64
	// MinVisits is the number of days a bucket must have seen before its
	// points are scored (default 2).
	MinVisits int
	// BoundZ is the half-width of Lower/Upper in residual sigmas (default 4).
	BoundZ float64
}

func (c SeasonalConfig) withDefaults() SeasonalConfig {
	if c.Buckets <= 0 {
		c.Buckets = 48
	}
	if c.Alpha <= 0 || c.Alpha >= 1 {
		c.Alpha = 0.2
	}
	if c.ResidAlpha <= 0 || c.ResidAlpha >= 1 {
		c.ResidAlpha = 0.02
	}
	if c.MinVisits <= 0 {
		c.MinVisits = 2
	}
	if c.BoundZ <= 0 {
		c.BoundZ = 4
	}
	return c
}

// Seasonal keeps an EW mean per time-of-day bucket, keyed by the point's
// timestamp, and scores the residual from its bucket's mean against an EW
// variance of residuals: a daily-periodic series is predictable from the
// same time yesterday, so its daily swing is not mistaken for an anomaly
// and a break in the pattern is. A bucket's mean moves once per visit
// (several points per visit share it). Memory is O(Buckets).
type Seasonal struct {
	cfg    SeasonalConfig
	mean   []float64
	visits []int32
	day    []int32 // day number of each bucket's last visit
	vr     float64 // EW variance of residuals
	nres   int
	scale  scaleFloor
}

// NewSeasonal returns a Seasonal model; zero config fields take defaults.
func NewSeasonal(cfg SeasonalConfig) *Seasonal {
	cfg = cfg.withDefaults()
	return &Seasonal{cfg: cfg, mean: make([]float64, cfg.Buckets),
		visits: make([]int32, cfg.Buckets), day: make([]int32, cfg.Buckets)}
}

// Observe implements Model.
func (m *Seasonal) Observe(t time.Time, v float64) Result {
	if math.IsNaN(v) {
		return nanResult // a missing point carries no evidence; skip it
	}
	sec := t.Unix()
	dayNum := int32(sec / 86400)
	b := int((sec % 86400) * int64(m.cfg.Buckets) / 86400)
	if b < 0 {
		b += m.cfg.Buckets
	}
	floor := m.scale.floor()
	m.scale.add(v)
	if m.visits[b] == 0 {
		m.mean[b], m.visits[b], m.day[b] = v, 1, dayNum
		return Result{Expected: v, Lower: v, Upper: v}
	}
	if m.day[b] != dayNum {
		m.visits[b]++
		m.day[b] = dayNum
	}
	exp := m.mean[b]
	d := v - exp
	sigma := math.Max(math.Sqrt(m.vr), floor)
	r := Result{Expected: exp, Lower: exp - m.cfg.BoundZ*sigma, Upper: exp + m.cfg.BoundZ*sigma}
	if int(m.visits[b]) > m.cfg.MinVisits && m.nres > 30 {
		r.Score = tailScore(d / sigma)
	} else {
		r.Lower, r.Upper = math.Min(r.Lower, v), math.Max(r.Upper, v)
	}
	m.mean[b] += m.cfg.Alpha * d
	if int(m.visits[b]) > 1 {
		a := m.cfg.ResidAlpha
		m.vr = (1 - a) * (m.vr + a*d*d)
		m.nres++
	}
	return r
}
