package autoscaler

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/VictoriaMetrics/metricsql"

	"opspilot/config"
)

// Kind is the `kind` of an autoscaling policy document in apply files.
const Kind = "AutoscalingPolicy"

// Policy says how one service is scaled: between MinReplicas and
// MaxReplicas, on the largest replica count its metrics ask for, changed at
// the pace its Behavior allows. It is written in YAML as
//
//	kind: AutoscalingPolicy
//	service: billing
//	min_replicas: 2
//	max_replicas: 200
//	metrics:
//	  - per_instance: {query: 'sum by (instance) (rate(billing_transactions_total[1m]))', average_value: 50}
//	  - resource: {name: cpu, average_utilization: 70}
//	  - threshold: {when: 'sum(rate(billing_transactions_total[1m])) * 60 > 60000', add: 100}
//	behavior:
//	  scale_down: {stabilization_window: 300s, policies: [{type: Percent, value: 10, period: 60s}]}
//
// The keys follow the project's spec style (snake_case, durations such as
// "300s"); the meaning is Kubernetes autoscaling/v2's: min_replicas is
// minReplicas, stabilization_window is stabilizationWindowSeconds, period
// is periodSeconds, and so on.
//
// Start from DefaultPolicy: keys absent from the file keep its defaults,
// which are Kubernetes' (see DefaultBehavior).
type Policy struct {
	// Service is the name of the service the policy scales.
	Service string `yaml:"service" json:"service"`
	// MinReplicas is the fewest instances the autoscaler leaves running
	// (default 1). Zero enables scale to zero: see Metric.Activation.
	MinReplicas int `yaml:"min_replicas" json:"min_replicas"`
	// MaxReplicas is the most instances the autoscaler starts.
	MaxReplicas int `yaml:"max_replicas" json:"max_replicas"`
	// Metrics each propose a replica count; the largest wins.
	Metrics []Metric `yaml:"metrics" json:"metrics"`
	// Behavior paces changes: tolerance, stabilisation windows and rate
	// policies for each direction.
	Behavior Behavior `yaml:"behavior,omitempty" json:"behavior"`
	// MaxDataAge is how old the newest sample behind a metric may be
	// before the metric counts as stale (default 10s): a stale metric
	// holds the replicas and raises an event instead of scaling on old
	// data. Set it to a few scrape intervals of the metric's source.
	MaxDataAge time.Duration `yaml:"max_data_age,omitempty" json:"max_data_age,omitempty"`
	// DryRun computes and reports decisions (events, metrics, describe)
	// without scaling.
	DryRun bool `yaml:"dry_run,omitempty" json:"dry_run,omitempty"`
	// Predictive, when set, also scales for the value each metric is
	// forecast to reach one start-up time ahead, never below the reactive
	// result.
	Predictive *Predictive `yaml:"predictive,omitempty" json:"predictive,omitempty"`
}

// Predictive configures predictive pre-scaling: each resource,
// per_instance and expression metric's total is forecast with the
// analyzer's Holt-Winters model (daily and weekly seasons, parameters
// fitted by optimisation) and the replicas it will need Lead from now are
// recommended in advance.
type Predictive struct {
	// Lead is how far ahead to scale: the time a new instance takes to
	// start and become ready, plus a margin (default 60s).
	Lead time.Duration `yaml:"lead,omitempty" json:"lead,omitempty"`
	// History is how much past data the model is fitted on (default 14
	// days; at least 2 days are needed before it predicts).
	History time.Duration `yaml:"history,omitempty" json:"history,omitempty"`
	// Step is the model's resolution (default 5m): the metric is averaged
	// per step.
	Step time.Duration `yaml:"step,omitempty" json:"step,omitempty"`
}

// Predictive defaults.
const (
	DefaultMaxDataAge     = 10 * time.Second
	DefaultPredictiveLead = time.Minute
	DefaultPredictiveHist = 14 * 24 * time.Hour
	DefaultPredictiveStep = 5 * time.Minute
	minPredictiveHistory  = 48 * time.Hour
	maxPredictiveHistory  = 90 * 24 * time.Hour
	minPredictiveStep     = 10 * time.Second
)

// withDefaults fills the zero fields of a Predictive.
func (p Predictive) withDefaults() Predictive {
	if p.Lead == 0 {
		p.Lead = DefaultPredictiveLead
	}
	if p.History == 0 {
		p.History = DefaultPredictiveHist
	}
	if p.Step == 0 {
		p.Step = DefaultPredictiveStep
	}
	return p
}

// maxDataAge is MaxDataAge or its default.
func (p *Policy) maxDataAge() time.Duration {
	if p.MaxDataAge > 0 {
		return p.MaxDataAge
	}
	return DefaultMaxDataAge
}

// Metric is one input of a policy. Exactly one of Resource, PerInstance,
// Expression and Threshold is set.
type Metric struct {
	Resource    *ResourceMetric    `yaml:"resource,omitempty" json:"resource,omitempty"`
	PerInstance *PerInstanceMetric `yaml:"per_instance,omitempty" json:"per_instance,omitempty"`
	Expression  *ExpressionMetric  `yaml:"expression,omitempty" json:"expression,omitempty"`
	Threshold   *ThresholdRule     `yaml:"threshold,omitempty" json:"threshold,omitempty"`
	// Activation matters only with min_replicas 0, as KEDA's
	// activationThreshold: the service is active while some expression's
	// value is above its activation (or some threshold rule holds). An
	// inactive service is scaled to zero, and a service at zero is started
	// only once it is active. Zero means "any positive value".
	Activation float64 `yaml:"activation,omitempty" json:"activation,omitempty"`
}

// ResourceMetric targets the average utilisation of the instances' CPU or
// memory, as a percentage of what they request (Kubernetes' Resource
// metric with a Utilization target).
type ResourceMetric struct {
	// Name is "cpu" or "memory".
	Name string `yaml:"name" json:"name"`
	// AverageUtilization is the target: usage summed over the instances
	// divided by their summed requests, in percent.
	AverageUtilization float64 `yaml:"average_utilization" json:"average_utilization"`
}

// PerInstanceMetric targets the per-instance average of a KPI (Kubernetes'
// Pods metric): Query yields one series per instance, matched to the
// service's instances by their `instance` label, e.g.
// sum by (instance) (rate(billing_transactions_total[1m])).
type PerInstanceMetric struct {
	Query        string  `yaml:"query" json:"query"`
	AverageValue float64 `yaml:"average_value" json:"average_value"`
}

// ExpressionMetric targets the single value of any MetricsQL/PromQL
// expression (Kubernetes' External metric): either Value, for the whole
// expression, or AverageValue, for the expression divided by the number of
// replicas. Exactly one is set.
type ExpressionMetric struct {
	Query        string  `yaml:"query" json:"query"`
	Value        float64 `yaml:"value,omitempty" json:"value,omitempty"`
	AverageValue float64 `yaml:"average_value,omitempty" json:"average_value,omitempty"`
}

// ThresholdRule is a KPI policy: while When holds, run Add more instances
// than the other metrics ask for (or than min_replicas, when they ask for
// fewer or there are none), or exactly Set instances. Exactly one of Add
// and Set is set.
//
// Add is relative to the other metrics' recommendation, not to the current
// replicas, so that a rule that keeps holding asks for the same count on
// every evaluation instead of adding 100 more each second.
type ThresholdRule struct {
	// When is a comparison of an expression with a number:
	// 'sum(rate(billing_transactions_total[1m])) * 60 > 60000'. The
	// operator is one of >, >=, <, <=, == and !=.
	When string `yaml:"when" json:"when"`
	Add  int    `yaml:"add,omitempty" json:"add,omitempty"`
	Set  int    `yaml:"set,omitempty" json:"set,omitempty"`
}

// Behavior holds the scaling rules of each direction (autoscaling/v2's
// HorizontalPodAutoscalerBehavior).
type Behavior struct {
	ScaleUp   ScalingRules `yaml:"scale_up,omitempty" json:"scale_up"`
	ScaleDown ScalingRules `yaml:"scale_down,omitempty" json:"scale_down"`
}

// Select policies: which rate policy applies when several are listed.
const (
	SelectMax      = "Max"      // the policy allowing the largest change (default)
	SelectMin      = "Min"      // the policy allowing the smallest change
	SelectDisabled = "Disabled" // no scaling in this direction
)

// Rate policy types.
const (
	PolicyPods    = "Pods"    // at most Value instances per Period
	PolicyPercent = "Percent" // at most Value percent of the replicas per Period
)

// ScalingRules pace one direction (autoscaling/v2's HPAScalingRules).
type ScalingRules struct {
	// StabilizationWindow: scaling up uses the lowest recommendation of
	// this window, scaling down the highest, so short swings of the metric
	// do not move the replicas.
	StabilizationWindow time.Duration `yaml:"stabilization_window" json:"stabilization_window"`
	// Tolerance is how far the metric/target ratio may be from 1 in this
	// direction before the replicas change: 0.1 ignores changes within
	// 10%.
	Tolerance float64 `yaml:"tolerance" json:"tolerance"`
	// SelectPolicy is Max, Min or Disabled; empty means Max.
	SelectPolicy string `yaml:"select_policy,omitempty" json:"select_policy,omitempty"`
	// Policies bound the change within any Period; at least one is
	// needed unless SelectPolicy is Disabled.
	Policies []ScalingPolicy `yaml:"policies" json:"policies"`
}

// ScalingPolicy bounds the change of replicas within a sliding period
// (autoscaling/v2's HPAScalingPolicy).
type ScalingPolicy struct {
	// Type is Pods (Value instances) or Percent (Value percent of the
	// replicas at the start of the period).
	Type   string        `yaml:"type" json:"type"`
	Value  int           `yaml:"value" json:"value"`
	Period time.Duration `yaml:"period" json:"period"`
}

// Defaults, as in Kubernetes.
const (
	DefaultMinReplicas             = 1
	DefaultTolerance               = 0.1
	DefaultScaleUpStabilization    = 0 * time.Second
	DefaultScaleDownStabilization  = 300 * time.Second
	DefaultPolicyPeriod            = 15 * time.Second
	MaxStabilizationWindow         = time.Hour
	MaxPolicyPeriod                = 30 * time.Minute
	MaxReplicasLimit               = 1_000_000
	maxPolicyValue                 = 1_000_000
	defaultScaleUpPodsPerPeriod    = 4
	defaultScaleUpPercentPerPeriod = 100
)

// DefaultPolicy returns a policy holding every default, to decode a file
// into: min_replicas 1 and DefaultBehavior. It is the one place defaults
// are set.
func DefaultPolicy() Policy {
	return Policy{MinReplicas: DefaultMinReplicas, Behavior: DefaultBehavior()}
}

// DefaultBehavior is Kubernetes' behaviour when none is given: scale up
// without a window by at most max(100%, 4 instances) per 15 s; scale down
// on the highest recommendation of the last 300 s by at most 100% per 15 s;
// tolerance 0.1 both ways. A file that sets some of these keeps the others:
// a policies list replaces the default list of its direction.
func DefaultBehavior() Behavior {
	return Behavior{
		ScaleUp: ScalingRules{
			StabilizationWindow: DefaultScaleUpStabilization,
			Tolerance:           DefaultTolerance,
			SelectPolicy:        SelectMax,
			Policies: []ScalingPolicy{
				{Type: PolicyPercent, Value: defaultScaleUpPercentPerPeriod, Period: DefaultPolicyPeriod},
				{Type: PolicyPods, Value: defaultScaleUpPodsPerPeriod, Period: DefaultPolicyPeriod},
			},
		},
		ScaleDown: ScalingRules{
			StabilizationWindow: DefaultScaleDownStabilization,
			Tolerance:           DefaultTolerance,
			SelectPolicy:        SelectMax,
			Policies:            []ScalingPolicy{{Type: PolicyPercent, Value: 100, Period: DefaultPolicyPeriod}},
		},
	}
}

// Validate checks the policy and returns every problem with the YAML path
// of its field. It never changes the policy.
func (p *Policy) Validate() []config.Problem {
	var ps []config.Problem
	add := func(field, msg string) { ps = append(ps, config.Problem{Field: field, Msg: msg}) }

	if msg := checkName(p.Service); msg != "" {
		add("service", msg)
	}
	if p.MinReplicas < 0 {
		add("min_replicas", "must not be negative; use 0 for scale to zero")
	}
	switch {
	case p.MaxReplicas < 1:
		add("max_replicas", "must be at least 1, e.g. max_replicas: 20")
	case p.MaxReplicas > MaxReplicasLimit:
		add("max_replicas", fmt.Sprintf("%d is more than the limit of %d", p.MaxReplicas, MaxReplicasLimit))
	case p.MaxReplicas < p.MinReplicas:
		add("max_replicas", fmt.Sprintf("%d is below min_replicas %d; raise it or lower min_replicas", p.MaxReplicas, p.MinReplicas))
	}
	if len(p.Metrics) == 0 {
		add("metrics", "needs at least one metric, e.g. - per_instance: {query: 'sum by (instance) (rate(billing_transactions_total[1m]))', average_value: 50}")
	}
	wakes := false // some metric can start the service from zero
	for i, m := range p.Metrics {
		at := "metrics[" + strconv.Itoa(i) + "]"
		ps = append(ps, config.Prefix(at, m.validate())...)
		wakes = wakes || m.Expression != nil || m.Threshold != nil
	}
	if p.MinReplicas == 0 && len(p.Metrics) > 0 && !wakes {
		add("min_replicas", "0 (scale to zero) needs an expression or threshold metric that can be read while no instance runs, e.g. - expression: {query: 'sum(rate(gateway_requests_total{service=\"billing\"}[1m]))', average_value: 50}; resource and per_instance metrics come from instances")
	}
	if p.MaxDataAge < 0 || p.MaxDataAge > time.Hour {
		add("max_data_age", "must be between 0 (default 10s) and 1h, e.g. max_data_age: 5s")
	}
	if pr := p.Predictive; pr != nil {
		d := pr.withDefaults()
		switch {
		case pr.Lead < 0 || d.Lead > 24*time.Hour:
			add("predictive.lead", "must be between 0 (default 60s) and 24h: the time an instance takes to become ready, e.g. lead: 90s")
		case d.History < minPredictiveHistory || d.History > maxPredictiveHistory:
			add("predictive.history", "must be between 48h and 90d (default 14d): the model needs at least two days for its daily season")
		case d.Step < minPredictiveStep || d.Step > time.Hour || d.Step > d.History/96:
			add("predictive.step", "must be between 10s and 1h and at most 1/96 of history (default 5m)")
		}
	}
	ps = append(ps, config.Prefix("behavior.scale_up", p.Behavior.ScaleUp.validate())...)
	ps = append(ps, config.Prefix("behavior.scale_down", p.Behavior.ScaleDown.validate())...)
	return ps
}

func (m *Metric) validate() []config.Problem {
	var ps []config.Problem
	add := func(field, msg string) { ps = append(ps, config.Problem{Field: field, Msg: msg}) }
	kinds := 0
	if r := m.Resource; r != nil {
		kinds++
		switch r.Name {
		case "cpu", "memory":
		case "":
			add("resource.name", `missing; set "cpu" or "memory"`)
		default:
			add("resource.name", fmt.Sprintf(`unknown resource %q; use "cpu" or "memory"`, clip(r.Name)))
		}
		if !positive(r.AverageUtilization) {
			add("resource.average_utilization", "must be a positive percentage of the instances' requests, e.g. 70")
		}
	}
	if q := m.PerInstance; q != nil {
		kinds++
		ps = checkQuery(ps, "per_instance.query", q.Query)
		if !positive(q.AverageValue) {
			add("per_instance.average_value", "must be a positive number: the value each instance should average, e.g. 50")
		}
	}
	if e := m.Expression; e != nil {
		kinds++
		ps = checkQuery(ps, "expression.query", e.Query)
		switch {
		case e.Value != 0 && e.AverageValue != 0:
			add("expression", "set only one of value (for the whole expression) and average_value (per replica)")
		case e.Value != 0:
			if !positive(e.Value) {
				add("expression.value", "must be a positive number")
			}
		case e.AverageValue != 0:
			if !positive(e.AverageValue) {
				add("expression.average_value", "must be a positive number")
			}
		default:
			add("expression", "set a target: value (for the whole expression) or average_value (per replica)")
		}
	}
	if t := m.Threshold; t != nil {
		kinds++
		if t.When == "" {
			add("threshold.when", "missing; write a comparison such as 'sum(rate(billing_transactions_total[1m])) * 60 > 60000'")
		} else if _, err := ParseCondition(t.When); err != nil {
			add("threshold.when", err.Error())
		}
		switch {
		case t.Add < 0 || t.Set < 0:
			if t.Add < 0 {
				add("threshold.add", "must be positive: the number of instances to add while the condition holds")
			}
			if t.Set < 0 {
				add("threshold.set", "must be positive: the number of instances to run while the condition holds")
			}
		case t.Add > 0 && t.Set > 0:
			add("threshold", "set only one of add and set")
		case t.Add == 0 && t.Set == 0:
			add("threshold", "set add (instances to add, e.g. add: 100) or set (instances to run)")
		case t.Add > MaxReplicasLimit:
			add("threshold.add", fmt.Sprintf("must be at most %d", MaxReplicasLimit))
		case t.Set > MaxReplicasLimit:
			add("threshold.set", fmt.Sprintf("must be at most %d", MaxReplicasLimit))
		}
	}
	switch kinds {
	case 0:
		add("", "set one of resource, per_instance, expression or threshold")
	case 1:
	default:
		add("", "set only one of resource, per_instance, expression or threshold; list each as its own metric")
	}
	if m.Activation < 0 || math.IsNaN(m.Activation) || math.IsInf(m.Activation, 0) {
		add("activation", "must be a non-negative number")
	}
	return ps
}

func (r *ScalingRules) validate() []config.Problem {
	var ps []config.Problem
	add := func(field, msg string) { ps = append(ps, config.Problem{Field: field, Msg: msg}) }
	if r.StabilizationWindow < 0 || r.StabilizationWindow > MaxStabilizationWindow {
		add("stabilization_window", fmt.Sprintf("must be between 0s and %s", MaxStabilizationWindow))
	}
	if r.Tolerance < 0 || math.IsNaN(r.Tolerance) || math.IsInf(r.Tolerance, 0) {
		add("tolerance", "must be a non-negative fraction, e.g. 0.1 to ignore changes within 10%")
	}
	switch r.SelectPolicy {
	case "", SelectMax, SelectMin, SelectDisabled:
	default:
		add("select_policy", fmt.Sprintf("unknown %q; use Max (the policy allowing the largest change), Min (the smallest) or Disabled", clip(r.SelectPolicy)))
	}
	if len(r.Policies) == 0 && r.SelectPolicy != SelectDisabled {
		add("policies", "needs at least one policy, e.g. [{type: Percent, value: 100, period: 15s}], or select_policy: Disabled")
	}
	for i, pol := range r.Policies {
		at := "policies[" + strconv.Itoa(i) + "]"
		switch pol.Type {
		case PolicyPods, PolicyPercent:
		case "":
			add(at+".type", "missing; set Pods or Percent")
		default:
			add(at+".type", fmt.Sprintf("unknown %q; use Pods or Percent", clip(pol.Type)))
		}
		if pol.Value <= 0 || pol.Value > maxPolicyValue {
			add(at+".value", fmt.Sprintf("must be between 1 and %d", maxPolicyValue))
		}
		if pol.Period <= 0 || pol.Period > MaxPolicyPeriod {
			add(at+".period", fmt.Sprintf("must be between 1s and %s, e.g. 60s", MaxPolicyPeriod))
		}
	}
	return ps
}

// Condition is a threshold rule's When, split: Query Op Value.
type Condition struct {
	Query string
	Op    string
	Value float64
}

// ParseCondition splits a threshold rule's When into the expression to
// evaluate, the comparison and the number, checking that the expression is
// valid MetricsQL.
func ParseCondition(when string) (Condition, error) {
	e, err := metricsql.Parse(when)
	if err != nil {
		return Condition{}, fmt.Errorf("not valid MetricsQL: %v", err)
	}
	be, ok := e.(*metricsql.BinaryOpExpr)
	if !ok || !comparison(be.Op) || be.Bool {
		return Condition{}, fmt.Errorf("must compare an expression with a number, e.g. 'sum(rate(billing_transactions_total[1m])) * 60 > 60000'")
	}
	n, ok := be.Right.(*metricsql.NumberExpr)
	if !ok || math.IsNaN(n.N) {
		return Condition{}, fmt.Errorf("the right side of %s must be a number, e.g. '... > 60000'", be.Op)
	}
	return Condition{Query: string(be.Left.AppendString(nil)), Op: be.Op, Value: n.N}, nil
}

func comparison(op string) bool {
	switch op {
	case ">", ">=", "<", "<=", "==", "!=":
		return true
	}
	return false
}

// Holds reports whether value satisfies the condition.
func (c Condition) Holds(value float64) bool {
	switch c.Op {
	case ">":
		return value > c.Value
	case ">=":
		return value >= c.Value
	case "<":
		return value < c.Value
	case "<=":
		return value <= c.Value
	case "==":
		return value == c.Value
	case "!=":
		return value != c.Value
	}
	return false
}

func checkQuery(ps []config.Problem, field, q string) []config.Problem {
	if strings.TrimSpace(q) == "" {
		return append(ps, config.Problem{Field: field, Msg: "missing; write a MetricsQL/PromQL expression"})
	}
	if _, err := metricsql.Parse(q); err != nil {
		return append(ps, config.Problem{Field: field, Msg: fmt.Sprintf("not valid MetricsQL: %v", err)})
	}
	return ps
}

func positive(f float64) bool { return f > 0 && !math.IsInf(f, 0) }

// checkName accepts what the orchestrator accepts for service names: at
// most 63 letters, digits, '-', '_' or '.', starting with a letter or digit.
func checkName(name string) string {
	if name == "" {
		return "missing; name the service to scale, e.g. service: billing"
	}
	ok := len(name) <= 63
	for i, r := range name {
		alnum := r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r))
		ok = ok && (alnum || i > 0 && strings.ContainsRune("-_.", r))
	}
	if !ok {
		return fmt.Sprintf("invalid name %q: use at most 63 letters, digits, '-', '_' or '.', starting with a letter or digit", clip(name))
	}
	return ""
}

// clip shortens a value quoted in a message.
func clip(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}
