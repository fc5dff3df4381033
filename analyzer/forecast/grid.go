package forecast

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Errors returned (wrapped) by Fit and Exhaustion; test with errors.Is.
var (
	ErrNoData         = errors.New("no data points")
	ErrLengthMismatch = errors.New("timestamps and values differ in length")
	ErrNotIncreasing  = errors.New("timestamps are not strictly increasing")
	ErrTooFewPoints   = errors.New("too few finite values")
	ErrBadConfig      = errors.New("invalid configuration")
	ErrNumerical      = errors.New("fit is not finite")
)

// minFinitePoints is the fewest finite values any fit accepts: two fix a
// line, the third gives a residual.
const minFinitePoints = 3

// maxSlots bounds the regular grid (about 16.7M slots, 128 MB of float64),
// so a tiny Step over a long span fails with an error instead of
// exhausting memory.
const maxSlots = 1 << 24

// grid is a series resampled onto regular slots: slot k is at
// origin + k*step, and a slot without a finite value is NaN.
type grid struct {
	origin time.Time
	step   time.Duration
	vals   []float64
	finite int
}

// validateSeries checks the shape of a (timestamps, values) pair.
func validateSeries(ts []time.Time, vs []float64) error {
	if len(ts) != len(vs) {
		return fmt.Errorf("%w: %d timestamps, %d values", ErrLengthMismatch, len(ts), len(vs))
	}
	if len(ts) == 0 {
		return ErrNoData
	}
	for i := 1; i < len(ts); i++ {
		if !ts[i].After(ts[i-1]) {
			return fmt.Errorf("%w: point %d (%s) is not after point %d (%s); sort and deduplicate the series",
				ErrNotIncreasing, i, ts[i].Format(time.RFC3339Nano), i-1, ts[i-1].Format(time.RFC3339Nano))
		}
	}
	return nil
}

// medianStep is the median spacing of strictly increasing timestamps.
func medianStep(ts []time.Time) time.Duration {
	if len(ts) < 2 {
		return 0
	}
	d := make([]time.Duration, len(ts)-1)
	for i := 1; i < len(ts); i++ {
		d[i-1] = ts[i].Sub(ts[i-1])
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// slotOf is the index of the slot nearest t; it may be negative.
func slotOf(origin time.Time, step time.Duration, t time.Time) int64 {
	d := t.Sub(origin) // saturates at ±292 years
	k := d / step
	if r := d % step; r >= (step+1)/2 {
		k++
	} else if r <= -(step+1)/2 {
		k--
	}
	return int64(k)
}

// newGrid resamples a validated series onto slots of the given step.
// Values sharing a slot are averaged; NaN and ±Inf count as missing.
func newGrid(ts []time.Time, vs []float64, step time.Duration) (*grid, error) {
	if step <= 0 {
		return nil, fmt.Errorf("%w: step %s must be positive", ErrBadConfig, step)
	}
	origin := ts[0].Round(0).UTC() // wall clock only, so checkpoints restore it exactly
	last := slotOf(origin, step, ts[len(ts)-1])
	if last < 0 || last >= maxSlots {
		return nil, fmt.Errorf("%w: span %s at step %s needs more than %d slots; use a larger Step",
			ErrBadConfig, ts[len(ts)-1].Sub(origin), step, maxSlots)
	}
	g := &grid{origin: origin, step: step, vals: make([]float64, last+1)}
	counts := make([]int32, last+1)
	for i, t := range ts {
		v := vs[i]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		k := slotOf(origin, step, t)
		g.vals[k] += v
		counts[k]++
	}
	for k, c := range counts {
		switch {
		case c == 0:
			g.vals[k] = math.NaN()
		case c > 1:
			g.vals[k] /= float64(c)
		}
		if c > 0 {
			if math.IsInf(g.vals[k], 0) { // sum of huge values overflowed
				g.vals[k] = math.NaN()
				continue
			}
			g.finite++
		}
	}
	return g, nil
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
