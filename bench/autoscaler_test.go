package bench

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"opspilot/autoscaler"
	"opspilot/test/testbin"
)

// The autoscaler's reaction time (issue 6), measured on a real `opspilot
// up` (embedded TSDB and etcd, its node agent on the process runtime):
//
//   - BenchmarkAutoscaleDecision: a KPI steps; the time from the step's
//     sample being in the TSDB (the write acknowledged) to the scale
//     decision, and from the step itself to the decision. opspilot's
//     configuration (1 s loop, KPI sampled every second) against an
//     HPA-like one (15 s loop, metrics at 60 s resolution) in the same run.
//   - BenchmarkAutoscaleScaleOut: a threshold rule fires (60,000
//     transactions per minute → 100 more instances); the time from the
//     sample to 100 more instances ready, against starting the same 100
//     processes by hand.
//
// Run: go test ./bench -run '^$' -bench 'Autoscale' -benchtime 20x -count 1

// upWithConfig runs `opspilot up` with an opspilot.yaml holding extra.
func upWithConfig(b *testing.B, extra string) string {
	b.Helper()
	dir := b.TempDir()
	cfg := filepath.Join(dir, "opspilot.yaml")
	if err := os.WriteFile(cfg, []byte(extra), 0o600); err != nil {
		b.Fatal(err)
	}
	bin := testbin.Tool(b, "opspilot")
	addr := testbin.FreeAddr(b)
	p := testbin.Start(b, bin, "up", "--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--http-addr", addr, "--logstore-addr", "127.0.0.1:0")
	start := time.Now()
	for !strings.Contains(p.Stdout.String(), "opspilot ready on") {
		if time.Since(start) > 60*time.Second || p.Exited() {
			b.Fatalf("opspilot up not ready: %s", p.Stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "http://" + addr
}

// kpiWriter writes bench_kpi_tps{service="kpi"} every resolution, like a
// scrape at that interval.
type kpiWriter struct {
	base string
	mu   sync.Mutex
	val  float64
}

// write imports one sample of v stamped now and returns when the TSDB
// acknowledged it: from then on the sample is "in the TSDB".
func (w *kpiWriter) write(b *testing.B, v float64) time.Time {
	body := fmt.Sprintf("bench_kpi_tps{service=\"kpi\"} %g %d\n", v, time.Now().UnixMilli())
	resp, err := http.Post(w.base+"/prometheus/api/v1/import/prometheus", "text/plain", bytes.NewBufferString(body))
	if err != nil {
		b.Error(err)
		return time.Now()
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b.Errorf("import: %d", resp.StatusCode)
	}
	return time.Now()
}

func (w *kpiWriter) run(b *testing.B, resolution time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(resolution)
	defer t.Stop()
	for {
		w.mu.Lock()
		v := w.val
		w.mu.Unlock()
		w.write(b, v)
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// step changes the KPI at a random moment: its first sample reaches the
// TSDB after a random part of the sampling interval (as a step between two
// scrapes does), at a random phase of the autoscaler's loop. It returns
// when the step happened and when its first sample was acknowledged; the
// background writer goes on with the new value.
func (w *kpiWriter) step(b *testing.B, v float64, resolution time.Duration) (stepAt, ackAt time.Time) {
	stepAt = time.Now()
	time.Sleep(time.Duration(rand.Int64N(int64(resolution))))
	w.mu.Lock()
	w.val = v
	w.mu.Unlock()
	return stepAt, w.write(b, v)
}

// kpiPolicy scales service kpi on bench_kpi_tps at 50 per replica; dry
// run, so that every step is a decision without starting processes.
func kpiPolicy(maxAge time.Duration) autoscaler.Policy {
	p := autoscaler.DefaultPolicy()
	p.Service, p.MinReplicas, p.MaxReplicas, p.DryRun, p.MaxDataAge = "kpi", 2, 200, true, maxAge
	p.Metrics = []autoscaler.Metric{{Expression: &autoscaler.ExpressionMetric{Query: `sum(bench_kpi_tps{service="kpi"})`, AverageValue: 50}}}
	p.Behavior.ScaleDown.StabilizationWindow = 0
	p.Behavior.ScaleUp.Policies = []autoscaler.ScalingPolicy{{Type: autoscaler.PolicyPods, Value: 1000, Period: 15 * time.Second}}
	return p
}

// decisionLatencies steps the KPI n times between 1,000 and 2,000 (20 and
// 40 replicas) and returns, per step, sample-in-TSDB → decision and step
// → decision.
func decisionLatencies(b *testing.B, loop, resolution time.Duration, n int) (fromSample, fromStep []time.Duration) {
	base := upWithConfig(b, fmt.Sprintf("autoscaler:\n  interval: %s\n", loop))
	svc := billingService(b, 2)
	svc.Name = "kpi"
	call(b, "PUT", base+"/api/v1/services/kpi", svc, nil)
	call(b, "PUT", base+"/api/v1/autoscalingpolicies/kpi", kpiPolicy(2*resolution+5*time.Second), nil)
	w := &kpiWriter{base: base, val: 500}
	stop := make(chan struct{})
	defer close(stop)
	go w.run(b, resolution, stop)
	time.Sleep(2*loop + time.Second)
	vals := []float64{1000, 2000}
	for i := range n {
		v := vals[i%2]
		want := int(v / 50)
		// Start each step at a random phase of the loop, not just after the
		// evaluation that saw the previous one.
		time.Sleep(time.Duration(rand.Int64N(int64(loop))))
		stepAt, ackAt := w.step(b, v, resolution)
		deadline := time.Now().Add(3*loop + 10*time.Second)
		for {
			var st autoscaler.Status
			call(b, "GET", base+"/api/v1/autoscalers/kpi", nil, &st)
			var got time.Time
			for _, d := range st.History {
				if d.Action == "dry-run" && d.Replicas == want && !d.Time.Add(d.Latency).Before(ackAt) {
					got = d.Time.Add(d.Latency)
					break
				}
			}
			if !got.IsZero() {
				fromSample = append(fromSample, got.Sub(ackAt))
				fromStep = append(fromStep, got.Sub(stepAt))
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("no decision for %d replicas %s after the step (loop %s): last %+v", want, time.Since(stepAt), loop, st.Last)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return fromSample, fromStep
}

// BenchmarkAutoscaleDecision: b.N steps with opspilot's configuration,
// then max(3, b.N/5) with the HPA-like one (each takes up to 75 s).
func BenchmarkAutoscaleDecision(b *testing.B) {
	sample, step := decisionLatencies(b, time.Second, time.Second, b.N)
	hpaSample, hpaStep := decisionLatencies(b, 15*time.Second, time.Minute, max(3, b.N/5))
	report(b, "sample-to-decision", sample)
	report(b, "step-to-decision", step)
	report(b, "hpa-sample-to-decision", hpaSample)
	report(b, "hpa-step-to-decision", hpaStep)
	b.ReportMetric(float64(percentile(hpaStep, 0.95))/float64(percentile(step, 0.95)), "p95-step-ratio")
	fmt.Fprintf(os.Stderr, "opspilot sample→decision %v\nopspilot step→decision %v\nHPA-like sample→decision %v\nHPA-like step→decision %v\n",
		sample, step, hpaSample, hpaStep)
}

// BenchmarkAutoscaleScaleOut: the reference scenario. A threshold rule on
// the transactions per minute adds 100 instances of billing (its own small
// binary) when the KPI passes 60,000; time from the KPI sample in the TSDB
// to the decision and to 100 more instances ready. Baseline: the same 100
// processes started by hand until their /readyz answers.
func BenchmarkAutoscaleScaleOut(b *testing.B) {
	const n = 100
	base := upServer(b)
	call(b, "PUT", base+"/api/v1/services/billing", billingService(b, 2), nil)
	waitReady(b, base, 2, 60*time.Second)
	p := autoscaler.DefaultPolicy()
	p.Service, p.MinReplicas, p.MaxReplicas, p.MaxDataAge = "billing", 2, 200, 5*time.Second
	p.Metrics = []autoscaler.Metric{{Threshold: &autoscaler.ThresholdRule{When: `sum(bench_kpi_tps{service="kpi"}) * 60 > 60000`, Add: n}}}
	p.Behavior.ScaleUp.Policies = []autoscaler.ScalingPolicy{{Type: autoscaler.PolicyPods, Value: n, Period: 15 * time.Second}}
	p.Behavior.ScaleDown.StabilizationWindow = 0
	call(b, "PUT", base+"/api/v1/autoscalingpolicies/billing", p, nil)
	w := &kpiWriter{base: base, val: 500}
	stop := make(chan struct{})
	defer close(stop)
	go w.run(b, time.Second, stop)
	time.Sleep(3 * time.Second) // the loop's first evaluations of the policy

	var decide, ready, byHand []time.Duration
	for range b.N {
		_, ackAt := w.step(b, 1100, time.Second) // 66,000 per minute
		var decidedAt time.Time
		for decidedAt.IsZero() {
			var st autoscaler.Status
			call(b, "GET", base+"/api/v1/autoscalers/billing", nil, &st)
			for _, d := range st.History {
				if d.Action == "scaled" && d.Replicas == 2+n && !d.Time.Add(d.Latency).Before(ackAt) {
					decidedAt = d.Time.Add(d.Latency)
				}
			}
			if time.Since(ackAt) > 30*time.Second {
				b.Fatalf("no scale decision 30 s after the sample: %+v", st.Last)
			}
			time.Sleep(10 * time.Millisecond)
		}
		waitReady(b, base, 2+n, 60*time.Second)
		decide = append(decide, decidedAt.Sub(ackAt))
		ready = append(ready, time.Since(ackAt))
		w.step(b, 500, time.Second)
		waitReady(b, base, 2, 120*time.Second)
		byHand = append(byHand, startByHand(b, n))
	}
	report(b, "sample-to-decision", decide)
	report(b, "sample-to-100-ready", ready)
	report(b, "byhand-100-ready", byHand)
	b.ReportMetric(float64(percentile(ready, 0.5))/float64(percentile(byHand, 0.5)), "p50-ratio")
	fmt.Fprintf(os.Stderr, "sample→decision %v\nsample→100 more ready %v\nby hand %v\n", decide, ready, byHand)
}

// startByHand starts n billing processes at once and returns the time
// until all answer /readyz; it stops them again.
func startByHand(b *testing.B, n int) time.Duration {
	bin := testbin.Tool(b, "billing")
	addrs := make([]string, n)
	for k := range addrs {
		addrs[k] = testbin.FreeAddr(b)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	stops := make([]func(), n)
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd, _, err := startBilling(bin, addrs[k])
			errs[k] = err
			if cmd != nil {
				stops[k] = func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for _, s := range stops {
		if s != nil {
			s()
		}
	}
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return took
}
