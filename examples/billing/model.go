package billing

import (
	"sync"
	"time"
)

// Capacity model constants.
const (
	baseLatency    = 5 * time.Millisecond // service time at or below capacity
	maxLatency     = 2 * time.Second      // latency never climbs above this
	errorThreshold = 1.5                  // load (rate/capacity) above which requests are shed
)

// latencyAndErrorRate is the whole capacity model, as a pure function of the
// observed transaction rate (per second, over the last second) and the
// instance's capacity (transactions per second it handles comfortably).
//
// Latency is baseLatency up to capacity and baseLatency×(rate/capacity)³
// above it, capped at maxLatency. Above errorThreshold×capacity the instance
// sheds the excess: the error rate is 1 − 1.5·capacity/rate, i.e. it keeps
// serving about 1.5×capacity and rejects the rest (0.25 at 2×, 0.625 at 4×).
// A non-positive or NaN rate or capacity gives the base latency and no
// errors.
func latencyAndErrorRate(rate, capacity float64) (time.Duration, float64) {
	if !(rate > 0) || !(capacity > 0) { // also catches NaN
		return baseLatency, 0
	}
	load := rate / capacity
	lat := baseLatency
	if load > 1 {
		f := float64(baseLatency) * load * load * load
		if f >= float64(maxLatency) { // also +Inf
			lat = maxLatency
		} else {
			lat = time.Duration(f)
		}
	}
	var errRate float64
	if load > errorThreshold {
		errRate = 1 - errorThreshold/load
	}
	return lat, errRate
}

// rateWindow counts events in a sliding one-second window.
type rateWindow struct {
	mu    sync.Mutex
	times []time.Time // arrival times, ascending; times[head:] are in the window
	head  int
}

const rateWindowSpan = time.Second

// add records an event at now and returns the number of events in
// (now−1s, now], the new one included.
func (w *rateWindow) add(now time.Time) float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pruneLocked(now)
	w.times = append(w.times, now)
	return float64(len(w.times) - w.head)
}

// rate returns the number of events in (now−1s, now].
func (w *rateWindow) rate(now time.Time) float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pruneLocked(now)
	return float64(len(w.times) - w.head)
}

func (w *rateWindow) pruneLocked(now time.Time) {
	cutoff := now.Add(-rateWindowSpan)
	for w.head < len(w.times) && !w.times[w.head].After(cutoff) {
		w.head++
	}
	// Compact once the dead prefix dominates, so memory stays bounded by
	// the peak rate and the copying is amortised O(1) per event.
	if w.head > 0 && w.head >= len(w.times)/2 {
		n := copy(w.times, w.times[w.head:])
		w.times = w.times[:n]
		w.head = 0
	}
}
