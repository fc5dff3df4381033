// Package backfill owns `opspilot demo backfill`: a seeded, deterministic
// history of a small fleet — two datacenters (dc-a, dc-b) of three nodes,
// three services (billing, checkout, catalog) — written into the TSDB so
// dashboards and reports have something to show on a fresh machine.
//
// The history has daily and weekly waves, steady growth, and a few
// incidents (traffic surges with error bursts, latency, anomaly scores and
// alerts), and uses only the metric names and labels the running system
// writes: host metrics as the agent collects them, container metrics and
// billing_transactions_total per instance, the gateway's request counters
// and latency histograms, the autoscaler's replicas and decisions, the
// analyzer's anomaly_* series, ALERTS and ALERTS_FOR_STATE, and opspilot's
// self-metrics. Counters are monotone. Every series carries
// backfill="demo", so it can be told apart and deleted.
//
// Generate is pure (samples from a Config); Run writes them, a chunk of
// steps at a time, through a Writer (tsdb.Client's remote write).
//
// Dependencies: the standard library and opspilot/tsdb (its wire types and
// Writer shape only). It must not import controllers or the server.
package backfill
