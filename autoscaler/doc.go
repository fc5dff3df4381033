// Package autoscaler turns metrics into replica counts: HPA-style policies on
// any MetricsQL/PromQL expression, KPI threshold rules, Kubernetes
// autoscaling/v2 behaviour (tolerance, stabilisation windows, rate
// policies), scale to zero, and (to come) predictive pre-scaling.
//
// # What it owns now
//
// Three pure pieces, kept apart as in the Kubernetes HPA (replica
// calculation, then behaviour as a separate step):
//
//   - Policy (policy.go): the `kind: AutoscalingPolicy` spec, one per
//     service, with its defaults (DefaultPolicy, DefaultBehavior — the one
//     place they are set; decode a file into DefaultPolicy() so absent
//     keys keep them) and Validate, which reports config.Problem values
//     with YAML field paths ("metrics[2].threshold.when",
//     "behavior.scale_down.policies[0].period") and a fix hint. Keys are
//     snake_case with durations, as in the orchestrator's specs; the
//     meaning is autoscaling/v2's (min_replicas = minReplicas,
//     stabilization_window = stabilizationWindowSeconds, period =
//     periodSeconds, select_policy = selectPolicy).
//   - Desired (replicas.go): one function for every metric kind. Each
//     metric proposes ceil(current × value / target):
//     resource: ratio = (Σ usage / Σ requests × 100) / average_utilization;
//     per_instance: ratio = mean(samples) / average_value, proposal
//     ceil(ratio × instances measured); expression with value: ceil(ratio ×
//     ready instances); expression with average_value: ceil(value /
//     average_value). A ratio within the direction's tolerance of 1 keeps
//     the current count. Not-ready instances are set aside, and count as 0
//     on a scale-up; ready instances without a sample count as 100% of the
//     target on a scale-down and 0 on a scale-up; if the recomputed ratio
//     is within tolerance or reverses the direction, the count stays
//     (replica_calculator.go). Threshold rules, while their condition
//     holds, set a count or add to the other metrics' largest proposal (at
//     least min_replicas) — relative to that, not to the current count, so
//     a rule that keeps holding asks for the same count every evaluation.
//     The largest proposal wins; an unreadable metric blocks scale-downs
//     but not scale-ups. With min_replicas 0 (KEDA's scale to zero), a
//     service whose expressions are all at or below their activation (and
//     no rule holds) is recommended 0, and a service at 0 starts only when
//     one is above it.
//   - Limiter (behavior.go): Apply(now, current, recommended) applies the
//     stabilisation windows (scale up to the lowest recommendation within
//     the scale-up window, down to the highest within the scale-down
//     window), the rate policies (Pods or Percent per sliding period,
//     counted from the replicas at the period's start; select_policy Max,
//     Min or Disabled) and min/max, and says which limited the result
//     (Decision.LimitedBy, Decision.Policy) for events and the limited-by
//     counters. It keeps the recommendation and scale-event history those
//     need; time is passed in, so tests drive it with testing/synctest.
//     Record(now, from, to) notes a scale that happened.
//
// # What the loop (not written yet) adds
//
// Reading the TSDB every second (configurable): for each metric, the
// query's value or per-instance samples (per_instance queries keep the
// `instance` label), requests for resource metrics, and Unavailable for data
// older than the scrape interval, which holds the replicas instead of
// scaling on nothing; the service's instances and readiness; calling
// Desired, then Limiter.Apply, then the scale interface the orchestrator
// (or a Kubernetes target) implements, and Limiter.Record on success; an
// event per decision (inputs, Recommendation, Decision.LimitedBy, result);
// dry-run; self-metrics (desired and current replicas, value against
// target, decision latency, limited-by counters); predictive pre-scaling
// (forecast each metric one start-up time ahead with the analyzer's
// seasonal models and never go below the reactive result);
// `opspilot autoscaler describe`; registering the AutoscalingPolicy kind
// with `opspilot apply`.
//
// # Dependencies
//
// This package may import opspilot/config, the MetricsQL parser
// (github.com/VictoriaMetrics/metricsql, to validate queries) and the
// standard library. The pure parts do no I/O. It must not import the
// orchestrator's internals or the TSDB: the loop will depend on them only
// through interfaces it defines.
package autoscaler
