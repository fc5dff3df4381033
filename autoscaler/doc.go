// Package autoscaler turns metrics into replica counts: HPA-style policies on
// any MetricsQL/PromQL expression, KPI threshold rules, Kubernetes
// autoscaling/v2 behaviour (tolerance, stabilisation windows, rate
// policies), scale to zero, and predictive pre-scaling, evaluated every
// second by Loop.
//
// # The pure pieces
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
// # The loop (loop.go, observe.go, predict.go)
//
// Loop evaluates every policy each LoopConfig.Interval (1 s):
//
//  1. Target.Get: the service's replicas and instances (not those being
//     stopped or failed) with their readiness, and per-instance requests.
//  2. observe: each metric's query (resource metrics read the container
//     collector's series), and before it the age of the query's data: per
//     series selector, max by (instance) (tlast_over_time(SEL[...])). Data
//     older than the policy's max_data_age (default 10s), no data, or a
//     failed query makes the metric Unavailable; a per-instance sample
//     whose own instance's data is stale is dropped (the instance counts as
//     missing).
//  3. Any unavailable metric holds the replicas (the limiter does not see
//     the evaluation) and raises one MetricStale event per episode,
//     MetricRecovered when it ends: never scale on nothing.
//  4. Desired, then (predictive policies) the larger of it and the
//     forecast's replicas, then Limiter.Apply; a changed count goes to
//     Target.Scale with who "autoscaler" and the reasons as why, and
//     Limiter.Record on success. Events: AutoScaled, ScaleLimited (when what
//     limits a wanted change changes), WouldScale (dry run, when the
//     decision changes), ScaleFailed (retried at the next evaluation).
//  5. Status per service: the last evaluation with every proposal, the
//     recent decisions that changed something, the forecasts against
//     actuals; self-metrics opspilot_autoscaler_* (current, desired,
//     recommended, predicted replicas; metric value and target; decision
//     duration; limited-by, scalings, held, errors, evaluations).
//
// Predictive pre-scaling (predict.go) fits analyzer/forecast's
// Holt-Winters (daily and weekly seasons, Nelder-Mead) on the metric's
// total over `history` from the TSDB (RangeQuerier), off the evaluation
// path, refits every 6 hours, updates it with the observed totals per
// `step`, and forecasts `lead` ahead; the replicas that total needs are a
// floor under the reactive result, never a ceiling.
//
// # Dependencies
//
// This package may import opspilot/config, opspilot/api (route and role
// types), opspilot/analyzer/forecast, client_golang, the MetricsQL parser
// (github.com/VictoriaMetrics/metricsql, to validate queries and find
// selectors) and the standard library. The pure parts do no I/O. It must
// not import the orchestrator's internals or the TSDB: the loop depends on
// them only through the interfaces it defines (Querier, RangeQuerier,
// Target, Recorder), which cmd/opspilot implements over the TSDB client
// and the controller.
package autoscaler
