package analyzer

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/dsp/fourier"
	"gonum.org/v1/gonum/stat"
)

// Period detection thresholds on the autocorrelation r(k) of the
// detrended series.
const (
	// periodMinACF is the autocorrelation a period must reach (its strength).
	periodMinACF = 0.3
	// periodMinDrop is how far r must fall before the peak and rise again:
	// a periodic ACF swings, a trend's or random walk's decays.
	periodMinDrop = 0.3
	// periodHarmonic: the shortest candidate within this fraction of the
	// best wins, since multiples of a period are periods too.
	periodHarmonic = 0.85
	// periodMinPower: the periodogram near the period's frequency must
	// exceed this multiple of the median periodogram power.
	periodMinPower = 10
)

// DetectPeriod finds the dominant period of vs, in points, between
// minPeriod and maxPeriod, and its strength in [0,1] (the autocorrelation
// at that lag). It returns 0, 0 when there is no significant period: white
// noise, a random walk, a trend, a constant, or non-finite values.
//
// The series is detrended (least-squares line), its periodogram and
// autocorrelation are computed with one zero-padded FFT (gonum
// dsp/fourier), and each positive lobe of the autocorrelation (between
// zero crossings) is a candidate, at its highest lag. A candidate must
// reach periodMinACF, follow a dip of periodMinDrop, recur at twice its
// lag, and stand out in the periodogram; the shortest candidate almost as
// strong as the best wins, so daily+weekly data reports the daily period.
// The series must hold at least three periods: maxPeriod is capped at
// len(vs)/3. Cost is O(n log n) time and O(n) memory.
func DetectPeriod(vs []float64, minPeriod, maxPeriod int) (period int, strength float64) {
	n := len(vs)
	minPeriod = max(minPeriod, 2)
	maxPeriod = min(maxPeriod, n/3)
	if maxPeriod < minPeriod {
		return 0, 0
	}
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, 0
		}
	}
	// Work on vs/max|vs| so squares cannot overflow.
	scale := maxAbs(vs)
	if scale == 0 {
		return 0, 0
	}
	idx, ys := make([]float64, n), make([]float64, n)
	for i, v := range vs {
		idx[i], ys[i] = float64(i), v/scale
	}
	a, b := stat.LinearRegression(idx, ys, nil, false)
	m := 1
	for m < 2*n {
		m <<= 1
	}
	x := make([]float64, m) // detrended, zero-padded
	for i, y := range ys {
		x[i] = y - (a + b*float64(i))
	}
	fft := fourier.NewFFT(m)
	coef := fft.Coefficients(nil, x)
	power := make([]float64, len(coef))
	for i, c := range coef {
		p := real(c)*real(c) + imag(c)*imag(c)
		power[i] = p
		coef[i] = complex(p, 0)
	}
	acf := fft.Sequence(x, coef) // x is free again; reuse it
	if !(acf[0] > 1e-12*float64(m)*float64(n)) || math.IsInf(acf[0], 0) {
		return 0, 0 // (numerically) a straight line
	}
	r := func(k int) float64 { return acf[k] / acf[0] * float64(n) / float64(n-k) }
	medPower := median(sortedCopy(power[1:]))

	type cand struct {
		lag int
		r   float64
	}
	var cands []cand
	best := 0.0
	dip := math.Inf(1) // minimum of r since the last lobe
	for k := 1; k <= maxPeriod; {
		if rk := r(k); !(rk > 0) { // NaN counts as a dip too, so k advances
			dip = math.Min(dip, rk)
			k++
			continue
		}
		// A positive lobe: its highest lag is the candidate.
		peak, pr := k, r(k)
		for k <= 2*maxPeriod && k < n && r(k) > 0 {
			if rk := r(k); rk > pr {
				peak, pr = k, rk
			}
			k++
		}
		if peak >= minPeriod && peak <= maxPeriod && pr >= periodMinACF && pr-dip >= periodMinDrop &&
			recurs(r, peak, n) && spectralPeak(power, m, peak, medPower) {
			cands = append(cands, cand{peak, pr})
			best = math.Max(best, pr)
		}
		dip = math.Inf(1)
		if k > maxPeriod {
			break
		}
	}
	for _, c := range cands {
		if c.r >= periodHarmonic*best {
			lag := refineLag(r, c.lag, n)
			return lag, math.Min(1, math.Max(c.r, r(lag)))
		}
	}
	return 0, 0
}

// refineLag moves a candidate lag to the vertex of a least-squares
// parabola through f(p) = r(p) + r(2p) for p within 10% of it: a lobe's
// top is flat and noisy, the fit averages the noise over the lobe, and
// the second multiple doubles the lever on the period's length.
func refineLag(r func(int) float64, lag, n int) int {
	w := max(2, lag/10)
	f := func(p int) float64 {
		if 2*p < n {
			return r(p) + r(2*p)
		}
		return r(p)
	}
	// Centred x makes the odd sums vanish: y = a + b x + c x^2.
	var k, sx2, sx4, sy, sxy, sx2y float64
	for d := -w; d <= w; d++ {
		p := lag + d
		if p < 2 || p >= n {
			continue
		}
		x, y := float64(d), f(p)
		k++
		sx2 += x * x
		sx4 += x * x * x * x
		sy += y
		sxy += x * y
		sx2y += x * x * y
	}
	if k < 3 || sx2 == 0 {
		return lag
	}
	b := sxy / sx2
	det := k*sx4 - sx2*sx2
	if det == 0 {
		return lag
	}
	c := (k*sx2y - sx2*sy) / det
	if c >= 0 {
		return lag // not a peak: keep the lobe's top
	}
	d := math.Max(-float64(w), math.Min(float64(w), -b/(2*c)))
	return lag + int(math.Round(d))
}

// recurs reports whether r also peaks near twice the lag: a period repeats.
func recurs(r func(int) float64, lag, n int) bool {
	hi := min(2*lag+lag/4, n-1)
	best := math.Inf(-1)
	for k := 2*lag - lag/4; k <= hi; k++ {
		best = math.Max(best, r(k))
	}
	return best >= periodMinACF/2
}

// spectralPeak reports whether the periodogram within a bin of the
// period's frequency stands above the median power.
func spectralPeak(power []float64, m, lag int, med float64) bool {
	f := float64(m) / float64(lag)
	lo, hi := max(1, int(f)-1), min(len(power)-1, int(math.Ceil(f))+1)
	top := 0.0
	for i := lo; i <= hi; i++ {
		top = math.Max(top, power[i])
	}
	return top >= periodMinPower*med
}

func maxAbs(vs []float64) float64 {
	m := 0.0
	for _, v := range vs {
		m = math.Max(m, math.Abs(v))
	}
	return m
}

func sortedCopy(vs []float64) []float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	return s
}

// PeriodTracker re-detects the period of a stream on a sliding buffer of
// its last Buffer points (float32, so 4 bytes a point), every Every points
// once the buffer is full. NaN points are skipped.
type PeriodTracker struct {
	minPeriod, maxPeriod, every int
	ring                        []float32
	pos, n, since               int
	period                      int
	strength                    float64
}

// NewPeriodTracker returns a tracker for periods in [minPeriod, maxPeriod]
// with a buffer of 3*maxPeriod points (the least DetectPeriod needs),
// re-detecting every `every` points (default maxPeriod when <= 0).
func NewPeriodTracker(minPeriod, maxPeriod, every int) *PeriodTracker {
	maxPeriod = max(maxPeriod, 2)
	if every <= 0 {
		every = maxPeriod
	}
	return &PeriodTracker{minPeriod: minPeriod, maxPeriod: maxPeriod, every: every,
		ring: make([]float32, 3*maxPeriod)}
}

// Add feeds one point and returns the current period (0 if none) and its
// strength.
func (p *PeriodTracker) Add(v float64) (period int, strength float64) {
	if math.IsNaN(v) {
		return p.period, p.strength
	}
	p.ring[p.pos] = float32(finiteClamp(v, math.MaxFloat32))
	p.pos = (p.pos + 1) % len(p.ring)
	p.n = min(p.n+1, len(p.ring))
	p.since++
	if p.n == len(p.ring) && (p.since >= p.every || p.period == 0 && p.since == len(p.ring)) {
		p.since = 0
		p.period, p.strength = DetectPeriod(p.values(), p.minPeriod, p.maxPeriod)
	}
	return p.period, p.strength
}

// values returns the buffer oldest first as float64, in a new slice that
// lives only through one detection.
func (p *PeriodTracker) values() []float64 {
	vs := make([]float64, len(p.ring))
	for i := range vs {
		vs[i] = float64(p.ring[(p.pos+i)%len(p.ring)])
	}
	return vs
}
