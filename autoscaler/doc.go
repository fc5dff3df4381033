// Package autoscaler turns metrics into replica counts: HPA-style policies on
// any MetricsQL/PromQL expression, KPI threshold rules, Kubernetes
// autoscaling/v2 behaviour (tolerance, stabilisation windows, rate
// policies), scale to zero, and predictive pre-scaling.
//
// The replica calculation and the behaviour step are pure functions; the
// loop reads opspilot/tsdb and calls a scale interface that the
// orchestrator (or a Kubernetes target) implements. It must not import the
// orchestrator's internals: it depends only on that interface.
//
// Filled by the autoscaler issue; this file reserves the package.
package autoscaler
