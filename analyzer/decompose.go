package analyzer

import (
	"math"
	"slices"
	"time"

	"gonum.org/v1/gonum/stat"
)

// DecomposeConfig configures a Decompose model.
type DecomposeConfig struct {
	// Period is the seasonal period in points. 0 detects it (DetectPeriod
	// on a buffer of the first 3*MaxPeriod points, retried every MaxPeriod
	// points until a period is found).
	Period int
	// MinPeriod and MaxPeriod bound the detected period (defaults 4 and
	// 288: a day of 5-minute points).
	MinPeriod, MaxPeriod int
	// LevelAlpha is the weight of a new point in the EW level (trend)
	// (default 1/period, at most 0.02: the trend moves slower than the
	// season).
	LevelAlpha float64
	// SeasonAlpha is the weight of a new point in its phase's seasonal
	// value; each phase is visited once a period (default 0.2).
	SeasonAlpha float64
	// MADAlpha is the step of the EW median of absolute residuals, as a
	// fraction of it (default 0.002: a lasting break should not become
	// the noise level within a period).
	MADAlpha float64
	// WarmupPeriods is the number of full periods that only learn (default 2).
	WarmupPeriods int
	// ClipZ limits how far one residual moves the level and the seasonal
	// profile, in robust sigmas, so a spike does not become the pattern
	// (default 4).
	ClipZ float64
	// BoundZ is the half-width of Lower/Upper in robust sigmas (default 4).
	BoundZ float64
}

func (c DecomposeConfig) withDefaults() DecomposeConfig {
	if c.Period < 0 || c.Period == 1 {
		c.Period = 0
	}
	if c.MinPeriod < 2 {
		c.MinPeriod = 4
	}
	if c.MaxPeriod <= 0 {
		c.MaxPeriod = 288
	}
	c.MaxPeriod = max(c.MaxPeriod, c.MinPeriod)
	if !(c.SeasonAlpha > 0 && c.SeasonAlpha < 1) {
		c.SeasonAlpha = 0.2
	}
	if !(c.MADAlpha > 0 && c.MADAlpha < 1) {
		c.MADAlpha = 0.002
	}
	if c.WarmupPeriods <= 0 {
		c.WarmupPeriods = 2
	}
	if !(c.ClipZ > 0) {
		c.ClipZ = 4
	}
	if !(c.BoundZ > 0) {
		c.BoundZ = 4
	}
	return c
}

// Decompose is a streaming STL-like decomposition: value = trend +
// seasonal + residual, with the trend an EW level of the deseasonalised
// series, the seasonal part an EW value per phase of the period (in
// points, so timestamps are not used), and the residual scored against a
// robust scale, 1.4826 times an EW median of absolute residuals (tracked
// by sign steps, so outliers move it no more than ordinary points).
// Residuals beyond ClipZ update the state as if they were at ClipZ, so a
// spike does not become part of the pattern while a lasting break is
// learnt over some periods. The first WarmupPeriods periods only learn.
//
// With Period 0 the period is detected on a float32 buffer of 3*MaxPeriod
// points; until one is found the model scores residuals from the level
// alone, and once found it seeds the profile and the scale from the
// buffer, frees it, and scores at once. Memory is 4 bytes per phase
// (float32: seasonal values are deviations from the level, so they need
// no more precision) plus the buffer while detecting.
type Decompose struct {
	cfg    DecomposeConfig
	season []float32
	period int
	alpha  float64 // level weight
	level  float64
	mad    float64
	n      int // points seen (NaN excluded)
	nmad   int // residuals the MAD has seen
	scored int // first point index that is scored
	sum    float64
	det    *PeriodTracker
	scale  scaleFloor
}

// NewDecompose returns a Decompose model; zero config fields take defaults.
func NewDecompose(cfg DecomposeConfig) *Decompose {
	cfg = cfg.withDefaults()
	m := &Decompose{cfg: cfg, period: cfg.Period}
	m.setAlpha()
	if m.period > 0 {
		m.season = make([]float32, m.period)
		m.scored = cfg.WarmupPeriods * m.period
	} else {
		m.det = NewPeriodTracker(cfg.MinPeriod, cfg.MaxPeriod, cfg.MaxPeriod)
		m.scored = 3 * cfg.MaxPeriod
	}
	return m
}

// setAlpha sets the level weight from the config or the period.
func (m *Decompose) setAlpha() {
	m.alpha = m.cfg.LevelAlpha
	if !(m.alpha > 0 && m.alpha < 1) {
		m.alpha = 0.02
		if m.period > 0 {
			m.alpha = math.Min(0.02, 1/float64(m.period))
		}
	}
}

// Period returns the period in use (0 while none is known).
func (m *Decompose) Period() int { return m.period }

// Observe implements Model.
func (m *Decompose) Observe(_ time.Time, v float64) Result {
	if math.IsNaN(v) {
		return nanResult // a missing point carries no evidence; skip it
	}
	v = finiteClamp(v, math.MaxFloat64/8)
	floor := m.scale.floor()
	m.scale.add(v)
	i := m.n
	m.n++
	if m.det != nil {
		if p, _ := m.det.Add(v); p > 0 {
			m.adopt(p, m.det.values())
			m.det = nil
		}
	}
	if m.period > 0 && i < m.period && m.cfg.Period > 0 {
		// First period: the profile is the values themselves; the level
		// is their mean at the end.
		m.season[i] = float32(v)
		m.sum += v
		if i == m.period-1 {
			m.level = m.sum / float64(m.period)
			for k := range m.season {
				m.season[k] -= float32(m.level)
			}
		}
		return Result{Expected: v, Lower: v, Upper: v}
	}
	if i == 0 {
		m.level = v
	}
	var s float64
	ph := 0
	if m.period > 0 {
		ph = i % m.period
		s = float64(m.season[ph])
	}
	exp := m.level + s
	r := v - exp
	sigma := math.Max(1.4826*m.mad, floor)
	res := Result{Expected: exp, Lower: exp - m.cfg.BoundZ*sigma, Upper: exp + m.cfg.BoundZ*sigma}
	scoring := i >= m.scored && m.nmad >= 30
	if scoring {
		res.Score = tailScore(r / sigma)
		r = math.Max(-m.cfg.ClipZ*sigma, math.Min(m.cfg.ClipZ*sigma, r))
	} else {
		res.Lower, res.Upper = math.Min(res.Lower, v), math.Max(res.Upper, v)
	}
	m.learnMAD(math.Abs(r), floor)
	a := m.alpha
	m.level += a * r
	if m.period > 0 {
		m.season[ph] += float32(m.cfg.SeasonAlpha * (1 - a) * r)
	}
	return res
}

// learnMAD moves the EW median of absolute residuals one step towards ar:
// up or down by a fraction of itself (2/n while that is larger than
// MADAlpha, a Robbins-Monro start), so it settles where half the
// residuals are above it.
func (m *Decompose) learnMAD(ar, floor float64) {
	m.nmad++
	if m.nmad == 1 {
		m.mad = ar
		return
	}
	step := math.Max(m.cfg.MADAlpha, 2/float64(m.nmad)) * math.Max(m.mad, floor/1.4826)
	switch {
	case ar > m.mad:
		m.mad += step
	case ar < m.mad:
		m.mad = math.Max(0, m.mad-step)
	}
}

// adopt switches to period p, seeding the level, the profile and the
// robust scale from the buffered values vs (oldest first; the newest is
// the current point, index m.n-1).
func (m *Decompose) adopt(p int, vs []float64) {
	m.period = p
	m.setAlpha()
	m.season = make([]float32, p)
	cycles := len(vs) / p
	vs = vs[len(vs)-cycles*p:] // whole cycles, ending at the current point
	first := m.n - len(vs)     // point index of vs[0]
	mean := stat.Mean(vs, nil)
	for j, v := range vs {
		m.season[(first+j)%p] += float32((v - mean) / float64(cycles))
	}
	m.level = stat.Mean(vs[len(vs)-p:], nil) // the latest cycle's mean
	abs := make([]float64, 0, len(vs))
	for j, v := range vs {
		abs = append(abs, math.Abs(v-mean-float64(m.season[(first+j)%p])))
	}
	slices.Sort(abs)
	m.mad = stat.Quantile(0.5, stat.Empirical, abs, nil)
	m.nmad = max(m.nmad, len(abs))
	m.scored = m.n // the current point is in the seed: score from the next
}
