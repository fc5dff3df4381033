package autoscaler

import (
	"fmt"
	"strings"
	"testing"
)

// instances returns n instances named i0, i1, …; the ones whose index is in
// unready are not ready.
func instances(n int, unready ...int) []Instance {
	out := make([]Instance, n)
	for i := range out {
		out[i] = Instance{Name: fmt.Sprintf("i%d", i), Ready: true}
	}
	for _, i := range unready {
		out[i].Ready = false
	}
	return out
}

// samples maps i0, i1, … to the values; a negative value leaves the
// instance without a sample (missing).
func samples(vs ...float64) map[string]float64 {
	m := map[string]float64{}
	for i, v := range vs {
		if v >= 0 {
			m[fmt.Sprintf("i%d", i)] = v
		}
	}
	return m
}

func policy(min, max int, ms ...Metric) *Policy {
	p := DefaultPolicy()
	p.Service, p.MinReplicas, p.MaxReplicas, p.Metrics = "billing", min, max, ms
	return &p
}

func cpu(target float64) Metric {
	return Metric{Resource: &ResourceMetric{Name: "cpu", AverageUtilization: target}}
}

func perInst(target float64) Metric {
	return Metric{PerInstance: &PerInstanceMetric{Query: `sum by (instance) (rate(billing_transactions_total[1m]))`, AverageValue: target}}
}

func expr(value, average, activation float64) Metric {
	return Metric{Expression: &ExpressionMetric{Query: `sum(rate(gateway_requests_total[1m]))`, Value: value, AverageValue: average}, Activation: activation}
}

// seedRule is the reference scenario's KPI policy: at 60,000 transactions
// per minute, 100 more instances.
func seedRule() Metric {
	return Metric{Threshold: &ThresholdRule{When: `sum(rate(billing_transactions_total[1m])) * 60 > 60000`, Add: 100}}
}

// cores is one core requested by each of n instances.
func cores(n int) map[string]float64 {
	m := map[string]float64{}
	for i := range n {
		m[fmt.Sprintf("i%d", i)] = 1
	}
	return m
}

func TestDesired(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      *Policy
		in     Inputs
		want   int
		reason string // substring of the recommendation's reason
	}{
		// The seed: 60,001 tx/min > 60,000, the per-instance metric is on
		// target (10 × 50 tx/s, ratio 1 → 10), so the rule asks for
		// 10 + 100 = 110.
		{
			name: "seed threshold adds 100 to the other metrics",
			p:    policy(2, 500, perInst(50), seedRule()),
			in: Inputs{Current: 10, Instances: instances(10), Metrics: []Observation{
				{Samples: samples(50, 50, 50, 50, 50, 50, 50, 50, 50, 50)}, {Value: 60001}}},
			want: 110, reason: "metrics[1] asks for 110",
		},
		// Without other metrics the rule adds to min_replicas: 10 + 100.
		{
			name: "seed threshold alone adds to min_replicas",
			p:    policy(10, 500, seedRule()),
			in:   Inputs{Current: 10, Instances: instances(10), Metrics: []Observation{{Value: 72000}}},
			want: 110,
		},
		// Below the threshold the rule abstains; nothing else asks, so
		// min_replicas (10): the peak's capacity goes away.
		{
			name: "seed threshold not reached",
			p:    policy(10, 500, seedRule()),
			in:   Inputs{Current: 110, Instances: instances(110), Metrics: []Observation{{Value: 59999}}},
			want: 10, reason: "no metric asks",
		},
		// A rule that keeps holding asks for the same count when the
		// replicas have grown: the per-instance metric sees 990 tx/s over
		// 110 instances, 9 each (ratio 0.18 → ceil(110 × 0.18) =
		// ceil(19.8) = 20), so 20 + 100 = 120 — not 110 + 100.
		{
			name: "held threshold does not compound",
			p:    policy(2, 500, perInst(50), seedRule()),
			in: Inputs{Current: 110, Instances: instances(110), Metrics: []Observation{
				{Samples: evenly(110, 990)}, {Value: 60000 + 1}}},
			want: 120,
		},
		{
			name: "threshold set",
			p:    policy(2, 500, Metric{Threshold: &ThresholdRule{When: `sum(rate(x[1m])) >= 5`, Set: 40}}),
			in:   Inputs{Current: 3, Instances: instances(3), Metrics: []Observation{{Value: 5}}},
			want: 40,
		},
		// Per-instance KPI: 3 × 180 tx/s, target 50: ceil(3 × 180/50) =
		// ceil(10.8) = 11.
		{
			name: "per-instance KPI",
			p:    policy(1, 100, perInst(50)),
			in:   Inputs{Current: 3, Instances: instances(3), Metrics: []Observation{{Samples: samples(180, 180, 180)}}},
			want: 11, reason: "ceil(3 × 180 / 50)",
		},
		// 52 / 50 = 1.04, within the 0.1 tolerance: no change.
		{
			name: "per-instance within tolerance",
			p:    policy(1, 100, perInst(50)),
			in:   Inputs{Current: 3, Instances: instances(3), Metrics: []Observation{{Samples: samples(50, 52, 54)}}},
			want: 3, reason: "within tolerance",
		},
		// 56 / 50 = 1.12 > 1.1: ceil(3 × 1.12) = ceil(3.36) = 4.
		{
			name: "per-instance just outside tolerance",
			p:    policy(1, 100, perInst(50)),
			in:   Inputs{Current: 3, Instances: instances(3), Metrics: []Observation{{Samples: samples(56, 56, 56)}}},
			want: 4,
		},
		// replica_calculator_test's TestReplicaCalcScaleUpCM: per-pod
		// values 20000, 10000, 30000, target 15000: ratio 20000/15000,
		// ceil(3 × 1.33) = 4.
		{
			name: "pods metric scale up (k8s ScaleUpCM)",
			p:    policy(1, 100, perInst(15000)),
			in:   Inputs{Current: 3, Instances: instances(3), Metrics: []Observation{{Samples: samples(20000, 10000, 30000)}}},
			want: 4,
		},
		// TestReplicaCalcScaleUpUnreadyLessScale: CPU 300m (unready),
		// 500m, 700m of 1 core each, target 30%. Ready: 1200m/2000m = 60%,
		// ratio 2 → a scale-up, so the unready instance counts as 0:
		// 1200/3000 = 40%, ratio 1.33, ceil(3 × 1.33) = 4 (not 6).
		{
			name: "unready counts as 0 on scale-up (k8s ScaleUpUnreadyLessScale)",
			p:    policy(1, 100, cpu(30)),
			in: Inputs{Current: 3, Instances: instances(3, 0), Metrics: []Observation{
				{Samples: samples(0.3, 0.5, 0.7), Requests: cores(3)}}},
			want: 4,
		},
		// An unready instance running hot (900m) does not count: the
		// ready ones use 600m/2000m = 30%, ratio 1 → no change, and there
		// is no scale-up to rebalance.
		{
			name: "unready ignored when ready ones are on target",
			p:    policy(1, 100, cpu(30)),
			in: Inputs{Current: 3, Instances: instances(3, 0), Metrics: []Observation{
				{Samples: samples(0.9, 0.3, 0.3), Requests: cores(3)}}},
			want: 3,
		},
		// TestReplicaCalcScaleDownIncludeUnreadyPods: 100m, 300m, 500m
		// ready, 250m, 250m unready, target 50%: ready 900/3000 = 30%,
		// ratio 0.6 → a scale-down, unready ones stay aside:
		// ceil(0.6 × 3) = 2.
		{
			name: "unready set aside on scale-down (k8s ScaleDownIncludeUnreadyPods)",
			p:    policy(1, 100, cpu(50)),
			in: Inputs{Current: 5, Instances: instances(5, 3, 4), Metrics: []Observation{
				{Samples: samples(0.1, 0.3, 0.5, 0.25, 0.25), Requests: cores(5)}}},
			want: 2,
		},
		// TestReplicaCalcMissingMetricsNoChangeEq: one instance at 100%
		// of target 100%, the other missing: ratio 1, no change.
		{
			name: "missing with ratio 1 (k8s MissingMetricsNoChangeEq)",
			p:    policy(1, 100, cpu(100)),
			in: Inputs{Current: 2, Instances: instances(2), Metrics: []Observation{
				{Samples: samples(1.0, -1), Requests: cores(2)}}},
			want: 2,
		},
		// TestReplicaCalcMissingMetricsNoChangeGt: 1900m of 1 core, target
		// 100%: ratio 1.9 → missing counts as 0: 1900/2000 = 0.95, within
		// tolerance → 2.
		{
			name: "missing counts as 0 on scale-up (k8s MissingMetricsNoChangeGt)",
			p:    policy(1, 100, cpu(100)),
			in: Inputs{Current: 2, Instances: instances(2), Metrics: []Observation{
				{Samples: samples(1.9, -1), Requests: cores(2)}}},
			want: 2, reason: "within tolerance or reverses",
		},
		// TestReplicaCalcMissingMetricsNoChangeLt: 600m, target 100%:
		// ratio 0.6 → missing counts as 100%: 1600/2000 = 0.8,
		// ceil(0.8 × 2) = 2.
		{
			name: "missing counts as 100% on scale-down (k8s MissingMetricsNoChangeLt)",
			p:    policy(1, 100, cpu(100)),
			in: Inputs{Current: 2, Instances: instances(2), Metrics: []Observation{
				{Samples: samples(0.6, -1), Requests: cores(2)}}},
			want: 2,
		},
		// TestReplicaCalcMissingMetricsScaleUp-like: 4 ready, one missing,
		// 3 × 100 + 1 missing per-instance, target 20: ratio 5 → missing
		// at 0: 300/4 = 75, ratio 3.75, ceil(4 × 3.75) = 15.
		{
			name: "missing per-instance sample on scale-up",
			p:    policy(1, 100, perInst(20)),
			in:   Inputs{Current: 4, Instances: instances(4), Metrics: []Observation{{Samples: samples(100, 100, 100, -1)}}},
			want: 15,
		},
		// Missing on a scale-down with per-instance values: 10, 10, 10 and
		// one missing, target 50: ratio 0.2 → missing at the target:
		// (30 + 50)/4 = 20, ratio 0.4, ceil(4 × 0.4) = 2.
		{
			name: "missing per-instance sample on scale-down",
			p:    policy(1, 100, perInst(50)),
			in:   Inputs{Current: 4, Instances: instances(4), Metrics: []Observation{{Samples: samples(10, 10, 10, -1)}}},
			want: 2,
		},
		// Expression with a value: 900 against 300 with 2 ready of 2:
		// ceil(2 × 3) = 6.
		{
			name: "expression value",
			p:    policy(1, 100, expr(300, 0, 0)),
			in:   Inputs{Current: 2, Instances: instances(2), Metrics: []Observation{{Value: 900}}},
			want: 6,
		},
		// Expression with an average value: 900 over 3 replicas = 300 per
		// replica against 100: ceil(900/100) = 9.
		{
			name: "expression average value",
			p:    policy(1, 100, expr(0, 100, 0)),
			in:   Inputs{Current: 3, Instances: instances(3), Metrics: []Observation{{Value: 900}}},
			want: 9, reason: "ceil(900 / 100)",
		},
		// 310/3 = 103 per replica, within 10% of 100.
		{
			name: "expression average value within tolerance",
			p:    policy(1, 100, expr(0, 100, 0)),
			in:   Inputs{Current: 3, Instances: instances(3), Metrics: []Observation{{Value: 310}}},
			want: 3,
		},
		// Several metrics: CPU asks ceil(2 × 90/60) = 3, the KPI
		// ceil(2 × 120/50) = 5: the largest, 5.
		{
			name: "largest of several metrics",
			p:    policy(1, 100, cpu(60), perInst(50)),
			in: Inputs{Current: 2, Instances: instances(2), Metrics: []Observation{
				{Samples: samples(0.9, 0.9), Requests: cores(2)}, {Samples: samples(120, 120)}}},
			want: 5, reason: "metrics[1] asks for 5",
		},
		// One metric unreadable while the other asks for fewer: keep.
		{
			name: "no scale-down on partial data",
			p:    policy(1, 100, perInst(50), expr(0, 100, 0)),
			in: Inputs{Current: 6, Instances: instances(6), Metrics: []Observation{
				{Samples: samples(10, 10, 10, 10, 10, 10)}, {Unavailable: "stale: last sample 40s old"}}},
			want: 6, reason: "not scaling down on partial data",
		},
		// …but a scale-up asked by the readable metric goes ahead.
		{
			name: "scale-up despite an unreadable metric",
			p:    policy(1, 100, perInst(50), expr(0, 100, 0)),
			in: Inputs{Current: 2, Instances: instances(2), Metrics: []Observation{
				{Samples: samples(100, 100)}, {Unavailable: "no data"}}},
			want: 4,
		},
		{
			name: "nothing readable holds",
			p:    policy(1, 100, perInst(50)),
			in:   Inputs{Current: 7, Instances: instances(7), Metrics: []Observation{{Unavailable: "query failed"}}},
			want: 7, reason: "no metric could be computed",
		},
		// Resource metric without a request: utilisation is undefined.
		{
			name: "resource without requests",
			p:    policy(1, 100, cpu(50)),
			in:   Inputs{Current: 2, Instances: instances(2), Metrics: []Observation{{Samples: samples(1, 1)}}},
			want: 2, reason: "no request",
		},
		// Scale to zero, as KEDA: activation 5, value 3 → inactive → 0.
		{
			name: "inactive scales to zero",
			p:    policy(0, 100, expr(0, 50, 5)),
			in:   Inputs{Current: 2, Instances: instances(2), Metrics: []Observation{{Value: 3}}},
			want: 0, reason: "inactive",
		},
		// At zero, 12 > activation 5: ceil(12/50) = 1.
		{
			name: "activation from zero",
			p:    policy(0, 100, expr(0, 50, 5), perInst(50)),
			in:   Inputs{Current: 0, Metrics: []Observation{{Value: 12}, {}}},
			want: 1, reason: "active at zero",
		},
		// At zero, 260 tx/s with 50 each: ceil(5.2) = 6 at once.
		{
			name: "activation from zero to several",
			p:    policy(0, 100, expr(0, 50, 5)),
			in:   Inputs{Current: 0, Metrics: []Observation{{Value: 260}}},
			want: 6,
		},
		// At zero, at or below the activation: stay at zero.
		{
			name: "below activation stays at zero",
			p:    policy(0, 100, expr(0, 50, 5)),
			in:   Inputs{Current: 0, Metrics: []Observation{{Value: 5}}},
			want: 0,
		},
		// Active with a tiny load: never below 1 while active.
		{
			name: "active keeps one",
			p:    policy(0, 100, expr(0, 50, 0)),
			in:   Inputs{Current: 3, Instances: instances(3), Metrics: []Observation{{Value: 0.5}}},
			want: 1,
		},
		{
			name: "activity unknown holds",
			p:    policy(0, 100, expr(0, 50, 5)),
			in:   Inputs{Current: 4, Instances: instances(4), Metrics: []Observation{{Unavailable: "stale"}}},
			want: 4, reason: "activity unknown",
		},
		// As the HPA: scaled to 0 by hand with min_replicas > 0 pauses.
		{
			name: "zero by hand pauses",
			p:    policy(2, 100, perInst(50)),
			in:   Inputs{Current: 0, Metrics: []Observation{{}}},
			want: 0, reason: "paused",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := Desired(tc.p, tc.in)
			if rec.Replicas != tc.want {
				t.Errorf("Desired = %d, want %d (reason: %s; proposals: %+v)", rec.Replicas, tc.want, rec.Reason, rec.Proposals)
			}
			if !strings.Contains(rec.Reason, tc.reason) {
				t.Errorf("reason %q does not mention %q", rec.Reason, tc.reason)
			}
			if len(rec.Proposals) != len(tc.p.Metrics) {
				t.Errorf("%d proposals for %d metrics", len(rec.Proposals), len(tc.p.Metrics))
			}
		})
	}
}

// evenly spreads total over n instances' samples.
func evenly(n int, total float64) map[string]float64 {
	m := map[string]float64{}
	for i := range n {
		m[fmt.Sprintf("i%d", i)] = total / float64(n)
	}
	return m
}

// Tolerance is per direction, as autoscaling/v2's behavior.*.tolerance.
func TestDesiredTolerancePerDirection(t *testing.T) {
	p := policy(1, 100, perInst(100))
	p.Behavior.ScaleUp.Tolerance = 0.05
	p.Behavior.ScaleDown.Tolerance = 0.2
	for _, tc := range []struct {
		value float64
		want  int
	}{
		{108, 4}, // 1.08 > 1.05: ceil(3 × 1.08) = 4
		{104, 3}, // within 5%
		{85, 3},  // 0.85 ≥ 0.8: within the scale-down tolerance
		{70, 3},  // 0.7: ceil(3 × 0.7) = ceil(2.1) = 3
		{60, 2},  // 0.6: ceil(1.8) = 2
	} {
		in := Inputs{Current: 3, Instances: instances(3), Metrics: []Observation{{Samples: samples(tc.value, tc.value, tc.value)}}}
		if got := Desired(p, in).Replicas; got != tc.want {
			t.Errorf("value %v: Desired = %d, want %d", tc.value, got, tc.want)
		}
	}
}

// Absurd metric values do not overflow the replica count.
func TestDesiredHugeValues(t *testing.T) {
	p := policy(1, 100, expr(0, 1e-300, 0))
	rec := Desired(p, Inputs{Current: 1, Instances: instances(1), Metrics: []Observation{{Value: 1e300}}})
	if rec.Replicas != maxReplicas {
		t.Errorf("Desired = %d, want the cap %d", rec.Replicas, maxReplicas)
	}
}
