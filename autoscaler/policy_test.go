package autoscaler

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"opspilot/config"
)

// policyDoc is how `opspilot apply` decodes the kind: the policy inlined
// next to its kind, validated by config.ParseDocuments.
type policyDoc struct {
	Kind   string `yaml:"kind"`
	Policy `yaml:",inline"`
}

// rawPolicyDoc decodes without validating (P's Validate is not promoted),
// for tests that call Validate themselves.
type rawPolicyDoc struct {
	Kind string `yaml:"kind"`
	P    Policy `yaml:",inline"`
}

func parsePolicies(data string) ([]*Policy, error) {
	docs, err := config.ParseDocuments("policy.yaml", []byte(data), func(kind string) (any, error) {
		if kind != Kind {
			return nil, fmt.Errorf("unknown kind %q; this file holds %s", kind, Kind)
		}
		return &policyDoc{Policy: DefaultPolicy()}, nil
	})
	var out []*Policy
	for _, d := range docs {
		out = append(out, &d.Value.(*policyDoc).Policy)
	}
	return out, err
}

const examplePolicy = `kind: AutoscalingPolicy
service: billing
min_replicas: 2
max_replicas: 200
metrics:
  - per_instance: {query: 'sum by (instance) (rate(billing_transactions_total[1m]))', average_value: 50}
  - resource: {name: cpu, average_utilization: 70}
  - threshold: {when: 'sum(rate(billing_transactions_total[1m])) * 60 > 60000', add: 100}
  - expression: {query: 'sum(rate(gateway_requests_total{service="billing"}[1m]))', average_value: 40}
behavior:
  scale_up:
    policies: [{type: Pods, value: 100, period: 15s}]
  scale_down:
    tolerance: 0.2
    policies: [{type: Percent, value: 10, period: 60s}]
`

// Keys left out keep Kubernetes' defaults; a policies list replaces the
// default list of its direction only.
func TestParsePolicy(t *testing.T) {
	ps, err := parsePolicies(examplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	want := Policy{
		Service: "billing", MinReplicas: 2, MaxReplicas: 200,
		Metrics: []Metric{
			{PerInstance: &PerInstanceMetric{Query: `sum by (instance) (rate(billing_transactions_total[1m]))`, AverageValue: 50}},
			{Resource: &ResourceMetric{Name: "cpu", AverageUtilization: 70}},
			{Threshold: &ThresholdRule{When: `sum(rate(billing_transactions_total[1m])) * 60 > 60000`, Add: 100}},
			{Expression: &ExpressionMetric{Query: `sum(rate(gateway_requests_total{service="billing"}[1m]))`, AverageValue: 40}},
		},
		Behavior: Behavior{
			ScaleUp: ScalingRules{Tolerance: 0.1, SelectPolicy: SelectMax,
				Policies: []ScalingPolicy{{Type: PolicyPods, Value: 100, Period: 15 * time.Second}}},
			ScaleDown: ScalingRules{StabilizationWindow: 300 * time.Second, Tolerance: 0.2, SelectPolicy: SelectMax,
				Policies: []ScalingPolicy{{Type: PolicyPercent, Value: 10, Period: time.Minute}}},
		},
	}
	if len(ps) != 1 || !reflect.DeepEqual(*ps[0], want) {
		t.Errorf("parsed %+v\nwant %+v", ps, want)
	}
}

func TestParsePolicyMinimal(t *testing.T) {
	ps, err := parsePolicies("kind: AutoscalingPolicy\nservice: billing\nmax_replicas: 5\nmetrics: [{resource: {name: memory, average_utilization: 80}}]\n")
	if err != nil {
		t.Fatal(err)
	}
	if p := ps[0]; p.MinReplicas != 1 || !reflect.DeepEqual(p.Behavior, DefaultBehavior()) {
		t.Errorf("defaults not kept: %+v", p)
	}
}

// Every problem names its field by YAML path, with a hint.
func TestValidateProblems(t *testing.T) {
	const head = "kind: AutoscalingPolicy\nservice: billing\nmax_replicas: 10\n"
	const m = "metrics: [{per_instance: {query: 'sum by (instance) (rate(x[1m]))', average_value: 5}}]\n"
	for _, tc := range []struct {
		name, yaml string
		want       map[string]string // field → message substring
	}{
		{"empty", "kind: AutoscalingPolicy\n", map[string]string{
			"service": "missing", "max_replicas": "at least 1", "metrics": "at least one metric"}},
		{"max below min", head + "min_replicas: 20\n" + m, map[string]string{"max_replicas": "below min_replicas 20"}},
		{"kubernetes key names", head + "minReplicas: 2\n" + m, map[string]string{"minReplicas": `did you mean "min_replicas"`}},
		{"two kinds in one metric", head + "metrics: [{resource: {name: cpu, average_utilization: 50}, expression: {query: x, value: 1}}]\n",
			map[string]string{"metrics[0]": "only one of"}},
		{"no kind", head + "metrics: [{activation: 1}]\n", map[string]string{"metrics[0]": "set one of"}},
		{"bad resource", head + "metrics: [{resource: {name: gpu}}]\n", map[string]string{
			"metrics[0].resource.name": `unknown resource "gpu"`, "metrics[0].resource.average_utilization": "positive"}},
		{"bad query", head + "metrics: [{per_instance: {query: 'sum(', average_value: 5}}]\n",
			map[string]string{"metrics[0].per_instance.query": "not valid MetricsQL"}},
		{"expression targets", head + "metrics: [{expression: {query: x, value: 1, average_value: 2}}, {expression: {query: x}}]\n",
			map[string]string{"metrics[0].expression": "only one of value", "metrics[1].expression": "set a target"}},
		{"threshold without comparison", head + "metrics: [{threshold: {when: 'sum(x)', add: 1}}]\n",
			map[string]string{"metrics[0].threshold.when": "compare an expression with a number"}},
		{"threshold add and set", head + "metrics: [{threshold: {when: 'x > 1', add: 1, set: 2}}, {threshold: {when: 'x > 1'}}]\n",
			map[string]string{"metrics[0].threshold": "only one of add and set", "metrics[1].threshold": "set add"}},
		{"scale to zero needs an expression", "kind: AutoscalingPolicy\nservice: b\nmin_replicas: 0\nmax_replicas: 3\n" + m,
			map[string]string{"min_replicas": "needs an expression or threshold"}},
		{"negative activation", head + "metrics: [{expression: {query: x, value: 1}, activation: -1}]\n",
			map[string]string{"metrics[0].activation": "non-negative"}},
		{"behaviour", head + m + "behavior:\n  scale_up: {stabilization_window: 2h, tolerance: -0.1, policies: []}\n  scale_down: {select_policy: Maximum, policies: [{type: Pod, value: 0, period: 0s}]}\n",
			map[string]string{
				"behavior.scale_up.stabilization_window": "between 0s and 1h0m0s",
				"behavior.scale_up.tolerance":            "non-negative",
				"behavior.scale_up.policies":             "at least one policy",
				"behavior.scale_down.select_policy":      `unknown "Maximum"`,
				"behavior.scale_down.policies[0].type":   `unknown "Pod"`,
				"behavior.scale_down.policies[0].value":  "between 1 and",
				"behavior.scale_down.policies[0].period": "between 1s and",
			}},
		{"disabled needs no policies", head + m + "behavior: {scale_down: {select_policy: Disabled, policies: []}}\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parsePolicies(tc.yaml)
			got := map[string]string{}
			var es config.Errors
			if err != nil && !errors.As(err, &es) {
				t.Fatalf("error %v is not config.Errors", err)
			}
			for _, e := range es {
				got[e.Field] += e.Msg + "; "
			}
			for field, sub := range tc.want {
				if !strings.Contains(got[field], sub) {
					t.Errorf("%s: got %q, want it to mention %q (all: %v)", field, got[field], sub, err)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("got problems on %d fields, want %d: %v", len(got), len(tc.want), err)
			}
		})
	}
}

func TestParseCondition(t *testing.T) {
	c, err := ParseCondition(`sum(rate(billing_transactions_total[1m])) * 60 > 60000`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Op != ">" || c.Value != 60000 || !strings.Contains(c.Query, "billing_transactions_total") || strings.Contains(c.Query, "60000") {
		t.Errorf("ParseCondition = %+v", c)
	}
	if !c.Holds(60001) || c.Holds(60000) {
		t.Error("Holds is wrong at the bound")
	}
	for _, bad := range []string{`x`, `x > bool 5`, `5 < x`, `x > y`, `x + 1`, `(`} {
		if _, err := ParseCondition(bad); err == nil {
			t.Errorf("ParseCondition(%q) accepted", bad)
		}
	}
}

// FuzzPolicyYAML: arbitrary files never panic the decoder, Validate or
// the calculation; every problem names a field; a valid policy yields
// decisions within its bounds.
func FuzzPolicyYAML(f *testing.F) {
	f.Add([]byte(examplePolicy))
	f.Add([]byte("kind: AutoscalingPolicy\nservice: s\nmin_replicas: 0\nmax_replicas: 3\nmetrics: [{expression: {query: x, average_value: 1}, activation: 2}]\n"))
	f.Add([]byte("kind: AutoscalingPolicy\nmetrics: [{threshold: {when: 'x >= 1e300', set: 1000000}}]\nmax_replicas: 1000000\nservice: a\n"))
	f.Add([]byte("kind: AutoscalingPolicy\nbehavior: {scale_up: {tolerance: .nan, policies: [{type: Percent, value: 9999999, period: 1ns}]}}\n"))
	f.Add([]byte("kind: AutoscalingPolicy\nmetrics: [{resource: {name: cpu, average_utilization: .inf}}]\n---\nkind: Other\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := config.ParseDocuments("fuzz.yaml", data, func(kind string) (any, error) {
			if kind != Kind {
				return nil, fmt.Errorf("unknown kind %q", kind)
			}
			return &rawPolicyDoc{P: DefaultPolicy()}, nil
		})
		if err != nil {
			var es config.Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %v (%T) is not config.Errors", err, err)
			}
			for _, e := range es {
				if e.Msg == "" {
					t.Fatalf("empty message in %+v", e)
				}
			}
			return
		}
		for _, d := range docs {
			p := &d.Value.(*rawPolicyDoc).P
			problems := p.Validate()
			for _, pr := range problems {
				if pr.Field == "" || pr.Msg == "" {
					t.Fatalf("problem without field or message: %+v", pr)
				}
			}
			if len(problems) == 0 {
				exercise(t, p)
			}
		}
	})
}

// exercise runs a valid policy through Desired and a Limiter.
func exercise(t *testing.T, p *Policy) {
	current := min(max(p.MinReplicas, 1), p.MaxReplicas)
	n := min(current, 20)
	in := Inputs{Current: current, Instances: instances(n, 0)}
	for range p.Metrics {
		in.Metrics = append(in.Metrics, Observation{Value: 1e6, Samples: evenly(n, float64(n)*3), Requests: cores(n)})
	}
	rec := Desired(p, in)
	if rec.Replicas < 0 || len(rec.Proposals) != len(p.Metrics) {
		t.Fatalf("Desired = %+v", rec)
	}
	l := NewLimiter(p)
	for i := range 3 {
		now := epoch.Add(time.Duration(i) * time.Second)
		d := l.Apply(now, current, rec.Replicas)
		if d.Replicas < p.MinReplicas || d.Replicas > p.MaxReplicas {
			t.Fatalf("Apply(%d, %d) = %d outside [%d, %d]: %s", current, rec.Replicas, d.Replicas, p.MinReplicas, p.MaxReplicas, d.Reason)
		}
		l.Record(now, current, d.Replicas)
		current = d.Replicas
	}
}
