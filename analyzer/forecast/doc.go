// Package forecast fits seasonal time-series models and forecasts
// capacity: additive Holt-Winters with up to two seasons (Taylor's
// double-seasonal form, for daily and weekly patterns) and an optional
// damped trend, and a time-to-exhaustion report built on it.
//
// It is pure: no I/O, no clock, no goroutines of its own. It imports only
// the standard library and gonum. It must not import opspilot/analyzer or
// anything else in opspilot; the analyzer (anomaly wrapper, online loop)
// imports it.
//
// # Model
//
// On a regular grid of Step (Config.Step, or the median spacing of the
// timestamps), with level l, trend b, seasonal indices s1 (shorter
// period m1) and s2 (longer period m2) and damping phi (1 if not damped),
// the one-step forecast and updates for a value y at slot t are
//
//	yhat = l + phi*b + s1[t mod m1] + s2[t mod m2]
//	l'   = alpha*(y - s1 - s2) + (1-alpha)*(l + phi*b)
//	b'   = beta*(l' - l) + (1-beta)*phi*b
//	s1'  = gamma1*(y - l' - s2) + (1-gamma1)*s1
//	s2'  = gamma2*(y - l' - s1) + (1-gamma2)*s2
//
// and the h-step forecast is l + (phi+...+phi^h)*b plus the seasonal
// indices of the target slot. A slot without a finite value (NaN, ±Inf,
// or no point at all) is a gap: the state advances (l += phi*b, b *=
// phi) without learning. Seasons default to 24h and 168h; a season
// shorter than two steps or longer than half the data is dropped and
// listed in Params.Dropped, so under two weeks of data only the daily
// season is fitted and under two days none.
//
// # Initialisation and fitting
//
// The starting line joins the means of the first two periods of the
// longest season (a least-squares slope over whole periods of a seasonal
// pattern is biased; without seasons gonum's stat.LinearRegression is
// used). The shorter season's indices are the mean detrended value per
// phase in those two periods, the longer season's what remains per
// phase; both are centred.
//
// alpha, beta, the gammas and (if Damped) phi minimise the mean squared
// one-step-ahead error with Nelder-Mead, searched in unconstrained
// variables mapped to (0,1) by the logistic function (phi to (0.8,1)),
// restarted once from the first optimum. Errors inside the
// initialisation window are not scored when enough data follow it: there
// the indices have seen the values they forecast, which understates the
// error and favours frozen seasons. One evaluation is one O(n) pass; on 4
// weeks of 5-minute data (8064 points) a fit takes a few hundred
// evaluations, 25-45 ms (BenchmarkFit4Weeks5m on a busy 2-core AMD
// EPYC). When alpha is near 0 the trend gain alpha*beta is what matters,
// so beta alone may look arbitrary.
//
// The optimiser is gonum's optimize.NelderMead (minimize.go), with the
// evaluation budget in Config.MaxEvaluations.
//
// # Intervals
//
// Intervals are Gaussian with the analytic h-step variance of the
// equivalent innovations state-space model (Hyndman et al. 2008, class
// 1): sigma^2 * (1 + sum_{j=1}^{h-1} c_j^2), with c_j = alpha*(1 +
// beta*(phi+...+phi^j)) + gamma_i*(1-alpha) for each season whose period
// divides j, and sigma^2 the fit's mean squared one-step error. h counts
// from the last finite observation, so bands widen over gaps and with
// the horizon. On the synthetic tests 95% bands cover about 95% of
// held-out points one step and one day ahead.
//
// # Streaming and checkpoints
//
// Update is the streaming step (forecast, then learn), usable as an
// anomaly model. Parameters and sigma stay as fitted: refit periodically
// (e.g. daily) to follow changes. MarshalBinary/UnmarshalBinary
// checkpoint the whole state bit for bit; a restored model continues
// exactly as the original would. Timestamps come back in UTC.
//
// # Capacity
//
// Exhaustion forecasts a usage series for a horizon (default 30 days) and
// reports when the forecast mean, and pessimistically the upper bound,
// first reaches Threshold (default 1) times the capacity, interpolating
// between steps. Capacity is a constant or a series whose last value is
// used for the future, since capacity is provisioned rather than grown.
// Under two days of data it fits a straight line with Student-t
// prediction intervals (Confidence low); with a season dropped,
// Confidence is medium.
//
// # Limits
//
//   - Additive seasons only: a pattern whose amplitude grows with the level
//     is fitted, but with wider errors than a multiplicative model.
//   - Gaussian, independent one-step errors are assumed for intervals;
//     heavy tails or autocorrelated residuals make them too narrow.
//   - Seasons must be whole multiples of the step (they are rounded);
//     holidays and daylight-saving shifts are not modelled.
//   - The undamped trend extrapolates linearly for the whole horizon; use
//     Damped for series whose growth is expected to slow.
//   - Values beyond ±1e100 are rejected (MaxAbsValue); the grid is
//     capped at 2^24 slots.
package forecast
