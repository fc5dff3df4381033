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
// Filled by the analyzer issue; this file reserves the package.
package analyzer
