package forecast

import (
	"fmt"
	"math"
	"slices"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

// DefaultSeasons are the seasonal periods fitted when Config.Seasons is nil:
// daily and weekly.
var DefaultSeasons = []time.Duration{24 * time.Hour, 7 * 24 * time.Hour}

// MaxAbsValue is the largest magnitude Fit accepts: squared errors of
// larger values summed over millions of steps would overflow float64.
const MaxAbsValue = 1e100

// MaxSeasons is the most seasonal periods one model fits.
const MaxSeasons = 2

// Defaults for Config.
const (
	DefaultLevel          = 0.95
	DefaultMaxEvaluations = 1500
)

// Config configures Fit. The zero value is usable: step from the data,
// daily and weekly seasons, undamped trend, 95% intervals.
type Config struct {
	// Step is the sampling interval of the model. Zero means the median
	// spacing of the input timestamps. Points are snapped to the nearest
	// multiple of Step from the first timestamp; points sharing a slot are
	// averaged and empty slots are gaps.
	Step time.Duration
	// Seasons are the seasonal periods (at most MaxSeasons). Nil means
	// DefaultSeasons. Each is rounded to a whole number of steps. A season
	// shorter than two steps, or longer than half the data, is dropped and
	// listed in Params.Dropped: fewer than two full periods cannot separate
	// a season from trend and noise.
	Seasons []time.Duration
	// NonSeasonal fits level and trend only and ignores Seasons.
	NonSeasonal bool
	// Damped multiplies the trend by phi in (0.8, 1) every step, so long
	// forecasts level off instead of growing linearly for ever.
	Damped bool
	// Level is the coverage of the band Update returns, in (0,1).
	// Zero means DefaultLevel (0.95).
	Level float64
	// MaxEvaluations bounds the objective evaluations of the optimiser
	// (each one pass over the data). Zero means DefaultMaxEvaluations.
	MaxEvaluations int
}

// withDefaults validates c and fills its defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Step < 0 {
		return c, fmt.Errorf("%w: Step %s is negative", ErrBadConfig, c.Step)
	}
	if c.Level == 0 {
		c.Level = DefaultLevel
	}
	if !(c.Level > 0 && c.Level < 1) {
		return c, fmt.Errorf("%w: Level %v must be in (0,1), e.g. 0.95", ErrBadConfig, c.Level)
	}
	if c.MaxEvaluations == 0 {
		c.MaxEvaluations = DefaultMaxEvaluations
	}
	if c.MaxEvaluations < 0 {
		return c, fmt.Errorf("%w: MaxEvaluations %d is negative", ErrBadConfig, c.MaxEvaluations)
	}
	if c.NonSeasonal {
		c.Seasons = nil
		return c, nil
	}
	if c.Seasons == nil {
		c.Seasons = DefaultSeasons
	}
	if len(c.Seasons) > MaxSeasons {
		return c, fmt.Errorf("%w: %d seasons given, at most %d are supported", ErrBadConfig, len(c.Seasons), MaxSeasons)
	}
	for _, s := range c.Seasons {
		if s <= 0 {
			return c, fmt.Errorf("%w: season %s must be positive", ErrBadConfig, s)
		}
	}
	c.Seasons = slices.Clone(c.Seasons)
	return c, nil
}

// Params are a fitted model's parameters and fit statistics, for display.
type Params struct {
	// Alpha, Beta and Gammas (one per season, in Seasons order) are the
	// smoothing weights of level, trend and seasonal indices, in (0,1).
	Alpha, Beta float64
	Gammas      []float64
	// Phi is the trend damping factor; 1 when the trend is not damped.
	Phi float64
	// Step is the sampling interval; Seasons are the fitted periods and
	// Dropped the configured ones left out (see Config.Seasons).
	Step    time.Duration
	Seasons []time.Duration
	Dropped []time.Duration
	// Level is the coverage of Update's band.
	Level float64
	// Sigma is the root mean squared one-step-ahead error of the fit.
	Sigma float64
	// Observations is the number of finite values fitted; Slots the
	// number of steps they span (the difference is gaps).
	Observations, Slots int
	// Evaluations is the number of objective evaluations the fit took.
	Evaluations int
}

// Point is one forecast: the mean and a central prediction interval.
type Point struct {
	T                  time.Time
	Mean, Lower, Upper float64
}

// HoltWinters is a fitted additive Holt-Winters model with up to two
// seasons (Taylor's double-seasonal form) and optional damped trend. It
// is not safe for concurrent use; Forecast and Params do not modify it.
type HoltWinters struct {
	origin  time.Time     // time of slot 0
	step    time.Duration // slot width
	seasons []time.Duration
	dropped []time.Duration
	level   float64 // Update band coverage
	z       float64 // normal quantile for level
	core    core
	next    int64   // slot the next observation is expected in
	since   int64   // slots since the last finite observation
	sigma2  float64 // one-step error variance
	nobs    int
	slots   int
	evals   int
}

// core is the model's state and smoothing weights. Absent seasons are
// represented by period 1, index 0 and weight 0, so the hot loop has no
// branches on the number of seasons.
type core struct {
	alpha, beta, phi float64
	gamma            [MaxSeasons]float64
	period           [MaxSeasons]int
	seas             [MaxSeasons][]float64
	pos              [MaxSeasons]int // index of the next slot in each season
	lvl, trend       float64
}

// oneStep is the forecast for the next slot.
func (c *core) oneStep() float64 {
	return c.lvl + c.phi*c.trend + c.seas[0][c.pos[0]] + c.seas[1][c.pos[1]]
}

// observe updates the state with finite y at the next slot and returns
// the one-step error. If the update would make the state non-finite
// (absurdly large y), the slot is treated as missing and ok is false.
func (c *core) observe(y float64) (err float64, ok bool) {
	s0, s1 := c.seas[0][c.pos[0]], c.seas[1][c.pos[1]]
	pb := c.phi * c.trend
	err = y - (c.lvl + pb + s0 + s1)
	lvl := c.alpha*(y-s0-s1) + (1-c.alpha)*(c.lvl+pb)
	trend := c.beta*(lvl-c.lvl) + (1-c.beta)*pb
	n0 := c.gamma[0]*(y-lvl-s1) + (1-c.gamma[0])*s0
	n1 := c.gamma[1]*(y-lvl-s0) + (1-c.gamma[1])*s1
	if !isFinite(err) || !isFinite(lvl) || !isFinite(trend) || !isFinite(n0) || !isFinite(n1) {
		c.skip(1)
		return 0, false
	}
	c.lvl, c.trend = lvl, trend
	c.seas[0][c.pos[0]], c.seas[1][c.pos[1]] = n0, n1
	c.advance(1)
	return err, true
}

// skip advances the state over g missing slots: the level follows the
// (damped) trend and seasonal indices are left as they are.
func (c *core) skip(g int64) {
	if g <= 0 {
		return
	}
	if g == 1 {
		c.trend *= c.phi
		c.lvl += c.trend
	} else {
		c.lvl += c.trend * phiSum(c.phi, g)
		c.trend *= math.Pow(c.phi, float64(g))
	}
	c.advance(g)
}

func (c *core) advance(g int64) {
	if g == 1 { // the hot path: no division
		for i := range c.pos {
			if c.pos[i]++; c.pos[i] == c.period[i] {
				c.pos[i] = 0
			}
		}
		return
	}
	for i := range c.pos {
		c.pos[i] = int((int64(c.pos[i]) + g) % int64(c.period[i]))
	}
}

// phiSum is phi + phi^2 + ... + phi^h (h when phi is 1).
func phiSum(phi float64, h int64) float64 {
	if phi == 1 {
		return float64(h)
	}
	return phi * (1 - math.Pow(phi, float64(h))) / (1 - phi)
}

// clone deep-copies the state.
func (c *core) clone() core {
	d := *c
	for i := range d.seas {
		d.seas[i] = slices.Clone(c.seas[i])
	}
	return d
}

// Fit fits a Holt-Winters model to the series ts, vs (timestamps strictly
// increasing; NaN and ±Inf values are gaps). See the package
// documentation for the model, initialisation and fitting.
func Fit(ts []time.Time, vs []float64, cfg Config) (*HoltWinters, error) {
	h, err := fit(ts, vs, cfg)
	if err != nil {
		return nil, fmt.Errorf("forecast: fit holt-winters: %w", err)
	}
	return h, nil
}

func fit(ts []time.Time, vs []float64, cfg Config) (*HoltWinters, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := validateSeries(ts, vs); err != nil {
		return nil, err
	}
	step := cfg.Step
	if step == 0 {
		if step = medianStep(ts); step == 0 {
			return nil, fmt.Errorf("%w: got 1 point, need at least %d", ErrTooFewPoints, minFinitePoints)
		}
	}
	g, err := newGrid(ts, vs, step)
	if err != nil {
		return nil, err
	}
	for k, v := range g.vals {
		if math.Abs(v) > MaxAbsValue {
			return nil, fmt.Errorf("%w: value %g at %s exceeds ±%g; rescale the series",
				ErrNumerical, v, g.origin.Add(time.Duration(k)*step).Format(time.RFC3339), MaxAbsValue)
		}
	}
	if g.finite < minFinitePoints {
		return nil, fmt.Errorf("%w: got %d, need at least %d", ErrTooFewPoints, g.finite, minFinitePoints)
	}
	h := &HoltWinters{origin: g.origin, step: step, level: cfg.Level, slots: len(g.vals), nobs: g.finite}
	h.z = distuv.UnitNormal.Quantile(0.5 + cfg.Level/2)

	// Choose the seasons the data can support.
	var periods []int
	for _, s := range cfg.Seasons {
		m := int((s + step/2) / step)
		if m < 2 || 2*m > len(g.vals) || slices.Contains(periods, m) {
			h.dropped = append(h.dropped, s)
			continue
		}
		periods = append(periods, m)
		h.seasons = append(h.seasons, s)
	}
	// Keep seasons sorted by period so Gammas line up with Seasons.
	idx := make([]int, len(periods))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return periods[a] - periods[b] })
	sortedP := make([]int, len(idx))
	sortedS := make([]time.Duration, len(idx))
	for i, j := range idx {
		sortedP[i], sortedS[i] = periods[j], h.seasons[j]
	}
	periods, h.seasons = sortedP, sortedS

	init, window := initialState(g.vals, periods)
	// Score only errors after the initialisation window when enough data
	// follow it: inside it the seasonal indices have seen the values they
	// forecast, which understates the error and favours frozen seasons.
	scoreFrom := 0
	if rest := len(g.vals) - window; rest >= max(10, window/4) {
		scoreFrom = window
	}
	best, evals := optimise(g.vals, scoreFrom, init, len(periods), cfg)
	h.evals = evals

	c := init.clone()
	best.apply(&c)
	sse, n := run(&c, g.vals, scoreFrom)
	h.core = c
	h.next = int64(len(g.vals))
	h.since = trailingGaps(g.vals)
	if n > 0 {
		h.sigma2 = sse / float64(n)
	}
	if !h.finite() {
		return nil, fmt.Errorf("%w: values too large for float64 arithmetic (max |v| about 1e150)", ErrNumerical)
	}
	return h, nil
}

// trailingGaps counts missing slots at the end of vals.
func trailingGaps(vals []float64) int64 {
	var n int64
	for i := len(vals) - 1; i >= 0 && math.IsNaN(vals[i]); i-- {
		n++
	}
	return n
}

// finite reports whether every state and parameter value is finite.
func (h *HoltWinters) finite() bool {
	c := &h.core
	if !isFinite(c.lvl) || !isFinite(c.trend) || !isFinite(h.sigma2) {
		return false
	}
	for _, s := range c.seas {
		for _, v := range s {
			if !isFinite(v) {
				return false
			}
		}
	}
	return true
}

// run passes the state over vals from the current position and returns
// the sum of squared one-step errors from slot scoreFrom on and their
// count.
//
// It is the optimiser's inner loop, so it skips observe's per-step
// finiteness guard: values are bounded by MaxAbsValue, and a parameter
// set that makes the state blow up shows as a non-finite sse, which the
// objective rejects and fit checks.
func run(c *core, vals []float64, scoreFrom int) (sse float64, n int) {
	alpha, beta, phi := c.alpha, c.beta, c.phi
	g0, g1 := c.gamma[0], c.gamma[1]
	seas0, seas1 := c.seas[0], c.seas[1]
	p0, p1 := c.pos[0], c.pos[1]
	m0, m1 := c.period[0], c.period[1]
	lvl, trend := c.lvl, c.trend
	for i, y := range vals {
		pb := phi * trend
		if math.IsNaN(y) {
			trend = pb
			lvl += trend
		} else {
			s0, s1 := seas0[p0], seas1[p1]
			e := y - (lvl + pb + s0 + s1)
			l := alpha*(y-s0-s1) + (1-alpha)*(lvl+pb)
			trend = beta*(l-lvl) + (1-beta)*pb
			lvl = l
			seas0[p0] = g0*(y-l-s1) + (1-g0)*s0
			seas1[p1] = g1*(y-l-s0) + (1-g1)*s1
			if i >= scoreFrom {
				sse += e * e
				n++
			}
		}
		if p0++; p0 == m0 {
			p0 = 0
		}
		if p1++; p1 == m1 {
			p1 = 0
		}
	}
	c.pos[0], c.pos[1] = p0, p1
	c.lvl, c.trend = lvl, trend
	return sse, n
}

// timeOf is the time of slot k.
func (h *HoltWinters) timeOf(k int64) time.Time {
	return h.origin.Add(time.Duration(k) * h.step)
}

// Update is the streaming step: it returns the forecast for t and its
// band (at Config.Level) made before seeing v, then learns v. Missing
// slots between the previous update and t are skipped (the band widens
// with the number of steps since the last finite value). A NaN or ±Inf v
// only advances the state. A t that falls in a slot already passed (late
// or duplicate point) changes nothing and returns NaNs.
func (h *HoltWinters) Update(t time.Time, v float64) (expected, lower, upper float64) {
	k := slotOf(h.origin, h.step, t)
	if k < h.next {
		return math.NaN(), math.NaN(), math.NaN()
	}
	if gap := k - h.next; gap > 0 {
		h.core.skip(gap)
		h.since += gap
		h.next = k
	}
	expected = h.core.oneStep()
	half := h.z * math.Sqrt(h.variance(h.since+1))
	lower, upper = expected-half, expected+half
	h.next++
	if !isFinite(v) {
		h.core.skip(1)
		h.since++
		return expected, lower, upper
	}
	if _, ok := h.core.observe(v); ok {
		h.since = 0
	} else {
		h.since++
	}
	return expected, lower, upper
}

// maxVarianceTerms caps the loop in variance; beyond it the last term is
// extrapolated, which keeps a pathological gap O(1) in memory and time.
const maxVarianceTerms = 1 << 20

// cj is the weight of a one-step error j steps back in an h-step
// forecast error (Hyndman et al. 2008, class 1 models), with Taylor's
// seasonal weights in error-correction form: gamma*(1-alpha).
func (c *core) cj(j int64, phiJ float64) float64 {
	w := c.alpha * (1 + c.beta*phiJ)
	for i := range c.gamma {
		if c.period[i] > 1 && j%int64(c.period[i]) == 0 {
			w += c.gamma[i] * (1 - c.alpha)
		}
	}
	return w
}

// variance is the analytic h-step-ahead forecast error variance:
// sigma^2 * (1 + sum_{j=1}^{h-1} c_j^2).
func (h *HoltWinters) variance(steps int64) float64 {
	sum := 1.0
	phiJ, pow := 0.0, 1.0
	var last float64
	j := int64(1)
	for ; j < steps && j <= maxVarianceTerms; j++ {
		pow *= h.core.phi
		phiJ += pow
		last = h.core.cj(j, phiJ)
		sum += last * last
	}
	if j < steps {
		sum += float64(steps-j) * last * last
	}
	return h.sigma2 * sum
}

// Forecast returns one Point per step for the slots after from, up to
// from+horizon, with central intervals of coverage level in (0,1) (other
// values mean DefaultLevel). Slots before the model's next expected slot
// cannot be forecast and are left out. Interval width comes from the
// analytic h-step error variance, so it widens with the horizon.
func (h *HoltWinters) Forecast(from time.Time, horizon time.Duration, level float64) []Point {
	if !(level > 0 && level < 1) {
		level = DefaultLevel
	}
	if horizon <= 0 {
		return nil
	}
	z := distuv.UnitNormal.Quantile(0.5 + level/2)
	first := slotOf(h.origin, h.step, from)
	if !h.timeOf(first).After(from) {
		first++
	}
	first = max(first, h.next)
	end := from.Add(horizon)
	last := slotOf(h.origin, h.step, end)
	if h.timeOf(last).After(end) {
		last--
	}
	if last < first {
		return nil
	}
	last = min(last, h.next+maxSlots-1) // bound the walk below
	if last < first {
		return nil
	}
	c := &h.core
	pts := make([]Point, 0, last-first+1)
	// Walk j = 1..(steps ahead) once, accumulating the trend sum and the
	// variance terms as we go.
	sum := 1.0 // variance multiplier for steps = since+1
	if h.since > 0 {
		sum = h.variance(h.since+1) / nonZero(h.sigma2)
	}
	// For the variance terms, indexed from the last observation.
	phiJ, pow := phiSum(c.phi, h.since), math.Pow(c.phi, float64(h.since))
	trendSum, tpow := 0.0, 1.0 // phi + ... + phi^ahead, from the state
	for k := h.next; k <= last; k++ {
		ahead := k - h.next + 1
		steps := ahead + h.since
		if ahead > 1 {
			pow *= c.phi
			phiJ += pow
			cj := c.cj(steps-1, phiJ)
			sum += cj * cj
		}
		tpow *= c.phi
		trendSum += tpow
		if k < first {
			continue
		}
		mean := c.lvl + c.trend*trendSum +
			c.seas[0][(int64(c.pos[0])+ahead-1)%int64(c.period[0])] +
			c.seas[1][(int64(c.pos[1])+ahead-1)%int64(c.period[1])]
		half := z * math.Sqrt(h.sigma2*sum)
		pts = append(pts, Point{T: h.timeOf(k), Mean: mean, Lower: mean - half, Upper: mean + half})
	}
	return pts
}

func nonZero(v float64) float64 {
	if v == 0 {
		return 1
	}
	return v
}

// Params returns the fitted parameters and fit statistics.
func (h *HoltWinters) Params() Params {
	p := Params{
		Alpha: h.core.alpha, Beta: h.core.beta, Phi: h.core.phi,
		Step: h.step, Seasons: nilIfEmpty(h.seasons), Dropped: nilIfEmpty(h.dropped),
		Level: h.level, Sigma: math.Sqrt(h.sigma2),
		Observations: h.nobs, Slots: h.slots, Evaluations: h.evals,
	}
	for i := range h.seasons {
		p.Gammas = append(p.Gammas, h.core.gamma[i])
	}
	return p
}

// Clone returns an independent copy of the model, e.g. to try updates
// without disturbing the original.
func (h *HoltWinters) Clone() *HoltWinters {
	d := *h
	d.seasons = slices.Clone(h.seasons)
	d.dropped = slices.Clone(h.dropped)
	d.core = h.core.clone()
	return &d
}

// Trend is the current (de-seasonalised) trend per step.
func (h *HoltWinters) Trend() float64 { return h.core.trend }

// Growth is the de-seasonalised change the model forecasts over the next
// d: trend * (phi + phi^2 + ... + phi^(d/step)), so a damped trend's
// decay is included.
func (h *HoltWinters) Growth(d time.Duration) float64 {
	return h.core.trend * phiSum(h.core.phi, int64(d/h.step))
}

// Step is the model's sampling interval.
func (h *HoltWinters) Step() time.Duration { return h.step }

// Next is the time of the next slot the model expects an observation in.
func (h *HoltWinters) Next() time.Time { return h.timeOf(h.next) }

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}
