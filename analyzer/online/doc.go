// Package online is the analyzer's loop in the control plane: every
// interval it runs the configured MetricsQL queries as range queries over
// the intervals not yet scored, feeds each result series' points in order to
// that series' streaming model (analyzer.NewOnlineModel), and writes
// anomaly_score, anomaly_expected, anomaly_lower and anomaly_upper back to
// the TSDB with the source series' labels plus `for` (the query's name), as
// vmanomaly does; a source __name__ becomes the label `metric`. Dashboards
// and alert rules then use them like any series
// (`anomaly_score{for="service_latency_p95"} > 0.9`).
//
// Nothing is lost to an outage: a query that fails keeps its position and
// the next pass scores the missed intervals in order (up to max_catch_up
// back); samples the TSDB does not accept are kept and sent with the next
// pass. A new query, or a restart without a checkpoint, starts max_catch_up
// back, so models learn from the stored history instead of from nothing.
//
// Model state and each query's position are checkpointed to a file
// (atomically: temporary file, fsync, rename) every checkpoint_interval and
// on shutdown; a restart restores them, and scores continue exactly as if
// the process had not stopped.
//
// It imports analyzer (models) and tsdb (the wire types); the Querier and
// Writer it needs are small interfaces that tsdb.Client satisfies. It must
// not import the orchestrator, alerting or runbooks.
package online
