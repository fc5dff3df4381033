package forecast

import (
	"fmt"
	"math"
	"time"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Defaults for CapacityConfig.
const (
	DefaultHorizon    = 30 * 24 * time.Hour
	DefaultThreshold  = 1.0
	DefaultReportStep = time.Hour
)

// Data-length thresholds of Exhaustion: below MinSeasonalSpan only a
// linear trend is fitted; below MinWeeklySpan only the daily season.
// They follow from Config.Seasons' "two full periods" rule.
const (
	MinSeasonalSpan = 2 * 24 * time.Hour
	MinWeeklySpan   = 14 * 24 * time.Hour
)

// CapacityConfig configures Exhaustion. The zero value is usable.
type CapacityConfig struct {
	// Model configures the Holt-Winters fit (Seasons, Damped, Step...).
	Model Config
	// Horizon is how far ahead to forecast; zero means DefaultHorizon
	// (30 days).
	Horizon time.Duration
	// Level is the coverage of the forecast intervals, in (0,1); zero
	// means DefaultLevel (0.95).
	Level float64
	// Threshold is the fraction of capacity that counts as exhausted,
	// e.g. 0.8 to plan for 80% utilisation; zero means 1 (100%).
	Threshold float64
	// ReportStep is the spacing of Report.Forecast points (crossings are
	// found at full model resolution regardless); zero means
	// DefaultReportStep (1h). It is never finer than the model step.
	ReportStep time.Duration
}

func (c CapacityConfig) withDefaults() (CapacityConfig, error) {
	if c.Horizon == 0 {
		c.Horizon = DefaultHorizon
	}
	if c.Level == 0 {
		c.Level = DefaultLevel
	}
	if c.Threshold == 0 {
		c.Threshold = DefaultThreshold
	}
	if c.ReportStep == 0 {
		c.ReportStep = DefaultReportStep
	}
	switch {
	case c.Horizon < 0:
		return c, fmt.Errorf("%w: Horizon %s is negative", ErrBadConfig, c.Horizon)
	case !(c.Level > 0 && c.Level < 1):
		return c, fmt.Errorf("%w: Level %v must be in (0,1), e.g. 0.95", ErrBadConfig, c.Level)
	case !(c.Threshold > 0) || math.IsInf(c.Threshold, 0):
		return c, fmt.Errorf("%w: Threshold %v must be a positive fraction of capacity, e.g. 0.8", ErrBadConfig, c.Threshold)
	case c.ReportStep < 0:
		return c, fmt.Errorf("%w: ReportStep %s is negative", ErrBadConfig, c.ReportStep)
	}
	return c, nil
}

// Capacity is the limit usage is compared with: a constant, or a series
// (e.g. the sum of CPU requests or node allocatable over time). Capacity
// is provisioned, not grown, so the future capacity is the last finite
// value of the series.
type Capacity struct {
	Value float64
	T     []time.Time
	V     []float64
}

// ConstantCapacity is a fixed capacity.
func ConstantCapacity(v float64) Capacity { return Capacity{Value: v} }

// CapacitySeries is a capacity that changes over time.
func CapacitySeries(ts []time.Time, vs []float64) Capacity { return Capacity{T: ts, V: vs} }

// current is the capacity to plan against.
func (c Capacity) current() (float64, error) {
	if c.T == nil && c.V == nil {
		if !(c.Value > 0) || math.IsInf(c.Value, 0) {
			return 0, fmt.Errorf("%w: capacity %v must be positive and finite", ErrBadConfig, c.Value)
		}
		return c.Value, nil
	}
	if err := validateSeries(c.T, c.V); err != nil {
		return 0, fmt.Errorf("capacity series: %w", err)
	}
	for i := len(c.V) - 1; i >= 0; i-- {
		if isFinite(c.V[i]) {
			if c.V[i] <= 0 {
				return 0, fmt.Errorf("%w: last capacity %v at %s must be positive", ErrBadConfig, c.V[i], c.T[i].Format(time.RFC3339))
			}
			return c.V[i], nil
		}
	}
	return 0, fmt.Errorf("capacity series: %w: no finite value", ErrTooFewPoints)
}

// Confidence grades how much a Report can be trusted.
type Confidence string

const (
	ConfidenceLow    Confidence = "low"    // under 2 days: linear trend only
	ConfidenceMedium Confidence = "medium" // a configured season could not be fitted
	ConfidenceHigh   Confidence = "high"   // every configured season fitted
)

// Method names how a Report's forecast was made.
const (
	MethodHoltWinters = "holt-winters"
	MethodLinear      = "linear-regression"
)

// Report is a capacity forecast and time to exhaustion.
type Report struct {
	// Method is MethodHoltWinters or MethodLinear; Params is the fitted
	// Holt-Winters summary (nil for MethodLinear).
	Method string
	Params *Params
	// Confidence and Reason explain the method choice and its limits.
	Confidence Confidence
	Reason     string
	// DataStart and DataEnd span the usage series; Step is its spacing.
	DataStart, DataEnd time.Time
	Step               time.Duration
	// Current is the last finite usage value, Capacity the capacity
	// planned against, Limit = Capacity*Threshold the usage that counts as
	// exhausted, and Utilisation = Current/Capacity.
	Current, Capacity, Limit, Utilisation float64
	// GrowthPerDay is the de-seasonalised growth forecast over the day
	// after DataEnd, in usage units (a damped trend grows less later).
	GrowthPerDay float64
	// Forecast holds points every ReportStep up to the horizon.
	Forecast []Point
	// ExhaustAt is when the forecast mean first reaches Limit (linearly
	// interpolated between steps); zero if not within the horizon.
	// Remaining is ExhaustAt-DataEnd (0 when ExhaustAt is zero: check it).
	ExhaustAt time.Time
	Remaining time.Duration
	// ExhaustAtPessimistic and RemainingPessimistic use the upper bound
	// of the interval instead of the mean.
	ExhaustAtPessimistic time.Time
	RemainingPessimistic time.Duration
	// AlreadyExhausted is true when Current is at or above Limit; then
	// ExhaustAt is DataEnd.
	AlreadyExhausted bool
}

// Exhaustion forecasts usage (ts, vs; NaN values are gaps) for
// cfg.Horizon and reports when it reaches capacity*cfg.Threshold.
// With under MinSeasonalSpan of data it fits a straight line (gonum
// stat.LinearRegression, Student-t prediction intervals); otherwise a
// Holt-Winters model with the seasons the data can support (under
// MinWeeklySpan, daily only). It is pure: no I/O, no clock.
func Exhaustion(ts []time.Time, vs []float64, capacity Capacity, cfg CapacityConfig) (*Report, error) {
	r, err := exhaustion(ts, vs, capacity, cfg)
	if err != nil {
		return nil, fmt.Errorf("forecast: capacity exhaustion: %w", err)
	}
	return r, nil
}

func exhaustion(ts []time.Time, vs []float64, capacity Capacity, cfg CapacityConfig) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := validateSeries(ts, vs); err != nil {
		return nil, err
	}
	capNow, err := capacity.current()
	if err != nil {
		return nil, err
	}
	r := &Report{
		DataStart: ts[0], DataEnd: ts[len(ts)-1],
		Capacity: capNow, Limit: capNow * cfg.Threshold,
		Current: math.NaN(),
	}
	for i := len(vs) - 1; i >= 0; i-- {
		if isFinite(vs[i]) {
			r.Current = vs[i]
			break
		}
	}
	r.Utilisation = r.Current / r.Capacity
	span := r.DataEnd.Sub(r.DataStart)

	var full []Point
	if span < MinSeasonalSpan {
		full, err = linearForecast(r, ts, vs, cfg)
		if err != nil {
			return nil, err
		}
	} else {
		h, err := Fit(ts, vs, cfg.Model)
		if err != nil {
			return nil, err
		}
		p := h.Params()
		r.Method, r.Params, r.Step = MethodHoltWinters, &p, h.Step()
		r.GrowthPerDay = h.Growth(24 * time.Hour)
		full = h.Forecast(r.DataEnd, cfg.Horizon, cfg.Level)
		r.Confidence, r.Reason = ConfidenceHigh, fmt.Sprintf("%s of data: Holt-Winters with seasons %v", roundDur(span), p.Seasons)
		if len(p.Dropped) > 0 {
			r.Confidence = ConfidenceMedium
			r.Reason += fmt.Sprintf("; seasons %v need at least two full periods of data and were not fitted", p.Dropped)
		}
	}
	if cfg.Horizon > span {
		r.Reason += fmt.Sprintf("; the horizon (%s) is longer than the history, so the forecast extrapolates far", roundDur(cfg.Horizon))
	}

	if r.AlreadyExhausted = r.Current >= r.Limit; r.AlreadyExhausted {
		r.ExhaustAt, r.ExhaustAtPessimistic = r.DataEnd, r.DataEnd
	} else {
		r.ExhaustAt = crossing(full, r.DataEnd, r.Current, r.Limit, func(p Point) float64 { return p.Mean })
		r.ExhaustAtPessimistic = crossing(full, r.DataEnd, r.Current, r.Limit, func(p Point) float64 { return p.Upper })
	}
	if !r.ExhaustAt.IsZero() {
		r.Remaining = r.ExhaustAt.Sub(r.DataEnd)
	}
	if !r.ExhaustAtPessimistic.IsZero() {
		r.RemainingPessimistic = r.ExhaustAtPessimistic.Sub(r.DataEnd)
	}
	r.Forecast = thin(full, max(1, int(cfg.ReportStep/r.Step)))
	return r, nil
}

// crossing is the first time value(p) reaches limit, interpolated
// linearly from the previous point (or from (start, startV) for the
// first); zero if it never does.
func crossing(pts []Point, start time.Time, startV, limit float64, value func(Point) float64) time.Time {
	prevT, prevV := start, startV
	for _, p := range pts {
		v := value(p)
		if v >= limit {
			if !(prevV < limit) || !(v > prevV) {
				return p.T
			}
			frac := (limit - prevV) / (v - prevV)
			return prevT.Add(time.Duration(frac * float64(p.T.Sub(prevT))))
		}
		prevT, prevV = p.T, v
	}
	return time.Time{}
}

// thin keeps every k-th point (the k-th, 2k-th, ...).
func thin(pts []Point, k int) []Point {
	if k <= 1 {
		return pts
	}
	out := make([]Point, 0, len(pts)/k+1)
	for i := k - 1; i < len(pts); i += k {
		out = append(out, pts[i])
	}
	return out
}

// linearForecast fits usage = a + b*t by least squares and forecasts it
// every step with Student-t prediction intervals.
func linearForecast(r *Report, ts []time.Time, vs []float64, cfg CapacityConfig) ([]Point, error) {
	step := cfg.Model.Step
	if step <= 0 {
		step = medianStep(ts)
	}
	var xs, ys []float64
	for i, v := range vs {
		if isFinite(v) {
			xs = append(xs, ts[i].Sub(r.DataStart).Seconds())
			ys = append(ys, v)
		}
	}
	if len(xs) < minFinitePoints {
		return nil, fmt.Errorf("%w: got %d, need at least %d", ErrTooFewPoints, len(xs), minFinitePoints)
	}
	a, b := stat.LinearRegression(xs, ys, nil, false)
	meanX := stat.Mean(xs, nil)
	var sxx, sse float64
	for i, x := range xs {
		sxx += (x - meanX) * (x - meanX)
		e := ys[i] - (a + b*x)
		sse += e * e
	}
	n := float64(len(xs))
	s := math.Sqrt(sse / (n - 2))
	if !isFinite(a) || !isFinite(b) || !isFinite(s) {
		return nil, fmt.Errorf("%w: values too large for float64 arithmetic", ErrNumerical)
	}
	tq := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: n - 2}.Quantile(0.5 + cfg.Level/2)

	r.Method, r.Step = MethodLinear, step
	r.GrowthPerDay = b * (24 * time.Hour).Seconds()
	r.Confidence = ConfidenceLow
	r.Reason = fmt.Sprintf("only %s of data (under %s): linear trend without seasonality; daily peaks are not modelled",
		roundDur(r.DataEnd.Sub(r.DataStart)), roundDur(MinSeasonalSpan))

	steps := int64(cfg.Horizon / step)
	if steps > maxSlots {
		steps = maxSlots
	}
	pts := make([]Point, 0, steps)
	for k := int64(1); k <= steps; k++ {
		t := r.DataEnd.Add(time.Duration(k) * step)
		x := t.Sub(r.DataStart).Seconds()
		mean := a + b*x
		half := tq * s * math.Sqrt(1+1/n+(x-meanX)*(x-meanX)/sxx)
		pts = append(pts, Point{T: t, Mean: mean, Lower: mean - half, Upper: mean + half})
	}
	return pts, nil
}

func roundDur(d time.Duration) time.Duration {
	if d >= time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}
