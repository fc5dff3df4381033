package analyzer

import (
	"fmt"
	"math"
	"time"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distuv"
)

// MultivariateConfig configures a Multivariate model.
type MultivariateConfig struct {
	// Alpha is the weight of a new point in the EW mean and covariance
	// (default 0.02).
	Alpha float64
	// Shrink pulls the covariance towards its diagonal, the fraction of
	// each covariance removed, so it stays invertible when dimensions move
	// in lockstep (default 0.05).
	Shrink float64
	// Warmup is the number of points scored 0 while the covariance forms
	// (default 50).
	Warmup int
	// HuberP: a point whose chi-squared tail is below HuberP updates the
	// mean and covariance with its weight scaled down by q/D^2 (q the
	// chi-squared 1-HuberP quantile), so anomalies do not become the norm
	// (default 0.001).
	HuberP float64
	// BoundZ is the half-width of Lower/Upper in conditional sigmas
	// (default 4).
	BoundZ float64
}

func (c MultivariateConfig) withDefaults() MultivariateConfig {
	if !(c.Alpha > 0 && c.Alpha < 1) {
		c.Alpha = 0.02
	}
	if !(c.Shrink > 0 && c.Shrink < 1) {
		c.Shrink = 0.05
	}
	if c.Warmup <= 0 {
		c.Warmup = 50
	}
	if !(c.HuberP > 0 && c.HuberP < 1) {
		c.HuberP = 0.001
	}
	if !(c.BoundZ > 0) {
		c.BoundZ = 4
	}
	return c
}

// VecResult is a Multivariate model's verdict on one vector.
type VecResult struct {
	// Score is the anomaly score in [0,1], on the same calibration as
	// Result.Score.
	Score float64
	// Expected is, per dimension, the value expected given the other
	// dimensions' values (the conditional mean under the fitted normal),
	// so a joint anomaly shows which value breaks the correlation.
	Expected []float64
	// Lower and Upper bound each dimension given the others.
	Lower, Upper []float64
	// Contrib is each dimension's share of the anomaly (sums to 1, or all
	// 0 when nothing deviates): its squared conditional z-score over their
	// sum.
	Contrib []float64
}

// Multivariate scores vectors of related series (say throughput, latency
// and errors of one service) by their Mahalanobis distance from an EW mean
// under an EW covariance, shrunk towards its diagonal so it is invertible,
// factorised by Cholesky (gonum mat). The squared distance's chi-squared
// tail (gonum distuv, degrees of freedom = dimensions) maps onto the
// shared calibration, so a combination that breaks the usual correlation
// scores high even when every value is within its own normal range. Time
// is O(d^3) per point (tiny for a handful of series), memory O(d^2).
type Multivariate struct {
	cfg     MultivariateConfig
	d       int
	mean    []float64
	cov     *mat.SymDense
	reg     *mat.SymDense
	prec    *mat.SymDense
	chol    mat.Cholesky
	diff, w *mat.VecDense
	floors  []scaleFloor
	chi     distuv.ChiSquared
	huber   float64 // chi-squared 1-HuberP quantile
	n       int
}

// NewMultivariate returns a model for vectors of dim values; zero config
// fields take defaults.
func NewMultivariate(dim int, cfg MultivariateConfig) *Multivariate {
	if dim < 1 {
		panic(fmt.Sprintf("analyzer: NewMultivariate dimension %d < 1", dim))
	}
	cfg = cfg.withDefaults()
	chi := distuv.ChiSquared{K: float64(dim)}
	return &Multivariate{cfg: cfg, d: dim, mean: make([]float64, dim),
		cov: mat.NewSymDense(dim, nil), reg: mat.NewSymDense(dim, nil), prec: mat.NewSymDense(dim, nil),
		diff: mat.NewVecDense(dim, nil), w: mat.NewVecDense(dim, nil),
		floors: make([]scaleFloor, dim), chi: chi, huber: chi.Quantile(1 - cfg.HuberP)}
}

// Dim returns the number of dimensions.
func (m *Multivariate) Dim() int { return m.d }

// ObserveVec scores one vector; len(x) must equal Dim (it panics
// otherwise, as gonum does on dimension mismatches). A vector with any NaN
// is skipped: score 0, NaN expectations, state untouched. The returned
// slices are new on each call.
func (m *Multivariate) ObserveVec(_ time.Time, x []float64) VecResult {
	if len(x) != m.d {
		panic(fmt.Sprintf("analyzer: Multivariate.ObserveVec got %d values, want %d", len(x), m.d))
	}
	d := m.d
	buf := make([]float64, 4*d)
	res := VecResult{Expected: buf[:d:d], Lower: buf[d : 2*d : 2*d], Upper: buf[2*d : 3*d : 3*d], Contrib: buf[3*d:]}
	for _, v := range x {
		if math.IsNaN(v) {
			for i := range 3 * d {
				buf[i] = math.NaN()
			}
			return res
		}
	}
	m.n++
	if m.n == 1 {
		for i, v := range x {
			v = finiteClamp(v, math.MaxFloat64/8)
			m.mean[i] = v
			m.floors[i].add(v)
			res.Expected[i], res.Lower[i], res.Upper[i] = v, v, v
		}
		return res
	}

	// Regularised covariance: shrink off-diagonals, floor the variances.
	lam := m.cfg.Shrink
	for i := range d {
		fl := m.floors[i].floor()
		m.reg.SetSym(i, i, math.Max(m.cov.At(i, i), fl*fl))
		for j := i + 1; j < d; j++ {
			m.reg.SetSym(i, j, (1-lam)*m.cov.At(i, j))
		}
	}
	for i, v := range x {
		v = finiteClamp(v, math.MaxFloat64/8)
		m.diff.SetVec(i, v-m.mean[i])
		m.floors[i].add(v)
	}
	if !m.chol.Factorize(m.reg) || m.chol.SolveVecTo(m.w, m.diff) != nil || m.chol.InverseTo(m.prec) != nil {
		// Numerically singular even after shrinkage (say, wildly different
		// magnitudes): fall back to the diagonal.
		m.prec.Zero()
		for i := range d {
			m.prec.SetSym(i, i, 1/m.reg.At(i, i))
			m.w.SetVec(i, m.diff.AtVec(i)/m.reg.At(i, i))
		}
	}
	d2 := math.Max(0, mat.Dot(m.diff, m.w))
	if math.IsNaN(d2) {
		d2 = math.Inf(1)
	}
	// Conditional mean and sigma of x_i given the rest: x_i - w_i/P_ii
	// and 1/sqrt(P_ii), with P the precision matrix.
	sumZ2 := 0.0
	for i := range d {
		pii := m.prec.At(i, i)
		wi := m.w.AtVec(i)
		sd := 1 / math.Sqrt(pii)
		res.Expected[i] = x[i] - wi/pii
		res.Lower[i], res.Upper[i] = res.Expected[i]-m.cfg.BoundZ*sd, res.Expected[i]+m.cfg.BoundZ*sd
		z2 := wi * wi / pii
		if math.IsNaN(z2) || math.IsInf(z2, 0) {
			z2 = math.MaxFloat64 / float64(2*d)
		}
		res.Contrib[i] = z2
		sumZ2 += z2
	}
	for i := range d {
		if sumZ2 > 0 {
			res.Contrib[i] /= sumZ2
		} else {
			res.Contrib[i] = 0
		}
	}

	a := m.cfg.Alpha
	if m.n <= m.cfg.Warmup {
		a = math.Max(a, 1/float64(m.n))
		for i := range d {
			res.Lower[i], res.Upper[i] = math.Min(res.Lower[i], x[i]), math.Max(res.Upper[i], x[i])
		}
	} else {
		res.Score = pScore(m.chi.Survival(d2))
		if d2 > m.huber {
			a *= m.huber / d2
		}
	}
	for i := range d {
		m.mean[i] += a * m.diff.AtVec(i)
	}
	// cov = (1-a)(cov + a diff diff^T), as for a single series' EW variance.
	m.cov.SymRankOne(m.cov, a, m.diff)
	m.cov.ScaleSym(1-a, m.cov)
	if !finiteSym(m.cov) {
		m.cov.Zero() // overflowed on extreme inputs: relearn the spread
	}
	return res
}

func finiteSym(s *mat.SymDense) bool {
	n := s.SymmetricDim()
	for i := range n {
		for j := i; j < n; j++ {
			if v := s.At(i, j); math.IsNaN(v) || math.IsInf(v, 0) {
				return false
			}
		}
	}
	return true
}
