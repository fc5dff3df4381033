package autoscaler_test

import (
	"fmt"
	"time"

	"opspilot/autoscaler"
)

// The reference scenario: billing runs 10 instances at 50 tx/s each (on
// target), then the KPI crosses 60,000 transactions per minute.
func Example() {
	p := autoscaler.DefaultPolicy()
	p.Service, p.MinReplicas, p.MaxReplicas = "billing", 2, 200
	p.Metrics = []autoscaler.Metric{
		{PerInstance: &autoscaler.PerInstanceMetric{Query: `sum by (instance) (rate(billing_transactions_total[1m]))`, AverageValue: 50}},
		{Threshold: &autoscaler.ThresholdRule{When: `sum(rate(billing_transactions_total[1m])) * 60 > 60000`, Add: 100}},
	}
	p.Behavior.ScaleUp.Policies = []autoscaler.ScalingPolicy{{Type: autoscaler.PolicyPods, Value: 100, Period: 15 * time.Second}}
	if problems := p.Validate(); len(problems) > 0 {
		fmt.Println(problems)
		return
	}

	in := autoscaler.Inputs{Current: 10, Metrics: []autoscaler.Observation{{Samples: map[string]float64{}}, {Value: 61200}}}
	for i := range 10 {
		name := fmt.Sprintf("billing-%d", i)
		in.Instances = append(in.Instances, autoscaler.Instance{Name: name, Ready: true})
		in.Metrics[0].Samples[name] = 50
	}
	rec := autoscaler.Desired(&p, in)
	fmt.Println(rec.Proposals[0].Reason)
	fmt.Println(rec.Reason)

	l := autoscaler.NewLimiter(&p)
	now := time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)
	d := l.Apply(now, in.Current, rec.Replicas)
	l.Record(now, in.Current, d.Replicas)
	fmt.Println(d.Replicas, d.Reason)

	p.MaxReplicas = 100
	d = autoscaler.NewLimiter(&p).Apply(now, in.Current, rec.Replicas)
	fmt.Println(d.Replicas, d.LimitedBy, d.Reason)
	// Output:
	// 50 within tolerance of target 50
	// metrics[1] asks for 110: 61200 > 60000 holds: 10 + 100
	// 110 scaling from 10 to 110 replicas
	// 100 [max-replicas] recommended 110, max_replicas is 100
}
