package analyzer

import (
	"math"
	"sync"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

// BOCPDConfig configures a BOCPD model.
type BOCPDConfig struct {
	// Hazard is the prior probability of a change point at each point
	// (default 1/250).
	Hazard float64
	// MaxRun is the number of run lengths tracked (default 64, about 2.2
	// KB of state; time is linear in it). Runs of MaxRun-1 points or more
	// share the last slot, which forgets its oldest evidence so it stays a
	// window of MaxRun-1 points.
	MaxRun int
	// ShortRun is how recent a change point must be to count in the
	// change-point score: the posterior mass on run lengths below it
	// (default 10).
	ShortRun int
	// Warmup is the number of points scored 0 while the running scale
	// forms (default 30).
	Warmup int
	// ScaleAlpha is the weight of a new point in the running location and
	// scale that standardise the input (default 0.01).
	ScaleAlpha float64
	// Kappa0, Alpha0 and Beta0 are the Normal-Gamma prior on a new run's
	// mean and precision, in standardised units (defaults 0.1, 1, 1).
	Kappa0, Alpha0, Beta0 float64
	// BoundP is the two-sided tail outside Lower/Upper (default 0.01).
	BoundP float64
}

func (c BOCPDConfig) withDefaults() BOCPDConfig {
	if !(c.Hazard > 0 && c.Hazard < 1) {
		c.Hazard = 1.0 / 250
	}
	if c.MaxRun < 4 {
		c.MaxRun = 64
	}
	if c.ShortRun <= 0 {
		c.ShortRun = 10
	}
	c.ShortRun = min(c.ShortRun, c.MaxRun-1)
	if c.Warmup <= 0 {
		c.Warmup = 30
	}
	if !(c.ScaleAlpha > 0 && c.ScaleAlpha < 1) {
		c.ScaleAlpha = 0.01
	}
	if !(c.Kappa0 > 0) {
		c.Kappa0 = 0.1
	}
	if !(c.Alpha0 > 0) {
		c.Alpha0 = 1
	}
	if !(c.Beta0 > 0) {
		c.Beta0 = 1
	}
	if !(c.BoundP > 0 && c.BoundP < 1) {
		c.BoundP = 0.01
	}
	return c
}

// BOCPD is Bayesian online change-point detection (Adams & MacKay 2007):
// it keeps the posterior distribution of the current run length (points
// since the last change) and, per run length, a Normal-Gamma posterior of
// the run's mean and precision, whose predictive is a Student-t. The
// hazard is constant. The input is standardised by a slow EW location and
// scale, so the prior is scale-free; when they move, every run's posterior
// is mapped through the same affine change, which keeps it exact.
//
// Score is the larger of two tail probabilities on the shared calibration:
// the point's two-sided Student-t tail under the most probable run length
// (a surprise for the current regime), and the posterior probability that
// no change happened in the last ShortRun points (so a shift too small to
// surprise in one point still scores as evidence accumulates). Expected is
// the predictive mean (mixed over run lengths); Lower and Upper are the
// most probable run's predictive 1-BoundP interval. Time and memory are
// O(MaxRun).
type BOCPD struct {
	cfg BOCPDConfig
	tab *bocpdTable
	// Per run length r (r points seen): posterior probability, mean, beta
	// and log(beta); kappa = Kappa0+r and alpha = Alpha0+r/2 are implied.
	w, mu, beta, logBeta []float64
	// Running location and scale of the raw input.
	loc, vr float64
	n       int
	scale   scaleFloor
}

// bocpdTable holds constants that depend on the config only, shared by
// every model with that config: per run length, the log normaliser of the
// Student-t predictive (less its beta term) and the standard Student-t's
// 1-BoundP/2 quantile.
type bocpdTable struct {
	logNorm, quant []float64
}

type bocpdKey struct {
	alpha0, kappa0, boundP float64
	maxRun                 int
}

var bocpdTables sync.Map // bocpdKey -> *bocpdTable

func bocpdTableFor(c BOCPDConfig) *bocpdTable {
	k := bocpdKey{c.Alpha0, c.Kappa0, c.BoundP, c.MaxRun}
	if t, ok := bocpdTables.Load(k); ok {
		return t.(*bocpdTable)
	}
	t := &bocpdTable{logNorm: make([]float64, c.MaxRun), quant: make([]float64, c.MaxRun)}
	for r := range t.logNorm {
		kappa, alpha := c.Kappa0+float64(r), c.Alpha0+float64(r)/2
		st := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: 2 * alpha}
		// log density = LogProb(0) - log(sigma) - (alpha+1/2)log(1+z^2/nu)
		// with sigma^2 = beta(kappa+1)/(alpha kappa) and z = d/sigma, which is
		// logNorm + alpha log(beta) - (alpha+1/2) log(beta'), where
		// beta' = beta + kappa d^2/(2(kappa+1)) is the updated beta.
		t.logNorm[r] = st.LogProb(0) - 0.5*math.Log((kappa+1)/(alpha*kappa)) + 0.5*math.Log(2*alpha)
		t.quant[r] = st.Quantile(1 - c.BoundP/2)
	}
	v, _ := bocpdTables.LoadOrStore(k, t)
	return v.(*bocpdTable)
}

// NewBOCPD returns a BOCPD model; zero config fields take defaults.
func NewBOCPD(cfg BOCPDConfig) *BOCPD {
	cfg = cfg.withDefaults()
	m := &BOCPD{cfg: cfg, tab: bocpdTableFor(cfg)}
	R := cfg.MaxRun
	buf := make([]float64, 4*R)
	m.w, m.mu, m.beta, m.logBeta = buf[:R:R], buf[R:2*R:2*R], buf[2*R:3*R:3*R], buf[3*R:]
	m.reset()
	return m
}

// reset starts over from the prior with all mass on run length 0.
func (m *BOCPD) reset() {
	clear(m.w)
	clear(m.mu)
	for i := range m.beta {
		m.beta[i], m.logBeta[i] = m.cfg.Beta0, math.Log(m.cfg.Beta0)
	}
	m.w[0] = 1
}

// maxStd caps standardised inputs so huge or infinite values stay finite.
const maxStd = 1e6

// predictive returns run length r's Student-t location, scale and degrees
// of freedom (in standardised units).
func (m *BOCPD) predictive(r int) (mu, sigma, nu float64) {
	kappa := m.cfg.Kappa0 + float64(r)
	alpha := m.cfg.Alpha0 + float64(r)/2
	return m.mu[r], math.Sqrt(m.beta[r] * (kappa + 1) / (alpha * kappa)), 2 * alpha
}

// RunLength is the most probable number of points since the last change
// point, after the last point (MaxRun-1 stands for MaxRun-1 or more).
func (m *BOCPD) RunLength() int {
	best := 0
	for r, w := range m.w {
		if w > m.w[best] {
			best = r
		}
	}
	return best
}

// ChangeProb is the posterior probability, after the last point, that a
// change happened within the last ShortRun points.
func (m *BOCPD) ChangeProb() float64 {
	p := 0.0
	for r := 0; r < m.cfg.ShortRun; r++ {
		p += m.w[r]
	}
	return math.Min(1, p)
}

// Observe implements Model.
func (m *BOCPD) Observe(_ time.Time, v float64) Result {
	if math.IsNaN(v) {
		return nanResult // a missing point carries no evidence; skip it
	}
	if m.n == 0 {
		m.loc = finiteClamp(v, math.MaxFloat64/4)
	}
	m.n++
	s := math.Max(math.Sqrt(m.vr), m.scale.floor())
	m.scale.add(finiteClamp(v, math.MaxFloat64/4))
	x := finiteClamp((v-m.loc)/s, maxStd)

	// Predictive mean, and the most probable run length's predictive.
	R := m.cfg.MaxRun
	best, mean := 0, 0.0
	for r := range R {
		mean += m.w[r] * m.mu[r]
		if m.w[r] > m.w[best] {
			best = r
		}
	}
	bmu, bsig, bnu := m.predictive(best)
	half := m.tab.quant[best] * bsig
	res := Result{Expected: m.loc + s*mean, Lower: m.loc + s*(bmu-half), Upper: m.loc + s*(bmu+half)}
	res.Lower, res.Upper = math.Min(res.Lower, res.Expected), math.Max(res.Upper, res.Expected)

	// Run-length recursion: weight each run by its predictive density of x
	// (relative to the best, for range), then grow or reset.
	H := m.cfg.Hazard
	// Scratch per run length: log density of x, updated beta and its log
	// (on the stack for MaxRun <= 128).
	var stack [3 * 128]float64
	var sc []float64
	if R <= 128 {
		sc = stack[:3*R]
	} else {
		sc = make([]float64, 3*R)
	}
	lps, b1s, lb1s := sc[:R], sc[R:2*R], sc[2*R:]
	maxLP := math.Inf(-1)
	for r := range R {
		kappa, alpha := m.cfg.Kappa0+float64(r), m.cfg.Alpha0+float64(r)/2
		d := x - m.mu[r]
		b1s[r] = m.beta[r] + kappa*d*d/(2*(kappa+1))
		lb1s[r] = math.Log(b1s[r])
		if m.w[r] == 0 {
			lps[r] = math.Inf(-1)
			continue
		}
		lps[r] = m.tab.logNorm[r] + alpha*m.logBeta[r] - (alpha+0.5)*lb1s[r]
		if lps[r] > maxLP {
			maxLP = lps[r]
		}
	}
	total, longMass := 0.0, 0.0
	for r := range R {
		if m.w[r] != 0 {
			m.w[r] *= math.Exp(lps[r] - maxLP)
			total += m.w[r]
		}
	}
	if !(total > 0) || math.IsInf(maxLP, 0) {
		// Nothing can explain x (or the arithmetic broke down): start over
		// from the prior, which x then updates.
		m.reset()
		total = 1
		b1s[0] = m.cfg.Beta0 + m.cfg.Kappa0*x*x/(2*(m.cfg.Kappa0+1))
		lb1s[0] = math.Log(b1s[0])
	}
	// Grow runs, from the longest down; the last slot merges the two
	// longest runs, keeping the stats of the likelier, and if that was
	// the last slot's own forgets one point's worth of evidence so it
	// stays MaxRun-1 points long.
	last := R - 1
	keep := last
	if m.w[last-1] > m.w[last] {
		keep = last - 1
	}
	wLast := m.w[last] + m.w[last-1]
	m.update(last, keep, x, b1s[keep], lb1s[keep])
	if keep == last {
		m.forget(last)
	}
	m.w[last] = wLast * (1 - H)
	for r := last - 1; r >= 1; r-- {
		m.update(r, r-1, x, b1s[r-1], lb1s[r-1])
		m.w[r] = m.w[r-1] * (1 - H)
	}
	m.w[0] = total * H
	for r := range R {
		m.w[r] /= total
		if r >= m.cfg.ShortRun {
			longMass += m.w[r]
		}
	}

	if m.n > m.cfg.Warmup {
		pt := 2 * distuv.StudentsT{Mu: 0, Sigma: 1, Nu: bnu}.Survival(math.Abs(x-bmu)/bsig)
		res.Score = math.Max(pScore(pt), pScore(longMass))
	} else {
		res.Lower, res.Upper = math.Min(res.Lower, v), math.Max(res.Upper, v)
	}
	m.learnScale(v, x, s)
	m.mu[0], m.beta[0], m.logBeta[0] = 0, m.cfg.Beta0, math.Log(m.cfg.Beta0) // a new run starts from the prior
	return res
}

// update sets run r's posterior to run from's updated with x, given the
// updated beta b1 and its log.
func (m *BOCPD) update(r, from int, x, b1, lb1 float64) {
	kappa := m.cfg.Kappa0 + float64(from)
	m.beta[r], m.logBeta[r] = b1, lb1
	m.mu[r] = m.mu[from] + (x-m.mu[from])/(kappa+1)
}

// forget scales run r's evidence (beta beyond the prior) down by one
// point, matching kappa and alpha, which are pinned at r points.
func (m *BOCPD) forget(r int) {
	f := float64(r) / float64(r+1)
	m.beta[r] = m.cfg.Beta0 + (m.beta[r]-m.cfg.Beta0)*f
	m.logBeta[r] = math.Log(m.beta[r])
}

// learnScale moves the running location and scale towards v (clamped like
// x) and maps every run's posterior to the new standardisation.
func (m *BOCPD) learnScale(v, x, s float64) {
	a := m.cfg.ScaleAlpha
	if m.n <= m.cfg.Warmup {
		a = math.Max(a, 1/float64(m.n))
	}
	d := x * s // deviation from loc, clamped
	loc := m.loc + a*d
	vr := (1 - a) * (m.vr + a*d*d)
	if math.IsInf(loc, 0) || math.IsNaN(loc) || math.IsInf(vr, 0) || math.IsNaN(vr) {
		return // keep the old standardisation rather than overflow
	}
	s2 := math.Max(math.Sqrt(vr), m.scale.floor())
	// x_new = (x_old*s + loc_old - loc_new)/s2 = k*x_old + c.
	k, c := s/s2, (m.loc-loc)/s2
	lk2 := 2 * math.Log(k)
	for r := range m.mu {
		m.mu[r] = k*m.mu[r] + c
		m.beta[r] *= k * k
		m.logBeta[r] += lk2
	}
	m.loc, m.vr = loc, vr
}
