package forecast

import (
	"math"
	"math/rand/v2"
	"time"
)

// t0 is a Monday, so the weekly pattern's weekend falls on days 5 and 6.
var t0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

const step5m = 5 * time.Minute

// synth is n points every step from t0: level 100, trend 2/day, a daily
// sine of amplitude 20 peaking mid-afternoon, a weekly sine of amplitude
// 10 plus a weekend dip of 8, and Gaussian noise of the given sigma.
func synth(n int, step time.Duration, noise float64, seed uint64) ([]time.Time, []float64) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ts := make([]time.Time, n)
	vs := make([]float64, n)
	for i := range n {
		t := t0.Add(time.Duration(i) * step)
		days := t.Sub(t0).Hours() / 24
		day := days - math.Floor(days)
		week := days/7 - math.Floor(days/7)
		v := 100 + 2*days + 20*math.Sin(2*math.Pi*(day-0.375)) + 10*math.Sin(2*math.Pi*week)
		if wd := int(days) % 7; wd >= 5 {
			v -= 8
		}
		ts[i] = t
		vs[i] = v + noise*rng.NormFloat64()
	}
	return ts, vs
}

// linear is n points every step ending at end with value endV, growing
// perDay per day.
func linear(n int, step time.Duration, end time.Time, endV, perDay float64) ([]time.Time, []float64) {
	ts := make([]time.Time, n)
	vs := make([]float64, n)
	for i := range n {
		t := end.Add(-time.Duration(n-1-i) * step)
		ts[i] = t
		vs[i] = endV + perDay*t.Sub(end).Hours()/24
	}
	return ts, vs
}
