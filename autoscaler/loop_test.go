package autoscaler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The loop tests run in a synctest bubble, so the real TSDB (which keeps
// its own clocks and goroutines) cannot serve them: fakeTSDB stands in for
// it, and each test's name says so. The loop against the real embedded
// VictoriaMetrics and orchestrator is tested in cmd/opspilot and test/e2e.

// fakeTSDB answers the loop's queries from per-query values, and its
// freshness queries from when each metric was last written.
type fakeTSDB struct {
	mu      sync.Mutex
	values  map[string][]Sample             // query → result
	written map[string]map[string]time.Time // metric name → instance → last write
	fail    error
	queries int
	history func(t time.Time) float64 // range query answers, nil: none
}

func newFakeTSDB() *fakeTSDB {
	return &fakeTSDB{values: map[string][]Sample{}, written: map[string]map[string]time.Time{}}
}

// set makes query return one sample per instance (or one unlabelled
// sample for the "" key), and marks metric written now.
func (f *fakeTSDB) set(query, metric string, now time.Time, vals map[string]float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var res []Sample
	w := f.written[metric]
	if w == nil {
		w = map[string]time.Time{}
		f.written[metric] = w
	}
	for inst, v := range vals {
		ls := map[string]string{}
		if inst != "" {
			ls["instance"] = inst
		}
		res = append(res, Sample{Labels: ls, Value: v})
		w[inst] = now
	}
	f.values[query] = res
}

func (f *fakeTSDB) Query(_ context.Context, expr string, at time.Time) ([]Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries++
	if f.fail != nil {
		return nil, f.fail
	}
	if rest, ok := strings.CutPrefix(expr, "max by (instance) (tlast_over_time("); ok {
		name := rest[:strings.IndexAny(rest, "{[")]
		var out []Sample
		for inst, t := range f.written[name] {
			ls := map[string]string{}
			if inst != "" {
				ls["instance"] = inst
			}
			out = append(out, Sample{Labels: ls, Value: float64(t.UnixMilli()) / 1000})
		}
		return out, nil
	}
	return f.values[expr], nil
}

func (f *fakeTSDB) QueryRange(_ context.Context, expr string, start, end time.Time, step time.Duration) ([]time.Time, []float64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.history == nil {
		return nil, nil, nil
	}
	var ts []time.Time
	var vs []float64
	for t := start; !t.After(end); t = t.Add(step) {
		ts, vs = append(ts, t), append(vs, f.history(t))
	}
	return ts, vs, nil
}

// fakeTarget is a service whose instances are ready as soon as they are
// asked for.
type fakeTarget struct {
	mu       sync.Mutex
	replicas int
	scales   []int
	fail     error
}

func (t *fakeTarget) Get(_ context.Context, service string) (Scale, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sc := Scale{Replicas: t.replicas, CPU: 0.1}
	for i := range t.replicas {
		sc.Instances = append(sc.Instances, Instance{Name: fmt.Sprintf("%s-%d", service, i), Ready: true})
	}
	return sc, nil
}

func (t *fakeTarget) Scale(_ context.Context, _ string, n int, who, why string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fail != nil {
		return t.fail
	}
	if who != Who || why == "" {
		return fmt.Errorf("scale without who/why: %q %q", who, why)
	}
	t.replicas = n
	t.scales = append(t.scales, n)
	return nil
}

func (t *fakeTarget) get() (int, []int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.replicas, append([]int(nil), t.scales...)
}

type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (e *eventLog) Record(_ context.Context, ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, ev)
}

func (e *eventLog) reasons() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.events {
		out = append(out, ev.Reason)
	}
	return out
}

const txQuery = `sum by (instance) (rate(billing_transactions_total[5s]))`

// billingPolicy: 50 transactions/s per instance, 2 to 200 replicas.
func billingPolicy() Policy {
	p := DefaultPolicy()
	p.Service, p.MinReplicas, p.MaxReplicas = "billing", 2, 200
	p.MaxDataAge = 3 * time.Second
	p.Metrics = []Metric{{PerInstance: &PerInstanceMetric{Query: txQuery, AverageValue: 50}}}
	p.Behavior.ScaleUp.Policies = []ScalingPolicy{{Type: PolicyPods, Value: 100, Period: 15 * time.Second}}
	return p
}

type loopFixture struct {
	tsdb   *fakeTSDB
	target *fakeTarget
	events *eventLog
	loop   *Loop
	reg    *prometheus.Registry
}

func newLoopFixture(t *testing.T, cfg LoopConfig, ps ...Policy) *loopFixture {
	t.Helper()
	f := &loopFixture{tsdb: newFakeTSDB(), target: &fakeTarget{replicas: 2}, events: &eventLog{}, reg: prometheus.NewRegistry()}
	var err error
	f.loop, err = NewLoop(cfg, LoopOptions{Querier: f.tsdb, Target: f.target, Recorder: f.events, Registerer: f.reg,
		Policies: func(context.Context) ([]Policy, error) { return ps, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// load writes a per-instance transaction rate for every current instance.
func (f *loopFixture) load(perInstance float64) {
	n, _ := f.target.get()
	vals := map[string]float64{}
	for i := range n {
		vals[fmt.Sprintf("billing-%d", i)] = perInstance
	}
	f.tsdb.set(txQuery, "billing_transactions_total", time.Now(), vals)
}

// loadTotal spreads a total rate over the current instances.
func (f *loopFixture) loadTotal(total float64) {
	n, _ := f.target.get()
	f.load(total / float64(n))
}

func TestLoopFakeTSDBScalesWithinOneInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newLoopFixture(t, LoopConfig{}, billingPolicy())
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f.loadTotal(100) // 50 per instance: on target
		go f.loop.Run(ctx)
		time.Sleep(1500 * time.Millisecond)
		if n, _ := f.target.get(); n != 2 {
			t.Fatalf("on target the loop scaled to %d", n)
		}
		step := time.Now()
		f.loadTotal(1000) // 500 per instance: 20 instances needed
		for {
			if n, _ := f.target.get(); n != 2 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		// The target changes inside the evaluation; its metrics and status
		// are written just after. Wait for the loop to finish it (fake time
		// does not move while waiting).
		synctest.Wait()
		if took := time.Since(step); took > time.Second {
			t.Errorf("the scale came %s after the sample; want within one interval (1s)", took)
		}
		if n, _ := f.target.get(); n != 20 {
			t.Errorf("1000 tx/s at 50 per instance: replicas %d, want 20", n)
		}
		if got := testutil.ToFloat64(f.loop.m.desired.WithLabelValues("billing")); got != 20 {
			t.Errorf("opspilot_autoscaler_desired_replicas = %v, want 20", got)
		}
		if got := testutil.ToFloat64(f.loop.m.scaled.WithLabelValues("billing", "up")); got != 1 {
			t.Errorf("scalings up = %v, want 1", got)
		}
		st, ok := f.loop.Status("billing")
		if !ok || st.Last.Replicas != 20 || len(st.History) == 0 {
			t.Fatalf("status %+v", st)
		}
		var scaled *Decided
		for i := range st.History {
			if st.History[i].Action == "scaled" {
				scaled = &st.History[i]
			}
		}
		if scaled == nil || scaled.Current != 2 || scaled.Recommendation.Proposals[0].Value != 500 {
			t.Errorf("the history should show the scaling from 2 with the per-instance value 500: %+v", st.History)
		}
		if !contains(f.events.reasons(), "AutoScaled") {
			t.Errorf("events %v, want AutoScaled", f.events.reasons())
		}
	})
}

func TestLoopFakeTSDBThresholdAdds100(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := billingPolicy()
		p.MaxReplicas = 500
		when := `sum(rate(billing_transactions_total[1m])) * 60`
		p.Metrics = append(p.Metrics, Metric{Threshold: &ThresholdRule{When: when + " > 60000", Add: 100}})
		f := newLoopFixture(t, LoopConfig{}, p)
		f.target.replicas = 20
		f.load(50)
		f.tsdb.set(when, "billing_transactions_total", time.Now(), map[string]float64{"": 59000})
		f.loop.Evaluate(t.Context())
		if n, _ := f.target.get(); n != 20 {
			t.Fatalf("below the threshold: %d replicas, want 20", n)
		}
		time.Sleep(time.Second)
		f.load(51)
		f.tsdb.set(when, "billing_transactions_total", time.Now(), map[string]float64{"": 61200})
		f.loop.Evaluate(t.Context())
		if n, _ := f.target.get(); n != 120 {
			t.Fatalf("61,200 tx/min > 60,000: %d replicas, want 20 + 100", n)
		}
	})
}

func TestLoopFakeTSDBStaleDataHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newLoopFixture(t, LoopConfig{}, billingPolicy())
		f.loadTotal(1000)
		time.Sleep(4 * time.Second) // older than max_data_age 3s
		for range 5 {
			f.loop.Evaluate(t.Context())
			time.Sleep(time.Second)
		}
		if n, scales := f.target.get(); n != 2 || len(scales) != 0 {
			t.Fatalf("stale data scaled the service: %d replicas, scales %v", n, scales)
		}
		if r := f.events.reasons(); len(r) != 1 || r[0] != "MetricStale" {
			t.Fatalf("events %v, want one MetricStale for the whole stale episode", r)
		}
		if got := testutil.ToFloat64(f.loop.m.held.WithLabelValues("billing")); got != 5 {
			t.Errorf("held evaluations = %v, want 5", got)
		}
		st, _ := f.loop.Status("billing")
		if st.Last.Action != "held" || !strings.Contains(st.Last.Decision.Reason, "stale") {
			t.Errorf("last decision %+v, want held for stale data", st.Last)
		}
		f.loadTotal(1000)
		f.loop.Evaluate(t.Context())
		if n, _ := f.target.get(); n != 20 {
			t.Errorf("fresh data again: %d replicas, want 20", n)
		}
		if r := f.events.reasons(); !contains(r, "MetricRecovered") || !contains(r, "AutoScaled") {
			t.Errorf("events %v, want MetricRecovered then AutoScaled", r)
		}
	})
}

func TestLoopFakeTSDBMissingMetricAndQueryErrorsHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newLoopFixture(t, LoopConfig{}, billingPolicy())
		f.loop.Evaluate(t.Context()) // never written
		st, _ := f.loop.Status("billing")
		if st.Last.Action != "held" || !strings.Contains(st.Last.Decision.Reason, "no data") {
			t.Errorf("no data at all: %+v", st.Last.Decision)
		}
		f.loadTotal(1000)
		f.tsdb.fail = errors.New("connection refused")
		f.loop.Evaluate(t.Context())
		st, _ = f.loop.Status("billing")
		if n, _ := f.target.get(); n != 2 || st.Last.Action != "held" || !strings.Contains(st.Last.Decision.Reason, "connection refused") {
			t.Errorf("TSDB down: %d replicas, last %+v", n, st.Last)
		}
		f.tsdb.fail = nil
		f.loop.Evaluate(t.Context())
		if n, _ := f.target.get(); n != 20 {
			t.Errorf("TSDB back: %d replicas, want 20 (the decision is retried, not lost)", n)
		}
	})
}

func TestLoopFakeTSDBOscillationDoesNotFlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newLoopFixture(t, LoopConfig{}, billingPolicy())
		f.target.replicas = 10
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f.loadTotal(500)
		go f.loop.Run(ctx)
		// The load swings between 300 and 700 tx/s every 5 s for 10 minutes.
		for i := range 120 {
			if i%2 == 0 {
				f.loadTotal(700)
			} else {
				f.loadTotal(300)
			}
			for range 5 {
				time.Sleep(time.Second)
				n, _ := f.target.get()
				total := 300.0
				if i%2 == 0 {
					total = 700
				}
				f.load(total / float64(n)) // fresh samples of the current instances
			}
		}
		cancel()
		_, scales := f.target.get()
		turns := 0
		for i := 2; i < len(scales); i++ {
			if (scales[i]-scales[i-1])*(scales[i-1]-scales[i-2]) < 0 {
				turns++
			}
		}
		if turns > 0 || len(scales) > 2 {
			t.Fatalf("oscillating load made the replicas flap: %v", scales)
		}
		if n, _ := f.target.get(); n != 14 {
			t.Errorf("replicas %d after the swings, want 14 (the peak's 700/50), held by the 300 s scale-down window", n)
		}
	})
}

func TestLoopFakeTSDBScaleDownAfterWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := billingPolicy()
		p.Behavior.ScaleDown.StabilizationWindow = 30 * time.Second
		f := newLoopFixture(t, LoopConfig{}, p)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f.loadTotal(1000)
		go f.loop.Run(ctx)
		time.Sleep(1500 * time.Millisecond)
		if n, _ := f.target.get(); n != 20 {
			t.Fatalf("surge: %d replicas, want 20", n)
		}
		end := time.Now()
		var down time.Time
		for time.Since(end) < time.Minute {
			f.loadTotal(100)
			time.Sleep(time.Second)
			if n, _ := f.target.get(); n < 20 && down.IsZero() {
				down = time.Now()
			}
		}
		if down.IsZero() || down.Sub(end) < 29*time.Second || down.Sub(end) > 32*time.Second {
			t.Fatalf("scale-down came %s after the surge; want just after the 30 s window", down.Sub(end))
		}
		if n, _ := f.target.get(); n != 2 {
			t.Errorf("after the surge: %d replicas, want 2", n)
		}
		if got := testutil.ToFloat64(f.loop.m.limited.WithLabelValues("billing", string(ScaleDownStabilized))); got < 25 {
			t.Errorf("scale-down-window limited %v evaluations, want about 29", got)
		}
	})
}

func TestLoopFakeTSDBDryRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := billingPolicy()
		p.DryRun = true
		f := newLoopFixture(t, LoopConfig{}, p)
		for range 5 {
			f.loadTotal(1000)
			f.loop.Evaluate(t.Context())
			time.Sleep(time.Second)
		}
		if n, scales := f.target.get(); n != 2 || len(scales) != 0 {
			t.Fatalf("dry run scaled: %d %v", n, scales)
		}
		st, _ := f.loop.Status("billing")
		if st.Last.Action != "dry-run" || st.Last.Replicas != 20 || !st.DryRun {
			t.Errorf("dry run decision %+v", st.Last)
		}
		if r := f.events.reasons(); len(r) != 1 || r[0] != "WouldScale" {
			t.Errorf("events %v, want one WouldScale for five evaluations with the same decision", r)
		}
		if len(st.History) != 1 {
			t.Errorf("history %d entries, want 1: repeated identical dry-run decisions are not history", len(st.History))
		}
	})
}

func TestLoopFakeTSDBScaleFailureIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newLoopFixture(t, LoopConfig{}, billingPolicy())
		f.loadTotal(1000)
		f.target.fail = errors.New("etcd unavailable")
		f.loop.Evaluate(t.Context())
		if r := f.events.reasons(); !contains(r, "ScaleFailed") {
			t.Fatalf("events %v, want ScaleFailed", r)
		}
		f.target.fail = nil
		time.Sleep(time.Second)
		f.loadTotal(1000)
		f.loop.Evaluate(t.Context())
		if n, _ := f.target.get(); n != 20 {
			t.Errorf("after the failure the next evaluation scaled to %d, want 20", n)
		}
	})
}

func TestLoopFakeTSDBPerInstanceStaleInstanceIsMissing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newLoopFixture(t, LoopConfig{}, billingPolicy())
		f.target.replicas = 4
		f.tsdb.set(txQuery, "billing_transactions_total", time.Now(),
			map[string]float64{"billing-0": 20, "billing-1": 20, "billing-2": 20, "billing-3": 20})
		time.Sleep(5 * time.Second)
		// Three instances report a low load now; billing-3's sample is
		// 5 s old and must count as missing (at target on a scale-down).
		f.tsdb.mu.Lock()
		for _, i := range []string{"billing-0", "billing-1", "billing-2"} {
			f.tsdb.written["billing_transactions_total"][i] = time.Now()
		}
		f.tsdb.mu.Unlock()
		f.loop.Evaluate(t.Context())
		st, _ := f.loop.Status("billing")
		pr := st.Last.Recommendation.Proposals[0]
		if !strings.Contains(pr.Reason, "1 missing") {
			t.Errorf("proposal %+v: billing-3's stale sample should count as missing", pr)
		}
	})
}

func TestLoopFakeTSDBPredictsDailyPeak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := billingPolicy()
		p.Predictive = &Predictive{Lead: 10 * time.Minute, History: 3 * 24 * time.Hour, Step: 5 * time.Minute}
		p.MaxDataAge = time.Minute
		f := newLoopFixture(t, LoopConfig{}, p)
		// A daily load: 100 tx/s at night, 1,000 tx/s from 12:00 to
		// 13:00 (UTC), with a 20-minute ramp before.
		daily := func(t time.Time) float64 {
			m := t.UTC().Hour()*60 + t.UTC().Minute()
			switch {
			case m >= 12*60 && m < 13*60:
				return 1000
			case m >= 11*60+40 && m < 12*60:
				return 100 + 900*float64(m-(11*60+40))/20
			}
			return 100
		}
		f.tsdb.history = daily
		// The bubble starts at 2000-01-01 00:00 UTC; go to 11:35 on day 4.
		time.Sleep(3*24*time.Hour + 11*time.Hour + 35*time.Minute)
		f.target.replicas = 2
		for range 12 * 60 { // 12 minutes, one evaluation a second
			n, _ := f.target.get()
			f.load(daily(time.Now()) / float64(n))
			f.loop.Evaluate(t.Context())
			synctest.Wait() // let a background fit finish
			time.Sleep(time.Second)
		}
		st, _ := f.loop.Status("billing")
		if len(st.Forecasts) != 1 || !strings.HasPrefix(st.Forecasts[0].State, "predicting") {
			t.Fatalf("forecasts %+v", st.Forecasts)
		}
		// At 11:47 the load is 415 tx/s, so the reactive calculation asks
		// for 9 replicas; ten minutes ahead the ramp is at 865 tx/s (18).
		reactive := st.Last.Recommendation.Proposals[0].Replicas
		want := ceilReplicas(daily(time.Now().Add(10*time.Minute)) / 50)
		if reactive > 10 || st.Last.Predicted < want*85/100 || st.Last.Predicted > want+2 {
			t.Errorf("at %s: reactive %d, predicted %d; want the prediction near %d for the coming peak (reason %q)",
				time.Now().UTC().Format("15:04"), reactive, st.Last.Predicted, want, st.Last.PredictReason)
		}
		if n, _ := f.target.get(); n != st.Last.Predicted {
			t.Errorf("replicas %d before the peak; want the predicted %d", n, st.Last.Predicted)
		}
		if !strings.Contains(st.Last.Recommendation.Reason, "predictive") {
			t.Errorf("reason %q should say the prediction decided", st.Last.Recommendation.Reason)
		}
	})
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestLoopFakeTSDBResourceCPU(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := billingPolicy()
		p.Metrics = []Metric{{Resource: &ResourceMetric{Name: "cpu", AverageUtilization: 70}}}
		f := newLoopFixture(t, LoopConfig{}, p)
		q, perInstance := metricQuery(&p, &p.Metrics[0])
		if !perInstance || !strings.Contains(q, `container_cpu_usage_seconds_total{service="billing"}`) {
			t.Fatalf("cpu query %q", q)
		}
		// Each instance requests 0.1 cores (fakeTarget) and uses 0.15:
		// 150% of its request against a 70% target.
		f.tsdb.set(q, "container_cpu_usage_seconds_total", time.Now(), map[string]float64{"billing-0": 0.15, "billing-1": 0.15})
		f.loop.Evaluate(t.Context())
		if n, _ := f.target.get(); n != 5 {
			st, _ := f.loop.Status("billing")
			t.Fatalf("replicas %d, want ceil(2 × 150 / 70) = 5: %+v", n, st.Last.Recommendation)
		}
	})
}

// TestLoopFakeTSDBKeepsStateAcrossReloads: the store hands out freshly
// decoded policies every evaluation; an unchanged policy keeps its
// predictor and limiter history, a changed one keeps the history only.
func TestLoopFakeTSDBKeepsStateAcrossReloads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := billingPolicy()
		p.Predictive = &Predictive{}
		f := newLoopFixture(t, LoopConfig{})
		version := 0
		f.loop.o.Policies = func(context.Context) ([]Policy, error) {
			// A deep copy per call, as decoding from etcd gives.
			c := p
			c.Metrics = []Metric{{PerInstance: &PerInstanceMetric{Query: txQuery, AverageValue: 50}}}
			c.Predictive = &Predictive{}
			if version > 0 {
				c.MaxReplicas = 100
			}
			return []Policy{c}, nil
		}
		f.loadTotal(100)
		f.loop.Evaluate(t.Context())
		synctest.Wait()
		f.loop.mu.Lock()
		pr := f.loop.services["billing"].predictors[0]
		f.loop.mu.Unlock()
		for range 3 {
			time.Sleep(time.Second)
			f.loadTotal(100)
			f.loop.Evaluate(t.Context())
			synctest.Wait()
		}
		f.loop.mu.Lock()
		same := f.loop.services["billing"].predictors[0] == pr
		f.loop.mu.Unlock()
		if pr == nil || !same {
			t.Fatal("an unchanged policy lost its predictor between evaluations")
		}
		version = 1
		f.loop.Evaluate(t.Context())
		f.loop.mu.Lock()
		s := f.loop.services["billing"]
		changed := s.predictors[0] != pr && s.limiter.MaxReplicas == 100
		f.loop.mu.Unlock()
		if !changed {
			t.Error("a changed policy should start its predictions over and take the new bounds")
		}
	})
}
