package analyzer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Model state is saved for the online analyzer's checkpoints. A model that
// implements stateful writes its mutable state (never its configuration:
// the restoring side builds the model from the same configuration first)
// and reads it back exactly, so a restored model scores the next points
// bit-for-bit as the original would. Composite models (Ensemble, the online
// wrapper) save their members in order.
type stateful interface {
	saveState(w *stateWriter)
	loadState(r *stateReader)
}

// stateMagic and stateVersion head every saved model; a change of layout
// bumps the version, and old checkpoints are then refused (the series
// relearn) rather than misread.
const (
	stateMagic   = "opa"
	stateVersion = 6
)

// ErrNotStateful is returned when a model (or a member) cannot be saved.
var ErrNotStateful = errors.New("analyzer: model state cannot be saved")

// MarshalState saves m's state.
func MarshalState(m Model) ([]byte, error) {
	s, ok := m.(stateful)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrNotStateful, m)
	}
	w := &stateWriter{b: append([]byte(stateMagic), stateVersion)}
	s.saveState(w)
	if w.err != nil {
		return nil, w.err
	}
	return w.b, nil
}

// UnmarshalState restores state saved by MarshalState into m, which must
// be built with the same configuration as the saved model.
func UnmarshalState(m Model, b []byte) error {
	s, ok := m.(stateful)
	if !ok {
		return fmt.Errorf("%w: %T", ErrNotStateful, m)
	}
	if len(b) < len(stateMagic)+1 || string(b[:len(stateMagic)]) != stateMagic {
		return errors.New("analyzer: not a saved model state")
	}
	if v := b[len(stateMagic)]; v != stateVersion {
		return fmt.Errorf("analyzer: saved model state has version %d, this build reads %d", v, stateVersion)
	}
	r := &stateReader{b: b[len(stateMagic)+1:]}
	s.loadState(r)
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("analyzer: %d bytes left over: the saved model has another shape", len(r.b))
	}
	return r.err
}

type stateWriter struct {
	b   []byte
	err error
}

func (w *stateWriter) f64(v float64) {
	w.b = binary.LittleEndian.AppendUint64(w.b, math.Float64bits(v))
}
func (w *stateWriter) int(v int)     { w.b = binary.AppendVarint(w.b, int64(v)) }
func (w *stateWriter) int64(v int64) { w.b = binary.AppendVarint(w.b, v) }

func (w *stateWriter) bytes(b []byte) {
	w.int(len(b))
	w.b = append(w.b, b...)
}
func (w *stateWriter) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

func (w *stateWriter) f64s(vs []float64) {
	w.int(len(vs))
	for _, v := range vs {
		w.f64(v)
	}
}

func (w *stateWriter) i32s(vs []int32) {
	w.int(len(vs))
	for _, v := range vs {
		w.int(int(v))
	}
}

// model saves a member model, failing the whole save if it cannot.
func (w *stateWriter) model(m Model) {
	s, ok := m.(stateful)
	if !ok {
		if w.err == nil {
			w.err = fmt.Errorf("%w: member %T", ErrNotStateful, m)
		}
		return
	}
	s.saveState(w)
}

type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("analyzer: saved model state is truncated or of another shape (reading %s)", what)
	}
}

func (r *stateReader) f64() float64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail("a number")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *stateReader) int() int {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || v > math.MaxInt32 || v < math.MinInt32 {
		r.fail("an integer")
		return 0
	}
	r.b = r.b[n:]
	return int(v)
}

func (r *stateReader) int64() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("an integer")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) bytes() []byte {
	n := r.int()
	if r.err == nil && (n < 0 || n > len(r.b)) {
		r.fail("a block")
	}
	if r.err != nil {
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

func (r *stateReader) bool() bool {
	if r.err != nil || len(r.b) < 1 || r.b[0] > 1 {
		r.fail("a flag")
		return false
	}
	v := r.b[0] == 1
	r.b = r.b[1:]
	return v
}

// length reads a slice length that must equal want (the configured size).
func (r *stateReader) length(want int, what string) bool {
	n := r.int()
	if r.err == nil && n != want {
		r.err = fmt.Errorf("analyzer: saved %s has %d entries, the configured model %d", what, n, want)
	}
	return r.err == nil
}

// f64sInto fills dst, whose length is the configured size.
func (r *stateReader) f64sInto(dst []float64, what string) {
	if !r.length(len(dst), what) {
		return
	}
	for i := range dst {
		dst[i] = r.f64()
	}
}

func (r *stateReader) i32sInto(dst []int32, what string) {
	if !r.length(len(dst), what) {
		return
	}
	for i := range dst {
		dst[i] = int32(r.int())
	}
}

func (r *stateReader) model(m Model) {
	s, ok := m.(stateful)
	if !ok {
		if r.err == nil {
			r.err = fmt.Errorf("%w: member %T", ErrNotStateful, m)
		}
		return
	}
	s.loadState(r)
}

// The models' states.

func (s *scaleFloor) save(w *stateWriter) { w.f64(s.min); w.f64(s.max); w.bool(s.seen) }
func (s *scaleFloor) load(r *stateReader) { s.min, s.max, s.seen = r.f64(), r.f64(), r.bool() }

func (b *ewBaseline) save(w *stateWriter) { w.f64(b.mean); w.f64(b.vr); w.int(b.n); b.scale.save(w) }
func (b *ewBaseline) load(r *stateReader) {
	b.mean, b.vr, b.n = r.f64(), r.f64(), r.int()
	b.scale.load(r)
}

func (m *EWMA) saveState(w *stateWriter) { m.ewBaseline.save(w) }
func (m *EWMA) loadState(r *stateReader) { m.ewBaseline.load(r) }

func (m *CUSUM) saveState(w *stateWriter) { w.f64(m.hi); w.f64(m.lo); m.ewBaseline.save(w) }
func (m *CUSUM) loadState(r *stateReader) {
	m.hi, m.lo = r.f64(), r.f64()
	m.ewBaseline.load(r)
}

func (m *Novelty) saveState(w *stateWriter) {
	m.seen.save(w)
	w.int(m.n)
	w.f64(m.prev)
	w.f64(m.dev)
	w.bool(m.rec)
}

func (m *Novelty) loadState(r *stateReader) {
	m.seen.load(r)
	m.n, m.prev, m.dev, m.rec = r.int(), r.f64(), r.f64(), r.bool()
}

func (m *Pattern) saveState(w *stateWriter) {
	w.f64s(m.ring)
	w.int(m.pos)
	w.int(m.filled)
	w.f64(m.acc)
	w.int(m.accN)
	w.f64(m.lo)
	w.f64(m.hi)
	w.int(m.n)
	w.int(len(m.protos))
	for _, q := range m.protos {
		w.int(int(q))
	}
	w.int(len(m.used))
	for _, u := range m.used {
		w.int64(int64(u))
	}
	w.int(m.np)
	w.f64(m.dist)
}

func (m *Pattern) loadState(r *stateReader) {
	r.f64sInto(m.ring, "the shape window")
	m.pos, m.filled, m.acc, m.accN = r.int(), r.int(), r.f64(), r.int()
	m.lo, m.hi, m.n = r.f64(), r.f64(), r.int()
	if r.length(len(m.protos), "the shape prototypes") {
		for i := range m.protos {
			q := r.int()
			if q < 0 || q > protoOne {
				r.fail("the shape prototypes")
			}
			m.protos[i] = uint16(q)
		}
	}
	if r.length(len(m.used), "shape prototype uses") {
		for i := range m.used {
			m.used[i] = uint32(r.int64())
		}
	}
	m.np, m.dist = r.int(), r.f64()
	if r.err == nil && (m.pos < 0 || m.pos >= len(m.ring) || m.np < 0 || m.np > len(m.used) || m.filled < 0 || m.filled > len(m.ring)) {
		r.fail("the shape model's positions")
	}
}

func (m *RobustZ) saveState(w *stateWriter) {
	w.f64s(m.ring)
	w.int(m.pos)
	w.int(m.n)
	m.scale.save(w)
}

// loadState rebuilds the sorted window from the ring instead of trusting
// saved order: the two can then never disagree.
func (m *RobustZ) loadState(r *stateReader) {
	r.f64sInto(m.ring, "robust z window")
	m.pos, m.n = r.int(), r.int()
	m.scale.load(r)
	if r.err == nil && (m.pos < 0 || m.pos >= len(m.ring) || m.n < 0 || m.n > len(m.ring) || (m.n < len(m.ring) && m.pos != m.n)) {
		r.fail("the robust z position")
	}
	if r.err != nil {
		return
	}
	m.sorted = append(m.sorted[:0], m.ring[:m.n]...)
	if slices.ContainsFunc(m.sorted, math.IsNaN) {
		r.fail("the robust z window")
		return
	}
	slices.Sort(m.sorted)
}

func (m *Seasonal) saveState(w *stateWriter) {
	w.f64s(m.mean)
	w.i32s(m.visits)
	w.i32s(m.day)
	w.f64(m.vr)
	w.int(m.nres)
	m.scale.save(w)
}

func (m *Seasonal) loadState(r *stateReader) {
	r.f64sInto(m.mean, "seasonal means")
	r.i32sInto(m.visits, "seasonal visits")
	r.i32sInto(m.day, "seasonal days")
	m.vr, m.nres = r.f64(), r.int()
	m.scale.load(r)
}

func (m *Differenced) saveState(w *stateWriter) { w.f64(m.prev); w.bool(m.seen); w.model(m.inner) }
func (m *Differenced) loadState(r *stateReader) {
	m.prev, m.seen = r.f64(), r.bool()
	r.model(m.inner)
}

func (e *Ensemble) saveState(w *stateWriter) {
	w.int(e.quiet)
	w.int64(e.alarmAt)
	w.int(e.n)
	w.f64(e.peak)
	w.int(len(e.members))
	for _, m := range e.members {
		w.model(m)
	}
	w.bool(e.cfg.Gate != nil)
	if e.cfg.Gate != nil {
		e.cfg.Gate.saveState(w)
	}
	w.int64(e.day)
	w.f32s(e.today)
	w.f32s(e.past)
	w.int(len(e.cfg.Or))
	for _, m := range e.cfg.Or {
		w.model(m)
	}
	w.int(len(e.cfg.Late))
	for _, m := range e.cfg.Late {
		w.model(m)
	}
}

func (m *Context) saveState(w *stateWriter) {
	w.f64(m.lo)
	w.f64(m.hi)
	w.int(m.n)
	w.int64(int64(m.seq))
	w.int(m.nseq)
	w.f64(m.prev)
	w.f64(m.dev)
	w.int(len(m.table))
	for _, b := range m.table {
		w.int64(int64(b))
	}
}

func (m *Context) loadState(r *stateReader) {
	m.lo, m.hi, m.n = r.f64(), r.f64(), r.int()
	m.seq, m.nseq = uint64(r.int64()), r.int()
	m.prev, m.dev = r.f64(), r.f64()
	if r.length(len(m.table), "the context table") {
		for i := range m.table {
			m.table[i] = uint64(r.int64())
		}
	}
	if r.err == nil && (m.nseq < 0 || m.nseq > m.cfg.Orders+1) {
		r.fail("the context model's sequence")
	}
}

func (e *Ensemble) loadState(r *stateReader) {
	e.quiet = r.int()
	e.alarmAt = r.int64()
	e.n, e.peak = r.int(), r.f64()
	if !r.length(len(e.members), "ensemble members") {
		return
	}
	for _, m := range e.members {
		r.model(m)
	}
	if gated := r.bool(); r.err == nil && gated != (e.cfg.Gate != nil) {
		r.fail("the ensemble's gate")
	}
	if r.err == nil && e.cfg.Gate != nil {
		e.cfg.Gate.loadState(r)
	}
	e.day = r.int64()
	for _, b := range [][]float32{e.today, e.past} {
		vs := r.f32sUpTo(len(b), "the ensemble's daily memory")
		if r.err == nil && len(vs) != len(b) {
			r.fail("the ensemble's daily memory")
		}
		copy(b, vs)
	}
	if r.length(len(e.cfg.Or), "the ensemble's OR-combined models") {
		for _, m := range e.cfg.Or {
			r.model(m)
		}
	}
	if r.length(len(e.cfg.Late), "the ensemble's late OR-combined models") {
		for _, m := range e.cfg.Late {
			r.model(m)
		}
	}
}

func (m *ARTime) saveState(w *stateWriter) {
	w.int(m.n)
	for _, v := range []float64{m.lo, m.hi, m.nlo, m.nhi, m.bSum, m.bMin, m.bMax, m.ma} {
		w.f64(v)
	}
	w.int(m.bN)
	w.int(m.dsi)
	w.f64s(m.pending)
	w.i32s(m.medbin)
	w.int(m.med)
	w.int(m.below)
	w.int(m.above)
	w.bytes(m.fwin)
	w.bytes(m.art.w)
	w.int(len(m.art.used))
	for _, u := range m.art.used {
		w.int64(int64(u))
	}
	w.bytes(m.art.hits)
	for _, v := range []float64{m.rhoLb, m.rhoUb, m.aMean} {
		w.f64(v)
	}
	w.int(m.aN)
	w.f32s(m.sim)
	w.int(m.simPos)
	w.f32s(m.diff)
	w.int(m.diffPos)
	w.f64(m.histSum)
	w.int(m.histN)
	w.f64(m.histLast)
	w.int(m.lastAnomI)
	w.f64(m.lastAnomSim)
	w.int(m.lastRhoI)
	w.bool(m.maskCat)
	w.int(m.noNewCat)
}

func (m *ARTime) loadState(r *stateReader) {
	m.n = r.int()
	for _, p := range []*float64{&m.lo, &m.hi, &m.nlo, &m.nhi, &m.bSum, &m.bMin, &m.bMax, &m.ma} {
		*p = r.f64()
	}
	m.bN, m.dsi = r.int(), r.int()
	if n := r.int(); r.err == nil && (n < 0 || n > m.tw || 8*n > len(r.b)) {
		r.fail("the ARTime probation buffer")
	} else if r.err == nil {
		m.pending = nil
		if n > 0 {
			m.pending = make([]float64, n)
		}
		for i := range m.pending {
			m.pending[i] = r.f64()
		}
	}
	r.i32sInto(m.medbin, "the ARTime median histogram")
	m.med, m.below, m.above = r.int(), r.int(), r.int()
	if fw := r.bytes(); r.err == nil && len(fw) != len(m.fwin) {
		r.fail("the ARTime window")
	} else {
		copy(m.fwin, fw)
	}
	D2 := 2 * m.art.dim
	ws := slices.Clone(r.bytes())
	if r.err == nil && len(ws) > m.art.max*D2 {
		r.fail("the ARTime categories")
	}
	if n := r.int(); r.err == nil && (n < 0 || n > m.art.max || n*D2 != len(ws)) {
		r.fail("the ARTime categories")
	} else if r.err == nil {
		m.art.w, m.art.used = ws, nil
		if n > 0 {
			m.art.used = make([]uint32, n)
		}
		for i := range m.art.used {
			m.art.used[i] = uint32(r.int64())
		}
	}
	if hits := r.bytes(); r.err == nil && len(hits) != len(m.art.used) {
		r.fail("the ARTime category matches")
	} else if r.err == nil {
		m.art.hits = slices.Clone(hits)
		for _, h := range hits {
			if h > maxMatchCredits {
				r.fail("the ARTime category matches")
			}
		}
	}
	for _, p := range []*float64{&m.rhoLb, &m.rhoUb, &m.aMean} {
		*p = r.f64()
	}
	m.aN = r.int()
	ring := func(b []float32) int {
		vs := r.f32sUpTo(len(b), "the ARTime activations")
		if r.err == nil && len(vs) != len(b) {
			r.fail("the ARTime activations")
		}
		copy(b, vs)
		return r.int()
	}
	m.simPos = ring(m.sim)
	m.diffPos = ring(m.diff)
	m.histSum, m.histN, m.histLast = r.f64(), r.int(), r.f64()
	m.lastAnomI, m.lastAnomSim, m.lastRhoI = r.int(), r.f64(), r.int()
	m.maskCat, m.noNewCat = r.bool(), r.int()
	if r.err != nil {
		return
	}
	L := m.cfg.Levels
	bad := m.bN < 0 || m.bN >= m.step || m.dsi < 0 || m.med < 0 || m.med > L ||
		m.simPos < 0 || m.simPos >= len(m.sim) || m.diffPos < 0 || m.diffPos >= len(m.diff) ||
		(m.dsi < m.tw && len(m.pending) != m.dsi) || (m.dsi >= m.tw && len(m.pending) != 0) ||
		(m.dsi >= m.tw && len(m.art.used) == 0)
	for _, l := range m.fwin {
		bad = bad || int(l) > L
	}
	if bad {
		r.fail("the ARTime model's positions")
	}
}

func (s *scaled) saveState(w *stateWriter) { w.model(s.Model) }
func (s *scaled) loadState(r *stateReader) { r.model(s.Model) }

// MarshalBinary saves the online model's state (encoding.BinaryMarshaler,
// used by the online analyzer's checkpoints).
func (s *scaled) MarshalBinary() ([]byte, error) { return MarshalState(s) }

// UnmarshalBinary restores state saved by MarshalBinary.
func (s *scaled) UnmarshalBinary(b []byte) error { return UnmarshalState(s, b) }

func (w *stateWriter) f32s(vs []float32) {
	w.int(len(vs))
	for _, v := range vs {
		w.b = binary.LittleEndian.AppendUint32(w.b, math.Float32bits(v))
	}
}

// f32sUpTo reads float32s into a new slice of at most max entries.
func (r *stateReader) f32sUpTo(max int, what string) []float32 {
	n := r.int()
	if r.err == nil && (n < 0 || n > max || 4*n > len(r.b)) {
		r.fail(what)
	}
	if r.err != nil {
		return nil
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(r.b))
		r.b = r.b[4:]
	}
	return out
}

func (m *BOCPD) saveState(w *stateWriter) {
	w.f64s(m.w)
	w.f64s(m.mu)
	w.f64s(m.beta)
	w.f64s(m.logBeta)
	w.f64(m.loc)
	w.f64(m.vr)
	w.int(m.n)
	m.scale.save(w)
}

func (m *BOCPD) loadState(r *stateReader) {
	r.f64sInto(m.w, "run-length weights")
	r.f64sInto(m.mu, "run-length means")
	r.f64sInto(m.beta, "run-length betas")
	r.f64sInto(m.logBeta, "run-length log betas")
	m.loc, m.vr, m.n = r.f64(), r.f64(), r.int()
	m.scale.load(r)
}

func (p *PeriodTracker) save(w *stateWriter) {
	w.f32s(p.ring)
	w.int(p.pos)
	w.int(p.n)
	w.int(p.since)
	w.int(p.period)
	w.f64(p.strength)
}

func (p *PeriodTracker) load(r *stateReader) {
	ring := r.f32sUpTo(len(p.ring), "the period detector's buffer")
	if r.err == nil && len(ring) != len(p.ring) {
		r.fail("the period detector's buffer")
	}
	if r.err != nil {
		return
	}
	copy(p.ring, ring)
	p.pos, p.n, p.since, p.period, p.strength = r.int(), r.int(), r.int(), r.int(), r.f64()
	if r.err == nil && (p.pos < 0 || p.pos >= len(p.ring) || p.n < 0 || p.n > len(p.ring) || p.period < 0) {
		r.fail("the period detector's position")
	}
}

// Decompose saves its period (it may have been detected), its profile and
// its detector while it still has one.
func (m *Decompose) saveState(w *stateWriter) {
	w.int(m.period)
	w.f32s(m.season)
	w.f64(m.alpha)
	w.f64(m.level)
	w.f64(m.mad)
	w.int(m.n)
	w.int(m.nmad)
	w.int(m.scored)
	w.f64(m.sum)
	m.scale.save(w)
	w.bool(m.det != nil)
	if m.det != nil {
		m.det.save(w)
	}
}

func (m *Decompose) loadState(r *stateReader) {
	period := r.int()
	limit := max(m.cfg.Period, m.cfg.MaxPeriod)
	if r.err == nil && (period < 0 || period > limit || (m.cfg.Period > 0 && period != m.cfg.Period)) {
		r.fail("the decomposition's period")
	}
	season := r.f32sUpTo(limit, "the seasonal profile")
	if r.err == nil && len(season) != period {
		r.fail("the seasonal profile")
	}
	m.period, m.season = period, season
	if period == 0 {
		m.season = nil
	}
	m.alpha, m.level, m.mad = r.f64(), r.f64(), r.f64()
	m.n, m.nmad, m.scored = r.int(), r.int(), r.int()
	m.sum = r.f64()
	m.scale.load(r)
	if r.bool() {
		if m.det == nil {
			m.det = NewPeriodTracker(m.cfg.MinPeriod, m.cfg.MaxPeriod, m.cfg.MaxPeriod)
		}
		m.det.load(r)
	} else {
		m.det = nil
	}
}

// MarshalBinary saves a Multivariate model's state (its EW mean,
// covariance and spread floors) for checkpoints.
func (m *Multivariate) MarshalBinary() ([]byte, error) {
	w := &stateWriter{b: append([]byte(stateMagic), stateVersion)}
	w.int(m.d)
	w.f64s(m.mean)
	for i := range m.d {
		for j := i; j < m.d; j++ {
			w.f64(m.cov.At(i, j))
		}
	}
	for i := range m.floors {
		m.floors[i].save(w)
	}
	w.int(m.n)
	return w.b, w.err
}

// UnmarshalBinary restores state saved by MarshalBinary into a model of
// the same dimension and configuration.
func (m *Multivariate) UnmarshalBinary(b []byte) error {
	if len(b) < len(stateMagic)+1 || string(b[:len(stateMagic)]) != stateMagic || b[len(stateMagic)] != stateVersion {
		return errors.New("analyzer: not a saved multivariate state of this version")
	}
	r := &stateReader{b: b[len(stateMagic)+1:]}
	if d := r.int(); r.err == nil && d != m.d {
		return fmt.Errorf("analyzer: saved multivariate state has %d dimensions, the model %d", d, m.d)
	}
	r.f64sInto(m.mean, "multivariate mean")
	for i := range m.d {
		for j := i; j < m.d; j++ {
			m.cov.SetSym(i, j, r.f64())
		}
	}
	for i := range m.floors {
		m.floors[i].load(r)
	}
	m.n = r.int()
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("analyzer: %d bytes left over: the saved model has another shape", len(r.b))
	}
	return r.err
}

func (m *QuantileDamp) saveState(w *stateWriter) { w.f64(m.q); w.model(m.inner) }
func (m *QuantileDamp) loadState(r *stateReader) {
	m.q = r.f64()
	r.model(m.inner)
}
