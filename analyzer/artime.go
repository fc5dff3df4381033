package analyzer

import (
	"math"
	"slices"
	"time"
)

// ARTimeConfig configures an ARTime model. The defaults are ARTime's
// (Hampton's NAB detector) except Probation, which the original derives
// from the file's length.
type ARTimeConfig struct {
	// Probation is the number of leading points learnt before anything is
	// scored (default 600, made even). It also fixes the downsampling
	// step, Probation/(Window*WindowsPerProbation) points. The original
	// uses 15% of the whole file, at most 750 points, which a stream
	// cannot know; 600 is what it uses on NAB's 4,032-point files.
	Probation int
	// Window is the number of downsampled values in a feature window, a
	// power of two (default 8).
	Window int
	// WindowsPerProbation is the number of feature windows the
	// downsampled probation holds (default 13).
	WindowsPerProbation int
	// Levels is the number of levels the range is discretized into (at
	// most 255; default 80).
	Levels int
	// Chomp snaps a value within this fraction of the range of the running
	// median level onto it (default 0.075).
	Chomp float64
	// InitialRho is the vigilance used to pick the first vigilance from
	// the probation's features (default 0.8).
	InitialRho float64
	// Pad widens the range that values are scaled by, when it is set at
	// the end of the probation and whenever a value leaves it, by this
	// fraction of the span on the side(s) exceeded, so that the range
	// changes rarely (default 0: the range seen so far).
	Pad float64
	// Mismatch, when set, reports a new cluster only when its newest value
	// is outside what the best category learnt for it (an energy
	// similarity below 1); a window whose shape alone is new, as noise
	// makes on a well-learnt wave once the vigilances near their cap, is
	// not reported (default false: the original).
	Mismatch bool
	// MaxCategories bounds the category store; when it is full, a new
	// category replaces the least recently matched one (default 192). The
	// original keeps every category.
	MaxCategories int
	// MatchCredit, when set, makes the store keep categories that keep
	// matching: a full store replaces the category whose last match is
	// oldest after crediting it with MatchCredit downsampled steps for
	// each time it matched (counting at most maxMatchCredits matches), so
	// one-off windows, which noise makes by the dozen, give way before
	// the shapes the series repeats (default 0: the least recently
	// matched).
	MatchCredit int
}

// maxMatchCredits caps the matches that MatchCredit counts, so a category
// learnt long ago does not outlive a change of regime indefinitely.
const maxMatchCredits = 16

// maxARTimeWindow is the largest ARTimeConfig.Window.
const maxARTimeWindow = 64

func (c ARTimeConfig) withDefaults() ARTimeConfig {
	if c.Probation <= 0 {
		c.Probation = 600
	}
	if c.Window < 2 || c.Window > maxARTimeWindow || c.Window&(c.Window-1) != 0 {
		c.Window = 8
	}
	if c.WindowsPerProbation <= 0 {
		c.WindowsPerProbation = 13
	}
	if c.Levels <= 0 || c.Levels > 255 {
		c.Levels = 80
	}
	if c.Chomp < 0 || c.Chomp == 0 {
		c.Chomp = 0.075
	}
	if c.InitialRho <= 0 || c.InitialRho > 1 {
		c.InitialRho = 0.8
	}
	if c.MaxCategories <= 1 {
		c.MaxCategories = 192
	}
	c.MatchCredit = max(0, c.MatchCredit)
	return c
}

// ARTime is a streaming Go version of ARTime (Mark Hampton's detector for
// the Numenta Anomaly Benchmark, 74.9 on its standard profile), written
// from the algorithm of markNZed/ARTimeNAB.jl:
//
//   - Downsampling: every Step points, the block's maximum or minimum
//     (whichever is farther from a moving average of block means) stands
//     for it, or the block mean when that extreme is within 10% of the
//     mean; it is scaled by the range, discretized into Levels levels, and
//     snapped to a running median level when within Chomp of it.
//   - Features: the last Window downsampled values, min-max normalized,
//     through a full Haar wavelet transform (itself min-max normalized),
//     followed by the values themselves: 2*Window features.
//   - A fuzzy ART with complement coding and dual vigilance (DVFA): a
//     category's activation is (|min(x,w)|/|w|)^3 times the square of an
//     "energy" match on the newest value; categories above the upper
//     vigilance learn (fast commit, w = min(x,w)), otherwise the window
//     becomes a new category, and when even the best category is below
//     the lower vigilance it is a new cluster: a candidate anomaly.
//   - The first vigilance comes from the probation's features (a fresh ART
//     at InitialRho trained from the least to the most typical window); the
//     probation is then replayed through the detector unscored.
//   - Adaptive vigilance: every half probation (in downsampled steps), and
//     12 steps after an anomaly, the upper vigilance becomes the running
//     mean activation (at most 0.97) and the lower one moves towards the
//     recent minimum activation or down by the recent shortfall, never
//     below the mean activation of past anomalies.
//   - Masking: after a new cluster or a vigilance update, new clusters
//     only alarm once 12 steps pass without one, or when their activation
//     is well below the last anomaly's.
//   - The score of an anomaly is ARTime's confidence, from how far its
//     activation falls below both vigilances and its energy mismatch; every
//     other point scores 0, so the output is sparse.
//
// Deviations, all for causality, one configuration and bounded memory:
// values are scaled by the range seen so far (the original scales by the
// whole file's minimum and maximum, known in advance): the probation's
// downsampled values are kept and turned into features when it ends, with
// the range seen by then (widened by Pad), and when a later value leaves
// the range it is widened again and everything learnt is re-expressed in
// the new scale (see widen); the probation is a fixed number of points
// (the original: 15% of the file, at most 750); the category store is
// bounded (MaxCategories, least recently matched replaced) and its
// weights are 8-bit; NaNs are skipped and do not count as points. Not
// for causality but as a noise rule, Mismatch (off by default) drops the
// new clusters whose newest value is within the learnt range.
//
// Memory: 4*(Levels+1) bytes of median histogram, 6*tw bytes of activation
// windows (tw = Probation/Step downsampled steps, 120 by default), 8*tw
// bytes of probation buffer until it ends, and 4*Window+5 bytes per
// category (8-bit weights and complements, last match, matches), up to
// MaxCategories; scratch is on the stack. Each point costs
// O(categories*Window) every Step points.
type ARTime struct {
	cfg         ARTimeConfig
	step, tw    int     // downsampling step; downsampled steps in the probation
	mask        int     // downsampled steps masked after an anomaly
	n           int     // points seen
	lo, hi      float64 // the range seen so far
	nlo, nhi    float64 // the range values are scaled by
	bSum        float64 // the current block
	bMin, bMax  float64
	bN          int
	dsi         int     // downsampled steps seen
	ma          float64 // moving average of block means
	pending     []float64
	medbin      []int32
	med         int
	below       int
	above       int
	fwin        []uint8 // the last Window levels, oldest first
	art         fuzzyART
	rhoLb       float64
	rhoUb       float64
	aMean       float64 // running mean of activations
	aN          int
	sim         []float32 // recent activations (ring)
	simPos      int
	diff        []float32 // recent shortfalls below the upper vigilance (ring)
	diffPos     int
	histSum     float64 // activations of past anomalies: sum, count, last
	histN       int
	histLast    float64
	lastAnomI   int
	lastAnomSim float64
	lastRhoI    int
	maskCat     bool
	noNewCat    int
	// fixed, set only by a diagnostic test, scales by a given range (the
	// original's whole-file minimum and maximum) instead of the range seen
	// so far; never used by the detectors.
	fixed bool
	flo   float64
	fhi   float64
}

// NewARTime returns an ARTime model; zero config fields take defaults.
func NewARTime(cfg ARTimeConfig) *ARTime {
	cfg = cfg.withDefaults()
	m := &ARTime{cfg: cfg}
	p := cfg.Probation - cfg.Probation%2
	m.step = max(1, p/(cfg.Window*cfg.WindowsPerProbation))
	m.tw = max(cfg.Window, p/m.step)
	m.mask = cfg.Window * 3 / 2
	m.sim = make([]float32, m.tw/2+1)
	for i := range m.sim {
		m.sim[i] = 1
	}
	m.diff = make([]float32, m.tw+1)
	m.medbin = make([]int32, cfg.Levels+1)
	m.fwin = make([]uint8, cfg.Window)
	m.art = fuzzyART{dim: 2 * cfg.Window, max: cfg.MaxCategories, credit: uint32(cfg.MatchCredit)}
	return m
}

// Step is the number of points averaged into one downsampled value.
func (m *ARTime) Step() int { return m.step }

// Observe implements Model.
func (m *ARTime) Observe(_ time.Time, v float64) Result {
	if math.IsNaN(v) {
		return nanResult
	}
	m.n++
	if m.n == 1 {
		m.lo, m.hi = v, v
	}
	m.lo, m.hi = math.Min(m.lo, v), math.Max(m.hi, v)
	if m.bN == 0 {
		m.bMin, m.bMax = v, v
	}
	m.bSum += v
	m.bMin, m.bMax = math.Min(m.bMin, v), math.Max(m.bMax, v)
	m.bN++
	r := Result{Expected: m.expected(v), Lower: m.lo, Upper: m.hi}
	if m.fixed {
		m.lo, m.hi = m.flo, m.fhi
	}
	if m.bN < m.step {
		return r
	}
	mean := m.bSum / float64(m.bN)
	hi, lo := m.bMax, m.bMin
	m.bSum, m.bN = 0, 0
	m.dsi++
	if m.dsi == 1 {
		m.ma = mean
	}
	m.ma = (m.ma + mean) / 2
	ds := hi
	if math.Abs(hi-m.ma) < math.Abs(lo-m.ma) { // a spike below the mean
		ds = lo
	}
	if math.Abs(ds-mean) < 0.1*mean { // a spike must be at least 10%
		ds = mean
	}
	if m.dsi <= m.tw {
		m.pending = append(m.pending, ds)
		if m.dsi == m.tw {
			m.endProbation()
		}
		return r
	}
	m.widen()
	var x [4 * maxARTimeWindow]float64 // scratch, on the stack
	m.features(x[:4*m.cfg.Window], m.dsi, ds)
	r.Score = m.detect(x[:4*m.cfg.Window], m.dsi)
	return r
}

// expected is the running median level in the range seen so far, once
// there is one.
func (m *ARTime) expected(v float64) float64 {
	if m.dsi <= m.tw {
		return v
	}
	return m.nlo + float64(m.med)/float64(m.cfg.Levels)*(m.nhi-m.nlo)
}

// widen extends the scaling range to the range seen so far (plus Pad) when
// a value has left it, and re-expresses everything learnt in the old
// scale in the new one: the categories' value weights (the wavelet
// features are scale-free), the feature window and the median histogram.
// The original scales by the whole file's range, known in advance; this is
// its causal stand-in.
func (m *ARTime) widen() {
	if m.fixed || (m.lo >= m.nlo && m.hi <= m.nhi) {
		return
	}
	olo, ohi := m.nlo, m.nhi
	nlo, nhi := math.Min(olo, m.lo), math.Max(ohi, m.hi)
	span := nhi - nlo
	if m.lo < olo {
		nlo -= m.cfg.Pad * span
	}
	if m.hi > ohi {
		nhi += m.cfg.Pad * span
	}
	m.nlo, m.nhi = nlo, nhi
	// x' = a*x + b maps old scaled values to new ones
	a, b := 0.0, 0.0
	if os, ns := ohi-olo, nhi-nlo; ns != 0 && !math.IsInf(ns, 0) && !math.IsNaN(ns) {
		a, b = os/ns, (olo-nlo)/ns
		if os == 0 {
			a = 0
		}
	}
	if math.IsNaN(a) || math.IsNaN(b) || math.IsInf(b, 0) {
		a, b = 0, 0
	}
	W, L := m.cfg.Window, float64(m.cfg.Levels)
	D := 2 * W
	art := &m.art
	for j := range art.used {
		w := art.w[j*2*D : (j+1)*2*D]
		for k := W; k < D; k++ {
			if w[k] == wOne && w[D+k] == wOne {
				continue // the uncommitted all-ones category
			}
			w[k] = quant(a*unquant(w[k]) + b)
			w[D+k] = quant(1 - (a*(1-unquant(w[D+k])) + b))
		}
	}
	lv := func(l int) int {
		return min(m.cfg.Levels, max(0, int(math.Round((a*float64(l)/L+b)*L))))
	}
	for i, l := range m.fwin {
		m.fwin[i] = uint8(lv(int(l)))
	}
	old := slices.Clone(m.medbin)
	clear(m.medbin)
	for l, c := range old {
		m.medbin[lv(l)] += c
	}
	m.med = lv(m.med)
	m.below, m.above = 0, 0
	for l, c := range m.medbin {
		if l < m.med {
			m.below += int(c)
		} else if l > m.med {
			m.above += int(c)
		}
	}
}

// endProbation turns the probation's downsampled values into features with
// the range seen so far, picks the first vigilance from them and replays
// them through the detector.
func (m *ARTime) endProbation() {
	W := m.cfg.Window
	m.nlo, m.nhi = m.lo, m.hi
	if m.fixed {
		m.nlo, m.nhi = m.flo, m.fhi
	} else if span := m.hi - m.lo; m.cfg.Pad > 0 {
		m.nlo, m.nhi = m.lo-m.cfg.Pad*span, m.hi+m.cfg.Pad*span
	}
	feats := make([][]float64, len(m.pending))
	for i, ds := range m.pending {
		feats[i] = make([]float64, 4*W)
		m.features(feats[i], i+1, ds)
	}
	m.pending = nil
	rho := m.initRho(feats[W-1:])
	m.rhoLb, m.rhoUb = rho, rho
	for i, f := range feats {
		m.detect(f, i+1)
	}
}

// features sets x (4*Window long) to the complement-coded features of the
// window ending in the downsampled value ds (the dsi-th).
func (m *ARTime) features(x2 []float64, dsi int, ds float64) {
	L := m.cfg.Levels
	x := ds - m.nlo
	if span := m.nhi - m.nlo; span != 0 {
		x /= span
	}
	if !(x >= 0) { // NaN from infinite inputs
		x = 0
	}
	level := int(math.Round(math.Min(x, 1) * float64(L)))
	// a running median level ("not strictly a running median but close
	// enough", as the original says), moved at most one level per step
	m.medbin[level]++
	if dsi == 1 {
		m.med = level
	}
	if m.med > level {
		m.below++
	} else if m.med < level {
		m.above++
	}
	pos := dsi / 2
	if pos < m.above {
		m.below += int(m.medbin[m.med])
		m.med++
		for m.med < L && m.medbin[m.med] == 0 {
			m.med++
		}
		m.above -= int(m.medbin[m.med])
	} else if pos < m.below {
		m.above += int(m.medbin[m.med])
		m.med--
		for m.med > 0 && m.medbin[m.med] == 0 {
			m.med--
		}
		m.below -= int(m.medbin[m.med])
	}
	if math.Abs(float64(level)/float64(L)-float64(m.med)/float64(L)) < m.cfg.Chomp {
		level = m.med
	}
	W := m.cfg.Window
	copy(m.fwin, m.fwin[1:])
	m.fwin[W-1] = uint8(level)
	D := 2 * W
	if dsi < W {
		for i := range D {
			x2[i], x2[D+i] = 0, 1
		}
		return
	}
	// the window, min-max normalized
	dw := x2[W:D]
	for i, l := range m.fwin {
		dw[i] = float64(l)
	}
	dlo, dhi := slices.Min(dw), slices.Max(dw)
	for i := range dw {
		dw[i] -= dlo
		if dhi != dlo {
			dw[i] /= dhi - dlo
		}
	}
	var buf [maxARTimeWindow]float64
	haar(x2[:W], dw, buf[:W])
	minMax(x2[:W])
	for i, l := range m.fwin {
		x2[W+i] = float64(l) / float64(L)
	}
	for i := range D {
		x2[D+i] = 1 - x2[i]
	}
}

// haar writes the full Haar wavelet transform of src (a power of two
// long) to dst: the coarsest approximation, then the details from the
// coarsest to the finest level. A detail is (second - first)/√2.
func haar(dst, src, buf []float64) {
	copy(buf, src)
	for n := len(src); n > 1; n /= 2 {
		h := n / 2
		for k := range h {
			a, b := buf[2*k], buf[2*k+1]
			dst[h+k] = (b - a) / math.Sqrt2
			buf[k] = (a + b) / math.Sqrt2
		}
	}
	dst[0] = buf[0]
}

// minMax scales xs to [0,1] by its own minimum and maximum (left shifted
// only when they are equal).
func minMax(xs []float64) {
	lo, hi := slices.Min(xs), slices.Max(xs)
	for i := range xs {
		xs[i] -= lo
		if hi != lo {
			xs[i] /= hi - lo
		}
	}
}

// detect runs the i-th downsampled step's features x through the ART and
// the anomaly logic and returns the anomaly's confidence or 0.
func (m *ARTime) detect(x []float64, i int) float64 {
	updAfterAnom := i-m.lastAnomI == m.mask
	updTrend := i-m.lastRhoI >= m.tw/2
	maskAfterAnom := i-m.lastAnomI <= m.mask
	if i > m.tw+m.mask && m.maskCat && m.noNewCat >= m.mask {
		m.maskCat = false
	}
	learn := i >= m.cfg.Window // windows before the first full one do not learn
	newCluster, a, ae := m.art.train(x, m.rhoLb, m.rhoUb, learn, uint32(i))
	newCluster = newCluster || !learn
	if newCluster {
		m.noNewCat = 0
	} else {
		m.noNewCat++
	}
	m.aN++
	m.aMean += (a - m.aMean) / float64(m.aN)
	m.sim[m.simPos] = float32(a)
	m.simPos = (m.simPos + 1) % len(m.sim)
	m.diff[m.diffPos] = float32(m.rhoUb - a)
	m.diffPos = (m.diffPos + 1) % len(m.diff)
	// the lowest activation while an anomaly is masked stands for it
	if i-m.lastAnomI < m.mask && m.histN > 0 && a < m.histLast {
		m.histSum += a - m.histLast
		m.histLast = a
	}
	masking := m.maskCat || maskAfterAnom
	scale := 0.7
	if maskAfterAnom {
		scale = 0.9
	}
	score := 0.0
	if i > m.tw && newCluster && (!masking || a < m.lastAnomSim*scale) && (!m.cfg.Mismatch || ae < 1) {
		score = m.confidence(a, ae)
		m.histSum += a
		m.histN++
		m.histLast = a
		m.lastAnomSim = a
		m.lastAnomI = i
	}
	m.maskCat = m.maskCat || newCluster
	if i > m.tw && (updAfterAnom || updTrend) {
		m.updateRho(i)
	}
	return score
}

// updateRho adapts the vigilances to the recent activations.
func (m *ARTime) updateRho(i int) {
	minSim := float64(slices.Min(m.sim))
	ub := math.Min(0.97, m.aMean)
	lb := m.rhoLb
	if lb <= minSim {
		lb += (minSim - lb) * 0.19
	} else {
		decr := 0.0
		if i > 2*m.tw {
			sum, n := 0.0, 0
			for _, d := range m.diff {
				if d > 0.05 {
					sum += math.Min(0.37, float64(d))
					n++
				}
			}
			if n > 0 {
				decr = sum / float64(n)
			}
		}
		lb -= math.Max(0.01, decr) / 2
		if m.histN > 0 {
			lb = math.Max(m.histSum/float64(m.histN), lb)
		}
	}
	m.rhoLb, m.rhoUb = math.Min(ub, lb), ub
	m.lastRhoI = i
	m.maskCat = true
}

// confidence is ARTime's score of an anomaly with activation sim and
// energy similarity energy: how far below both vigilances it falls,
// relative to its own shortfall, plus its energy mismatch.
func (m *ARTime) confidence(sim, energy float64) float64 {
	sim = math.Min(0.999, sim)
	ub := ((1 - sim) - (1 - m.rhoUb)) / (1 - sim)
	lb := ((1 - sim) - (1 - m.rhoLb)) / (1 - sim)
	s := ub*0.35 + lb*0.65 + (1-energy)*1.5
	s = math.Round(math.Min(1, s)*1e6) / 1e6
	if !(s > 0) {
		return 0
	}
	return s
}

// initRho picks the first vigilance: a fresh ART at InitialRho learns the
// windows from the least to the most typical (by the sum of their cosine
// similarities to the others), and the mean best activation over the
// typical part (from the middle of the probation on) is the vigilance.
func (m *ARTime) initRho(feats [][]float64) float64 {
	n := len(feats)
	D := m.art.dim
	sum := make([]float64, n)
	for i := range n {
		sum[i] = 1
		for j := range i {
			s := similarity(feats[i][:D], feats[j][:D])
			sum[i] += s
			sum[j] += s
		}
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case sum[a] < sum[b]:
			return -1
		case sum[a] > sum[b]:
			return 1
		}
		return 0
	})
	art := fuzzyART{dim: D, max: n + 1}
	rho := m.cfg.InitialRho
	from := m.tw/2 - 1 // the original's A[tw÷2:end], 1-based
	total, cnt := 0.0, 0
	for k, idx := range order {
		_, a, _ := art.train(feats[idx], rho, rho, true, uint32(k+1))
		if k >= from {
			total += a
			cnt++
		}
	}
	if cnt == 0 {
		return rho
	}
	return total / float64(cnt)
}

// similarity is the cosine similarity (1 minus the other's norm when one
// is zero).
func similarity(a, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	na, nb := math.Sqrt(aa), math.Sqrt(bb)
	switch {
	case na == 0:
		return 1 - nb
	case nb == 0:
		return 1 - na
	}
	return ab / (na * nb)
}

// fuzzyART is the dual-vigilance fuzzy ART of ARTime: complement-coded
// inputs of 2*dim values, categories of 2*dim weights in [0,1] kept in 8
// bits (to 1/255; the original keeps float64s, and on NAB with the
// original's settings 8 bits score 74.99 where float32 weights scored
// 74.85).
type fuzzyART struct {
	dim    int      // features before complement coding
	max    int      // categories kept
	credit uint32   // steps credited per match when replacing (ARTimeConfig.MatchCredit)
	w      []uint8  // categories x 2*dim, quantized
	used   []uint32 // step of each category's last match
	hits   []uint8  // matches of each category, at most maxMatchCredits
}

// wOne is the quantized weight 1.
const wOne = math.MaxUint8

func quant(x float64) uint8 { return toFixed[uint8](x) }

func unquant(q uint8) float64 { return fromFixed(q) }

// toFixed stores x in [0,1] (clipped; NaN as 0) as a fixed-point fraction
// of T's largest value; fromFixed reads it back.
func toFixed[T uint8 | uint16](x float64) T {
	if !(x > 0) {
		return 0
	}
	one := ^T(0)
	return T(math.Round(math.Min(1, x) * float64(one)))
}

func fromFixed[T uint8 | uint16](q T) float64 { return float64(q) * (1 / float64(^T(0))) }

// train presents x (complement-coded, 2*dim values) and returns whether it
// is a new cluster (no category within the lower vigilance), the best
// activation and that category's energy similarity. The first input only
// creates the initial, all-ones category (as the original does).
func (a *fuzzyART) train(x []float64, lb, ub float64, learn bool, step uint32) (bool, float64, float64) {
	D2 := 2 * a.dim
	if len(a.used) == 0 {
		a.w = make([]uint8, D2, 4*D2)
		for i := range a.w {
			a.w[i] = wOne
		}
		a.used = append(a.used, step)
		a.hits = append(a.hits, 0)
		return false, 0, 0
	}
	// x in the weights' 8 bits: min(quant(x), w) = quant(min(x, w)) for
	// a quantized w, so learning is unchanged and matching is in integers
	var xqa [4 * maxARTimeWindow]uint8 // on the stack
	xq := xqa[:len(x)]
	for i, v := range x {
		xq[i] = quant(v)
	}
	e1, e2 := a.dim-1, D2-1 // the newest value and its complement
	best, bestE := 0.0, 0.0
	resonant := false
	for j := range a.used {
		w := a.w[j*D2 : (j+1)*D2]
		num, nw := 0, 0
		for k, q := range w {
			nw += int(q)
			num += int(min(xq[k], q))
		}
		fs := 1000.0 * float64(num) // |w| = 0 counts as 0.001, as in the original
		if nw != 0 {
			fs = float64(num) / float64(nw)
		}
		es := 1.0
		if we := int(w[e1]) + int(w[e2]); we != 0 {
			es = float64(int(min(xq[e1], w[e1]))+int(min(xq[e2], w[e2]))) / float64(we)
		}
		act := fs * fs * fs * es * es
		if act > best {
			best, bestE = act, es
		}
		if learn && act >= ub { // fast commit
			for k, q := range w {
				w[k] = min(xq[k], q)
			}
			a.used[j] = step
			if a.hits[j] < maxMatchCredits {
				a.hits[j]++
			}
			resonant = true
		}
	}
	if !learn || resonant {
		return false, best, bestE
	}
	a.add(x, step)
	return best < lb, best, bestE
}

// add stores x as a new category, replacing the least recently matched one
// (after crediting matches, see ARTimeConfig.MatchCredit) when the store is
// full.
func (a *fuzzyART) add(x []float64, step uint32) {
	D2 := 2 * a.dim
	k := len(a.used)
	if k < a.max {
		a.used = append(a.used, step)
		a.hits = append(a.hits, 0)
		if len(a.w)+D2 > cap(a.w) { // grow by 16 categories, not doubling
			w := make([]uint8, len(a.w), len(a.w)+min(16, a.max-k)*D2)
			copy(w, a.w)
			a.w = w
		}
		a.w = append(a.w, make([]uint8, D2)...)
	} else {
		k = 0
		age := func(j int) uint64 { return uint64(a.used[j]) + uint64(a.credit)*uint64(a.hits[j]) }
		for j := range a.used {
			if age(j) < age(k) {
				k = j
			}
		}
		a.used[k], a.hits[k] = step, 0
	}
	w := a.w[k*D2 : (k+1)*D2]
	for i := range w {
		w[i] = quant(x[i])
	}
}
