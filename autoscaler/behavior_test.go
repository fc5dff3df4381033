package autoscaler

import (
	"reflect"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// step is one evaluation of the loop: the recommendation it computed and
// the decision expected.
type step struct {
	recommend int
	want      int
	limitedBy []Limit
}

// run drives a Limiter as the loop would, one step per interval on the
// fake clock: Apply, then Record the change (the scale call succeeded).
func run(t *testing.T, l *Limiter, current int, interval time.Duration, steps []step) int {
	t.Helper()
	for i, s := range steps {
		now := time.Now()
		d := l.Apply(now, current, s.recommend)
		if d.Replicas != s.want || !slices.Equal(d.LimitedBy, s.limitedBy) {
			t.Fatalf("step %d (t=%s, current %d, recommended %d): got %d limited by %v, want %d limited by %v (%s)",
				i, now.Sub(epoch), current, s.recommend, d.Replicas, d.LimitedBy, s.want, s.limitedBy, d.Reason)
		}
		l.Record(now, current, d.Replicas)
		current = d.Replicas
		time.Sleep(interval)
	}
	return current
}

// epoch is synctest's fake clock start.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func limiter(min, max int, b Behavior) *Limiter {
	return &Limiter{Behavior: b, MinReplicas: min, MaxReplicas: max}
}

func rules(window time.Duration, sel string, pols ...ScalingPolicy) ScalingRules {
	return ScalingRules{StabilizationWindow: window, Tolerance: DefaultTolerance, SelectPolicy: sel, Policies: pols}
}

// The defaults are Kubernetes' documented ones ("Default behavior").
func TestDefaultBehavior(t *testing.T) {
	want := Behavior{
		ScaleUp: ScalingRules{StabilizationWindow: 0, Tolerance: 0.1, SelectPolicy: "Max", Policies: []ScalingPolicy{
			{Type: "Percent", Value: 100, Period: 15 * time.Second},
			{Type: "Pods", Value: 4, Period: 15 * time.Second},
		}},
		ScaleDown: ScalingRules{StabilizationWindow: 300 * time.Second, Tolerance: 0.1, SelectPolicy: "Max", Policies: []ScalingPolicy{
			{Type: "Percent", Value: 100, Period: 15 * time.Second},
		}},
	}
	if got := DefaultBehavior(); !reflect.DeepEqual(got, want) {
		t.Errorf("DefaultBehavior() = %+v\nwant %+v", got, want)
	}
}

// Default scale-up: at most max(100%, 4 instances) per 15 s. From 1
// towards 50, every 15 s: 1 → max(2, 5) = 5 → max(10, 9) = 10 → 20 → 40
// → 50 (the recommendation).
func TestDefaultScaleUpRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := limiter(1, 100, DefaultBehavior())
		up := []Limit{ScaleUpRate}
		run(t, l, 1, 15*time.Second, []step{
			{50, 5, up}, {50, 10, up}, {50, 20, up}, {50, 40, up}, {50, 50, nil},
		})
	})
}

// The rate counts what was added within the period: evaluating every 5 s,
// the second and third evaluation of a 15 s period allow nothing more.
func TestScaleUpRateWithinPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := limiter(1, 100, DefaultBehavior())
		up := []Limit{ScaleUpRate}
		// t=0: 10 → max(20, 14) = 20. t=5, t=10: the period started
		// at 10, so 20 is all it allows. t=15: the event at t=0 has left
		// the period: 20 → 40.
		run(t, l, 10, 5*time.Second, []step{
			{80, 20, up}, {80, 20, up}, {80, 20, up}, {80, 40, up},
		})
	})
}

// The seed: the rule asks for 110 at 10 replicas. Kubernetes' default
// rate allows 20 in the first 15 s; a policy allowing 100 instances per
// period gets 110 at once; max_replicas 100 caps it.
func TestSeedScaleUp(t *testing.T) {
	p := policy(10, 500, seedRule())
	in := Inputs{Current: 10, Instances: instances(10), Metrics: []Observation{{Value: 61000}}}
	rec := Desired(p, in)
	if rec.Replicas != 110 {
		t.Fatalf("Desired = %d, want 110", rec.Replicas)
	}
	now := epoch
	d := NewLimiter(p).Apply(now, 10, rec.Replicas)
	if d.Replicas != 20 || !slices.Equal(d.LimitedBy, []Limit{ScaleUpRate}) || d.Policy != 0 {
		t.Errorf("default behaviour: %d limited by %v (policy %d), want 20 by scale_up.policies[0]: %s", d.Replicas, d.LimitedBy, d.Policy, d.Reason)
	}

	p.Behavior.ScaleUp.Policies = []ScalingPolicy{{Type: PolicyPods, Value: 100, Period: 15 * time.Second}}
	if d := NewLimiter(p).Apply(now, 10, rec.Replicas); d.Replicas != 110 || d.LimitedBy != nil {
		t.Errorf("Pods 100 per 15s: %d limited by %v, want 110: %s", d.Replicas, d.LimitedBy, d.Reason)
	}
	p.MaxReplicas = 100
	if d := NewLimiter(p).Apply(now, 10, rec.Replicas); d.Replicas != 100 || !slices.Equal(d.LimitedBy, []Limit{MaxReplicas}) {
		t.Errorf("max 100: %d limited by %v, want 100 by max-replicas: %s", d.Replicas, d.LimitedBy, d.Reason)
	}
}

// kubernetes.io, "Scaling policies": scale-down policies Pods 4 and
// Percent 10 per 60 s, select Max (the largest change). From 80 to 10,
// evaluating every 15 s: 80 → 72 (10% of 80 = 8 > 4); the rest of the
// minute allows nothing (the period started at 80); then 72 → 64 (7.2
// rounded up to 8 removed), 64 → 57, 57 → 51, 51 → 45, 45 → 40, and below
// 40 the Pods policy removes more: 40 → 36, 36 → 32, 32 → 28, 28 → 24 (10%
// is 2.8 → 3, Pods 4), 24 → 20, 20 → 16, 16 → 12, and 12 → 10 (the
// recommendation; the policies would allow 8).
func TestDocScaleDownPoliciesMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := DefaultBehavior()
		b.ScaleDown = rules(0, SelectMax,
			ScalingPolicy{Type: PolicyPods, Value: 4, Period: time.Minute},
			ScalingPolicy{Type: PolicyPercent, Value: 10, Period: time.Minute})
		l := limiter(1, 100, b)
		down := []Limit{ScaleDownRate}
		var steps []step
		for _, n := range []int{72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16, 12} {
			// One change per minute: the change, then three held steps.
			steps = append(steps, step{10, n, down}, step{10, n, down}, step{10, n, down}, step{10, n, down})
		}
		steps = append(steps, step{10, 10, nil})
		run(t, l, 80, 15*time.Second, steps)
	})
}

// kubernetes.io, "Example: limit scale down rate": Percent 10 and Pods 5
// per 60 s with selectPolicy Min: at most 10% and at most 5 a minute. From
// 80: 10% is 8, Pods 5: Min removes 5 → 75, 70, 65, 60, 55, 50; at 50 both
// remove 5 → 45; then 10% is less: 45 → 40 (4.5 → 5 removed: floor 40.5),
// 40 → 36, 36 → 32.
func TestDocScaleDownPoliciesMin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := DefaultBehavior()
		b.ScaleDown = rules(0, SelectMin,
			ScalingPolicy{Type: PolicyPercent, Value: 10, Period: time.Minute},
			ScalingPolicy{Type: PolicyPods, Value: 5, Period: time.Minute})
		l := limiter(1, 100, b)
		down := []Limit{ScaleDownRate}
		var steps []step
		for _, n := range []int{75, 70, 65, 60, 55, 50, 45, 40, 36, 32} {
			steps = append(steps, step{10, n, down})
		}
		run(t, l, 80, time.Minute, steps)
		// Which policy limited: Pods (index 1) at 80, Percent (index 0) at 40.
		l2 := limiter(1, 100, b)
		if d := l2.Apply(epoch, 80, 10); d.Policy != 1 {
			t.Errorf("at 80 the Pods policy should limit, got policy %d: %s", d.Policy, d.Reason)
		}
		if d := limiter(1, 100, b).Apply(epoch, 40, 10); d.Policy != 0 || d.Replicas != 36 {
			t.Errorf("at 40 the Percent policy should limit to 36, got %d by policy %d: %s", d.Replicas, d.Policy, d.Reason)
		}
	})
}

// kubernetes.io, "Example: disable scale down": selectPolicy Disabled
// keeps the count however low the recommendation; scale-up still works.
func TestDocDisableScaleDown(t *testing.T) {
	b := DefaultBehavior()
	b.ScaleDown = ScalingRules{StabilizationWindow: 0, SelectPolicy: SelectDisabled}
	l := limiter(1, 100, b)
	if d := l.Apply(epoch, 10, 2); d.Replicas != 10 || !slices.Equal(d.LimitedBy, []Limit{ScaleDownDisabled}) {
		t.Errorf("scale-down disabled: %d limited by %v, want 10 by %s", d.Replicas, d.LimitedBy, ScaleDownDisabled)
	}
	if d := l.Apply(epoch.Add(time.Second), 10, 12); d.Replicas != 12 {
		t.Errorf("scale-up with scale-down disabled: %d, want 12", d.Replicas)
	}
	b.ScaleUp.SelectPolicy = SelectDisabled
	if d := limiter(1, 100, b).Apply(epoch, 10, 30); d.Replicas != 10 || !slices.Equal(d.LimitedBy, []Limit{ScaleUpDisabled}) {
		t.Errorf("scale-up disabled: %d limited by %v", d.Replicas, d.LimitedBy)
	}
}

// kubernetes.io, "Stabilization window": scaling down uses the highest
// recommendation of the last 300 s. Current 10; recommendations every 60 s:
// 6, 8, 4, 5 stay at 10 (the t=0 recommendation of 10 is in the window);
// at t=301 the window (1 s, 301 s] holds 6, 8, 4, 5, 5 → 8; at t=361 it
// holds 8, 4, 5, 5, 5 → 8; at t=421, 4 and 5s → 5.
func TestDocScaleDownStabilizationWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := limiter(1, 100, DefaultBehavior())
		win := []Limit{ScaleDownStabilized}
		current := run(t, l, 10, 60*time.Second, []step{
			{10, 10, nil}, {6, 10, win}, {8, 10, win}, {4, 10, win}, {5, 10, win},
		})
		time.Sleep(time.Second) // now t=301
		current = run(t, l, current, 60*time.Second, []step{
			{5, 8, win}, {5, 8, win}, {5, 5, nil},
		})
		if current != 5 {
			t.Errorf("ended at %d, want 5", current)
		}
	})
}

// A scale-up window takes the lowest recommendation within it: with 60 s,
// a spike to 20 at t=30 waits until the window holds only 20s.
func TestScaleUpStabilizationWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := DefaultBehavior()
		b.ScaleUp.StabilizationWindow = time.Minute
		l := limiter(1, 100, b)
		up := []Limit{ScaleUpStabilized}
		// t=0: 10; t=30: min(10, 20) = 10; t=60: the t=0 entry is out
		// (not after the cutoff), 20 and 20 → 20.
		run(t, l, 10, 30*time.Second, []step{{10, 10, nil}, {20, 10, up}, {20, 20, nil}})
	})
}

// Oscillating input does not make replicas flap: recommendations
// alternating 10 and 4 every 15 s for ten minutes keep 10 replicas with
// the default 300 s scale-down window, while without a window the count
// follows every swing.
func TestOscillationDoesNotFlap(t *testing.T) {
	count := func(b Behavior) (changes int) {
		synctest.Test(t, func(t *testing.T) {
			l := limiter(1, 100, b)
			current := 10
			for i := range 40 {
				rec := 10
				if i%2 == 1 {
					rec = 4
				}
				now := time.Now()
				d := l.Apply(now, current, rec)
				if d.Replicas != current {
					changes++
					l.Record(now, current, d.Replicas)
					current = d.Replicas
				}
				time.Sleep(15 * time.Second)
			}
		})
		return changes
	}
	if n := count(DefaultBehavior()); n != 0 {
		t.Errorf("with the default scale-down window the replicas changed %d times, want 0", n)
	}
	b := DefaultBehavior()
	b.ScaleDown.StabilizationWindow = 0
	if n := count(b); n < 20 {
		t.Errorf("without a window the replicas changed only %d times; the test input does not oscillate", n)
	}
}

// After the peak, the seed's 110 instances shrink once the 300 s window
// has passed with low recommendations, in one step (100% per 15 s).
func TestScaleDownAfterPeak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := policy(10, 500, seedRule())
		l := NewLimiter(p)
		current := 110
		start := time.Now()
		for {
			rec := Desired(p, Inputs{Current: current, Instances: instances(current), Metrics: []Observation{{Value: 30000}}})
			now := time.Now()
			d := l.Apply(now, current, rec.Replicas)
			l.Record(now, current, d.Replicas)
			if d.Replicas != current {
				if el := now.Sub(start); el < 300*time.Second || d.Replicas != 10 {
					t.Fatalf("scaled to %d after %s, want 10 after the 300 s window", d.Replicas, el)
				}
				return
			}
			time.Sleep(time.Second)
		}
	})
}

// Bounds apply at once, as the HPA's "current replicas above/below".
func TestBounds(t *testing.T) {
	l := limiter(2, 10, DefaultBehavior())
	if d := l.Apply(epoch, 15, 30); d.Replicas != 10 || !slices.Equal(d.LimitedBy, []Limit{MaxReplicas}) {
		t.Errorf("above max: %d by %v", d.Replicas, d.LimitedBy)
	}
	if d := l.Apply(epoch, 1, 1); d.Replicas != 2 || !slices.Equal(d.LimitedBy, []Limit{MinReplicas}) {
		t.Errorf("below min: %d by %v", d.Replicas, d.LimitedBy)
	}
	b := DefaultBehavior()
	b.ScaleDown.StabilizationWindow = 0
	if d := limiter(2, 10, b).Apply(epoch, 5, 0); d.Replicas != 2 || !slices.Equal(d.LimitedBy, []Limit{MinReplicas}) {
		t.Errorf("recommended below min: %d by %v", d.Replicas, d.LimitedBy)
	}
	if d := limiter(2, 10, b).Apply(epoch, 8, 9); d.Replicas != 9 || d.LimitedBy != nil {
		t.Errorf("within bounds: %d by %v", d.Replicas, d.LimitedBy)
	}
}

// Scale to zero end to end, as KEDA with its default 300 s cool-down
// (here the scale-down window): an inactive service (2 ≤ activation 5)
// goes from 3 to 0 once the window has passed, exactly at t=300 s. At zero,
// 260 tx/s with 50 per replica asks for ceil(5.2) = 6; the default rate
// from 0 allows max(100% of 0, 4) = 4 within 15 s, then 6.
func TestScaleToZeroAndBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := policy(0, 20, expr(0, 50, 5))
		l := NewLimiter(p)
		current := 3
		start := time.Now()
		tick := func(value float64) Decision {
			rec := Desired(p, Inputs{Current: current, Instances: instances(current), Metrics: []Observation{{Value: value}}})
			now := time.Now()
			d := l.Apply(now, current, rec.Replicas)
			l.Record(now, current, d.Replicas)
			current = d.Replicas
			return d
		}
		for tick(2).Replicas > 0 {
			time.Sleep(time.Second)
		}
		if el := time.Since(start); el != 300*time.Second {
			t.Errorf("reached zero after %s, want 300s", el)
		}
		time.Sleep(20 * time.Second) // the scale-down leaves the rate period
		if d := tick(2); d.Replicas != 0 {
			t.Fatalf("inactive at zero: %d", d.Replicas)
		}
		d := tick(260)
		if d.Replicas != 4 || !slices.Equal(d.LimitedBy, []Limit{ScaleUpRate}) || d.Policy != 1 {
			t.Errorf("from zero: %d limited by %v (policy %d), want 4 by the Pods policy: %s", d.Replicas, d.LimitedBy, d.Policy, d.Reason)
		}
		time.Sleep(15 * time.Second)
		if d := tick(260); d.Replicas != 6 || d.LimitedBy != nil {
			t.Errorf("15 s later: %d limited by %v, want 6: %s", d.Replicas, d.LimitedBy, d.Reason)
		}
	})
}

// The history stays within the longest window and period.
func TestLimiterHistoryBounded(t *testing.T) {
	l := limiter(1, 100, DefaultBehavior())
	current := 10
	for i := range 2000 {
		now := epoch.Add(time.Duration(i) * time.Second)
		rec := 10 + i%7 - 3
		d := l.Apply(now, current, rec)
		l.Record(now, current, d.Replicas)
		current = d.Replicas
	}
	if n := len(l.recommendations); n > 301 {
		t.Errorf("%d recommendations kept, want at most 301 (300 s at 1/s)", n)
	}
	if n := len(l.ups) + len(l.downs); n > 30 {
		t.Errorf("%d scale events kept, want at most 30 (15 s each way)", n)
	}
}

func BenchmarkDesired(b *testing.B) {
	p := policy(2, 500, perInst(50), cpu(70), seedRule())
	const n = 100
	in := Inputs{Current: n, Instances: instances(n, 3, 7), Metrics: []Observation{
		{Samples: evenly(n, 6000)}, {Samples: evenly(n, 70), Requests: cores(n)}, {Value: 61000}}}
	for b.Loop() {
		Desired(p, in)
	}
}

func BenchmarkApply(b *testing.B) {
	l := limiter(1, 1000, DefaultBehavior())
	now := epoch
	for b.Loop() {
		now = now.Add(time.Second)
		l.Apply(now, 100, 90)
	}
}
