package forecast

import (
	"math"

	"gonum.org/v1/gonum/stat"
)

// paramSet holds smoothing weights in their natural ranges.
type paramSet struct {
	alpha, beta, phi float64
	gamma            [MaxSeasons]float64
}

func (p paramSet) apply(c *core) {
	c.alpha, c.beta, c.phi, c.gamma = p.alpha, p.beta, p.phi, p.gamma
}

// Phi is searched in (phiMin, 1): below 0.8 a damped trend dies out within
// a few steps and is indistinguishable from none (Hyndman et al. 2008).
const phiMin = 0.8

func logistic(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
func logit(p float64) float64    { return math.Log(p / (1 - p)) }

// decode maps the optimiser's unconstrained vector to weights in (0,1)
// (phi in (phiMin,1)) with the logistic function.
func decode(x []float64, seasons int, damped bool) paramSet {
	p := paramSet{alpha: logistic(x[0]), beta: logistic(x[1]), phi: 1}
	for i := range seasons {
		p.gamma[i] = logistic(x[2+i])
	}
	if damped {
		p.phi = phiMin + (1-phiMin)*logistic(x[2+seasons])
	}
	return p
}

// Starting weights: slow level and seasons, slower trend, as in most
// automatic Holt-Winters fits; phi near 1.
const (
	startAlpha = 0.1
	startBeta  = 0.01
	startGamma = 0.1
	startPhi   = 0.98
)

// optimise minimises the mean squared one-step error of the recursion
// started from init over vals with Nelder-Mead, restarting once from the
// first optimum with a fresh simplex (Nelder-Mead often stalls on the
// first run). It returns the best weights and the evaluation count.
func optimise(vals []float64, scoreFrom int, init core, seasons int, cfg Config) (paramSet, int) {
	dim := 2 + seasons
	if cfg.Damped {
		dim++
	}
	x0 := make([]float64, dim)
	x0[0], x0[1] = logit(startAlpha), logit(startBeta)
	for i := range seasons {
		x0[2+i] = logit(startGamma)
	}
	if cfg.Damped {
		x0[2+seasons] = logit((startPhi - phiMin) / (1 - phiMin))
	}
	scratch := init.clone()
	objective := func(x []float64) float64 {
		for i := range scratch.seas {
			copy(scratch.seas[i], init.seas[i])
		}
		scratch.pos = init.pos
		scratch.lvl, scratch.trend = init.lvl, init.trend
		decode(x, seasons, cfg.Damped).apply(&scratch)
		sse, n := run(&scratch, vals, scoreFrom)
		if n == 0 || !isFinite(sse) {
			return math.MaxFloat64
		}
		return sse / float64(n)
	}

	bestX, bestF := x0, objective(x0)
	evals := 1
	// Restart once from the first optimum with a fresh simplex: Nelder-Mead
	// often stalls on a first run.
	for restart := 0; restart < 2 && cfg.MaxEvaluations > evals; restart++ {
		x, f, n := minimize(objective, bestX, cfg.MaxEvaluations-evals)
		evals += n
		if f < bestF && allFinite(x) {
			bestX, bestF = x, f
		}
	}
	return decode(bestX, seasons, cfg.Damped), evals
}

// Nelder-Mead settings shared by both minimize implementations: the
// simplex starts one logit unit wide, and a run stops when the best value
// has not improved by a relative 1e-6 for 20 iterations per dimension.
const (
	simplexSize        = 1
	convergeRelative   = 1e-6
	convergeIterPerDim = 20
)

func allFinite(x []float64) bool {
	for _, v := range x {
		if !isFinite(v) {
			return false
		}
	}
	return true
}

// initialState estimates the starting level, trend and seasonal indices
// from the first two periods of the longest season (or the first quarter
// of the data, at least 10 slots, without seasons), and returns them with
// the window's length. initialLine gives level and trend; the mean
// detrended value per phase of the shorter season gives its indices, and
// what is left per phase of the longer season gives its indices. Indices
// are centred to sum to zero; phases without data start at zero.
func initialState(vals []float64, periods []int) (core, int) {
	c := core{phi: 1}
	for i := range c.seas {
		c.period[i] = 1
		c.seas[i] = []float64{0}
	}
	for i, m := range periods {
		c.period[i] = m
		c.seas[i] = make([]float64, m)
	}
	window := len(vals) / 4
	if len(periods) > 0 {
		window = 2 * periods[len(periods)-1]
	}
	window = min(max(window, 10), len(vals))
	xs, ys := finitePoints(vals[:window])
	if len(xs) < 2 {
		xs, ys = finitePoints(vals)
	}
	a, b := initialLine(vals, xs, ys, periods)
	resid := make([]float64, len(xs))
	for i, x := range xs {
		resid[i] = ys[i] - (a + b*x)
	}
	for s, m := range periods {
		sum := make([]float64, m)
		cnt := make([]int, m)
		for i, x := range xs {
			sum[int(x)%m] += resid[i]
			cnt[int(x)%m]++
		}
		var mean float64
		var phases int
		for p := range m {
			if cnt[p] > 0 {
				sum[p] /= float64(cnt[p])
				mean += sum[p]
				phases++
			}
		}
		if phases > 0 {
			mean /= float64(phases)
		}
		for p := range m {
			if cnt[p] > 0 {
				c.seas[s][p] = sum[p] - mean
			}
		}
		for i, x := range xs {
			resid[i] -= c.seas[s][int(x)%m]
		}
	}
	// Start one slot before slot 0 so the first forecast is the line at 0.
	c.lvl, c.trend = a-b, b
	return c, window
}

// finitePoints returns the slot indices and values of the non-NaN slots.
func finitePoints(vals []float64) (xs, ys []float64) {
	for i, v := range vals {
		if !math.IsNaN(v) {
			xs = append(xs, float64(i))
			ys = append(ys, v)
		}
	}
	return xs, ys
}

// initialLine is the starting line a + b*slot. With seasons it joins the
// means of the first two periods of the longest season (b = difference of
// means / period), which a seasonal pattern cannot bias; a least-squares
// slope over whole periods of a sine is off by about amplitude*1.9/period
// per period squared. Without seasons, or if either period has no
// finite value, it is a least-squares line (gonum stat.LinearRegression)
// through the finite points xs, ys.
func initialLine(vals, xs, ys []float64, periods []int) (a, b float64) {
	if len(periods) > 0 {
		m := periods[len(periods)-1]
		m1, n1 := meanFinite(vals[:m])
		m2, n2 := meanFinite(vals[m : 2*m])
		if n1 > 0 && n2 > 0 {
			b = (m2 - m1) / float64(m)
			a = m1 - b*float64(m-1)/2
			if isFinite(a) && isFinite(b) {
				return a, b
			}
		}
	}
	switch len(xs) {
	case 0:
		return 0, 0
	case 1:
		return ys[0], 0
	}
	a, b = stat.LinearRegression(xs, ys, nil, false)
	if !isFinite(a) || !isFinite(b) {
		return ys[0], 0
	}
	return a, b
}

// meanFinite is the mean of the non-NaN values and their count.
func meanFinite(vals []float64) (float64, int) {
	var sum float64
	var n int
	for _, v := range vals {
		if !math.IsNaN(v) {
			sum += v
			n++
		}
	}
	if n == 0 {
		return 0, 0
	}
	return sum / float64(n), n
}
