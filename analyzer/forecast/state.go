package forecast

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

// ErrBadState is returned (wrapped) by UnmarshalBinary for data that is
// not a checkpoint this version wrote.
var ErrBadState = errors.New("invalid holt-winters checkpoint")

// stateMagic starts every checkpoint; the last byte is the format version.
var stateMagic = [4]byte{'H', 'W', 'F', 1}

// MarshalBinary writes the model's complete state (parameters, level,
// trend, seasonal indices, position, residual variance) as a checkpoint.
// Floats are stored bit for bit, so a restored model's later Update and
// Forecast results are identical to the original's.
func (h *HoltWinters) MarshalBinary() ([]byte, error) {
	c := &h.core
	n := 0
	for _, s := range c.seas {
		n += len(s)
	}
	b := make([]byte, 0, 256+8*n)
	b = append(b, stateMagic[:]...)
	u64 := func(v uint64) { b = binary.LittleEndian.AppendUint64(b, v) }
	i64 := func(v int64) { u64(uint64(v)) }
	f64 := func(v float64) { u64(math.Float64bits(v)) }
	i64(h.origin.UnixNano())
	i64(int64(h.step))
	i64(h.next)
	i64(h.since)
	i64(int64(h.nobs))
	i64(int64(h.slots))
	i64(int64(h.evals))
	f64(h.level)
	f64(h.sigma2)
	f64(c.alpha)
	f64(c.beta)
	f64(c.phi)
	f64(c.lvl)
	f64(c.trend)
	b = append(b, byte(len(h.seasons)), byte(len(h.dropped)))
	for _, d := range h.dropped {
		i64(int64(d))
	}
	for i, s := range h.seasons {
		i64(int64(s))
		f64(c.gamma[i])
		u64(uint64(c.period[i]))
		for _, v := range c.seas[i] {
			f64(v)
		}
	}
	return b, nil
}

// UnmarshalBinary restores a checkpoint written by MarshalBinary,
// replacing h's state. It validates the data and never panics on
// corrupt input.
func (h *HoltWinters) UnmarshalBinary(data []byte) error {
	r, err := decodeState(data)
	if err != nil {
		return fmt.Errorf("forecast: restore holt-winters: %w", err)
	}
	*h = *r
	return nil
}

type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) u64() uint64 {
	if len(r.b) < 8 {
		r.err = fmt.Errorf("%w: truncated", ErrBadState)
		r.b = nil
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *stateReader) byte() byte {
	if len(r.b) < 1 {
		r.err = fmt.Errorf("%w: truncated", ErrBadState)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *stateReader) i64() int64   { return int64(r.u64()) }
func (r *stateReader) f64() float64 { return math.Float64frombits(r.u64()) }

func decodeState(data []byte) (*HoltWinters, error) {
	if len(data) < len(stateMagic) || [4]byte(data[:4]) != stateMagic {
		return nil, fmt.Errorf("%w: bad header (want magic %q version %d)", ErrBadState, stateMagic[:3], stateMagic[3])
	}
	r := &stateReader{b: data[4:]}
	h := &HoltWinters{}
	c := &h.core
	h.origin = time.Unix(0, r.i64()).UTC()
	h.step = time.Duration(r.i64())
	h.next = r.i64()
	h.since = r.i64()
	h.nobs = int(r.i64())
	h.slots = int(r.i64())
	h.evals = int(r.i64())
	h.level = r.f64()
	h.sigma2 = r.f64()
	c.alpha, c.beta, c.phi = r.f64(), r.f64(), r.f64()
	c.lvl, c.trend = r.f64(), r.f64()
	nSeasons, nDropped := int(r.byte()), int(r.byte())
	if r.err != nil {
		return nil, r.err
	}
	switch {
	case h.step <= 0:
		return nil, fmt.Errorf("%w: step %d", ErrBadState, h.step)
	case h.next < 0 || h.since < 0 || h.since > h.next:
		return nil, fmt.Errorf("%w: position %d, %d since last value", ErrBadState, h.next, h.since)
	case !(h.level > 0 && h.level < 1):
		return nil, fmt.Errorf("%w: level %v", ErrBadState, h.level)
	case !(h.sigma2 >= 0) || math.IsInf(h.sigma2, 0):
		return nil, fmt.Errorf("%w: variance %v", ErrBadState, h.sigma2)
	case !inUnit(c.alpha) || !inUnit(c.beta) || !(c.phi >= phiMin && c.phi <= 1):
		return nil, fmt.Errorf("%w: weights alpha=%v beta=%v phi=%v", ErrBadState, c.alpha, c.beta, c.phi)
	case nSeasons > MaxSeasons:
		return nil, fmt.Errorf("%w: %d seasons", ErrBadState, nSeasons)
	}
	for range nDropped {
		h.dropped = append(h.dropped, time.Duration(r.i64()))
	}
	for i := range c.seas {
		c.period[i] = 1
		c.seas[i] = []float64{0}
	}
	for i := range nSeasons {
		h.seasons = append(h.seasons, time.Duration(r.i64()))
		c.gamma[i] = r.f64()
		m := r.u64()
		if r.err != nil {
			return nil, r.err
		}
		if m < 2 || m > maxSlots || uint64(len(r.b)) < 8*m {
			return nil, fmt.Errorf("%w: season %d has period %d", ErrBadState, i, m)
		}
		if !inUnit(c.gamma[i]) {
			return nil, fmt.Errorf("%w: gamma %v", ErrBadState, c.gamma[i])
		}
		c.period[i] = int(m)
		c.seas[i] = make([]float64, m)
		for p := range c.seas[i] {
			c.seas[i][p] = r.f64()
		}
		if i > 0 && c.period[i] <= c.period[i-1] {
			return nil, fmt.Errorf("%w: seasons out of order", ErrBadState)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadState, len(r.b))
	}
	for i := range c.pos {
		c.pos[i] = int(h.next % int64(c.period[i]))
	}
	h.z = distuv.UnitNormal.Quantile(0.5 + h.level/2)
	return h, nil
}

func inUnit(v float64) bool { return v >= 0 && v <= 1 }
