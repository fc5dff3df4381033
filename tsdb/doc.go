// Package tsdb owns opspilot's time-series storage: the embedded
// VictoriaMetrics single-node that `opspilot up` runs in-process, the
// endpoints of a remote Prometheus-compatible store (a VictoriaMetrics
// single-node or cluster, or any remote-write + query API), and the one
// Client every other package uses to write samples (Prometheus remote write,
// protobuf + snappy) and to query them (MetricsQL/PromQL).
//
// It also ships a prometheus.Gatherer's metrics into the store (self-monitoring).
//
// It may import the VictoriaMetrics app and lib packages, the Prometheus
// client libraries and opspilot/config. It must not import any other opspilot
// package: controllers depend on tsdb, never the reverse.
//
// The embedded store is a process-wide singleton, because VictoriaMetrics
// keeps its state in package globals: it can be started once per process.
package tsdb
