// Package analyzer scores series for anomalies with streaming gonum models
// (robust z-score, EWMA, Holt-Winters, change points, ensembles,
// multivariate), forecasts capacity, and correlates anomalies into
// root-cause hints; it writes scores back to the TSDB.
//
// Models are pure: they take points and return scores, with no I/O, so they
// are unit-tested and benchmarked alone. Only the online loop imports
// opspilot/tsdb. It must not import the orchestrator, autoscaler, alerting
// or runbooks: those consume its scores.
//
// # Streaming models
//
// A Model sees one point at a time (Observe) and returns a Result: a score
// in [0,1], the value it expected and the band it considers normal. Every
// model is causal, so a score never depends on later points, and one model
// value holds one series' whole state:
//
//   - RobustZ: median and MAD of a sliding window (default 128 points,
//     about 2 KB), kept sorted so each point costs O(window).
//   - EWMA: exponentially weighted mean and variance, O(1).
//   - CUSUM: two-sided cumulative sum of standardized deviations against an
//     EW baseline, for level shifts; re-baselines after each shift, O(1).
//   - Novelty: how far a value leaves the range seen so far, O(1).
//   - Seasonal: an EW mean per time-of-day bucket (default 48), keyed by
//     the timestamp, and an EW variance of residuals from it, for
//     daily-periodic series, O(Buckets) (not in the default ensemble: it
//     lowered the NAB score in every combination tried).
//   - Differenced: runs another model on point-to-point changes, for jumps
//     on trending series (not in the default ensemble: no NAB gain).
//   - Ensemble: combines members' scores (mean or max), then damps scores
//     for a while after an alarm, because an anomaly is one event and
//     repeating it only adds false positives.
//   - BOCPD: Bayesian online change-point detection (Adams & MacKay) with
//     a Normal-Gamma prior, Student-t predictive and constant hazard, over
//     run lengths capped at MaxRun (default 64, about 2.2 KB), O(MaxRun).
//   - Decompose: streaming STL-like trend + per-phase seasonal profile +
//     residual scored against an EW median absolute deviation; the period
//     is given in points or detected (DetectPeriod), O(period).
//   - Multivariate (ObserveVec, not a Model): Mahalanobis distance of a
//     vector of related series under a shrunk EW covariance, chi-squared
//     tail, with per-dimension contributions, O(d^3) per point.
//   - DetectPeriod / PeriodTracker (helpers, not models): dominant period
//     from the FFT autocorrelation with periodogram and recurrence checks.
//
// Scores share one calibration: a deviation of z sigmas scores
// -log10(two-sided normal tail of z)/300, so scores from different models
// compare, and huge deviations stay ranked instead of saturating at 1.
// NaN inputs are skipped (score 0, state untouched).
//
// NewDefaultEnsemble (mean of EWMA, CUSUM and a high-gain Novelty) is the
// one configuration used for every series; the
// gated TestNAB (OPSPILOT_NAB=1) scores it on the Numenta Anomaly Benchmark
// with ScoreCSV, which reads timestamp,value CSVs and writes
// timestamp,value,anomaly_score CSVs at the same relative paths.
package analyzer
