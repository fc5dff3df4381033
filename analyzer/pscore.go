package analyzer

import "math"

// pScore maps a tail probability p straight to the shared calibration:
// -log10(p)/scoreDecades, clipped to [0,1]. tailScore(z) equals
// pScore(two-sided normal tail of z), so models whose statistic is not a
// normal z (Student-t, chi-squared) score on the same scale.
func pScore(p float64) float64 {
	if math.IsNaN(p) || p >= 1 {
		return 0
	}
	if p <= 0 {
		return 1
	}
	return math.Min(1, math.Max(0, -math.Log10(p)/scoreDecades))
}

// finiteClamp clamps v to [-lim, lim], mapping NaN to 0; it keeps
// standardised inputs (and the state they feed) finite when a series
// carries ±Inf or values near the float64 limit.
func finiteClamp(v, lim float64) float64 {
	switch {
	case math.IsNaN(v):
		return 0
	case v > lim:
		return lim
	case v < -lim:
		return -lim
	}
	return v
}
