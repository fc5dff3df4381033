package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"opspilot/tsdb"
)

// collectingSink keeps what the evaluator hands to the notification
// pipeline.
type collectingSink struct {
	mu     sync.Mutex
	alerts []*alert.Alert
}

func (s *collectingSink) PutAlerts(_ context.Context, alerts ...*alert.Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alerts = append(s.alerts, alerts...)
	return nil
}

func (s *collectingSink) all() []*alert.Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*alert.Alert(nil), s.alerts...)
}

type collectingRecorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *collectingRecorder) Record(_ context.Context, ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *collectingRecorder) all() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// gaugeWriter writes metric{run=…} = value every 100ms until ctx is done.
func gaugeWriter(ctx context.Context, t *testing.T, c *tsdb.Client, metric, run string, value *atomic.Int64) {
	t.Helper()
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			ts := tsdb.TimeSeries{
				Labels:  []tsdb.Label{{Name: "__name__", Value: metric}, {Name: "run", Value: run}, {Name: "service", Value: "billing"}},
				Samples: []tsdb.Sample{{Timestamp: time.Now().UnixMilli(), Value: float64(value.Load())}},
			}
			_ = c.Write(ctx, []tsdb.TimeSeries{ts})
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

func writeRuleFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "test.rules.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ruleStatus finds a rule in the evaluator's API view.
func ruleStatus(e *Evaluator, name string) (RuleStatus, bool) {
	for _, g := range e.Groups() {
		for _, r := range g.Rules {
			if r.Name == name {
				return r, true
			}
		}
	}
	return RuleStatus{}, false
}

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

func startEvaluator(t *testing.T, cfg EvaluatorConfig, o EvaluatorOptions) (*Evaluator, func()) {
	t.Helper()
	e, err := NewEvaluator(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return e, stop
}

// TestEvaluatorAlertLifecycle runs a `for: 2s` alert and a recording rule
// at a 1s interval against the embedded VictoriaMetrics: the alert goes
// pending, fires no sooner than 2s later, resolves when the value drops;
// the sink sees it firing then resolved with Alertmanager's StartsAt and
// EndsAt; the recording rule's result, ALERTS and ALERTS_FOR_STATE are in
// the TSDB.
func TestEvaluatorAlertLifecycle(t *testing.T) {
	t.Parallel()
	c := newStoreClient(t)
	run := fmt.Sprint("lifecycle-", time.Now().UnixNano())
	var value atomic.Int64
	value.Store(20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gaugeWriter(ctx, t, c, "test_queue_depth", run, &value)

	path := writeRuleFile(t, fmt.Sprintf(`
groups:
  - name: lifecycle
    interval: 1s
    rules:
      - record: service:test_queue_depth:max
        expr: max by (service, run) (test_queue_depth{run=%[1]q})
      - alert: QueueDeep
        # MetricsQL: WITH templates; VictoriaMetrics evaluates them.
        expr: WITH (q = test_queue_depth{run=%[1]q}) max by (service, run) (q) > 10
        for: 2s
        labels:
          severity: critical
        annotations:
          summary: "queue depth {{ $value }} on {{ $labels.service }}"
`, run))
	sink := &collectingSink{}
	rec := &collectingRecorder{}
	reg := prometheus.NewRegistry()
	cfg := DefaultEvaluatorConfig()
	cfg.Files = []string{path}
	var flushes atomic.Int64
	e, stop := startEvaluator(t, cfg, EvaluatorOptions{
		Querier: c, Writer: c, Sink: sink, Recorder: rec, Registerer: reg,
		ExternalURL:    "http://opspilot.test",
		BeforeEvaluate: func() { flushes.Add(1); store.Flush() },
	})

	var pendingAt time.Time
	waitFor(t, 10*time.Second, "QueueDeep pending", func() bool {
		r, _ := ruleStatus(e, "QueueDeep")
		if r.State == "pending" && len(r.Alerts) == 1 {
			pendingAt = r.Alerts[0].ActiveAt
			return true
		}
		if r.State == "firing" {
			t.Fatalf("QueueDeep fired without being seen pending: %+v", r)
		}
		return false
	})
	var firing AlertStatus
	waitFor(t, 10*time.Second, "QueueDeep firing", func() bool {
		r, _ := ruleStatus(e, "QueueDeep")
		if r.State == "firing" && len(r.Alerts) == 1 {
			firing = r.Alerts[0]
			return true
		}
		return false
	})
	if held := firing.FiredAt.Sub(firing.ActiveAt); held < 2*time.Second {
		t.Errorf("fired %s after becoming active; for: 2s", held)
	}
	if !firing.ActiveAt.Equal(pendingAt) {
		t.Errorf("ActiveAt changed from %s (pending) to %s (firing)", pendingAt, firing.ActiveAt)
	}
	if firing.Labels["service"] != "billing" || firing.Labels["severity"] != "critical" || firing.Labels["alertname"] != "QueueDeep" {
		t.Errorf("firing alert labels %v", firing.Labels)
	}
	if firing.Value != 20 {
		t.Errorf("firing alert value %v, want 20", firing.Value)
	}

	value.Store(1)
	waitFor(t, 10*time.Second, "QueueDeep resolved", func() bool {
		r, _ := ruleStatus(e, "QueueDeep")
		return r.State == "inactive"
	})
	waitFor(t, 5*time.Second, "the sink to get the resolved alert", func() bool {
		for _, a := range sink.all() {
			if a.Resolved() {
				return true
			}
		}
		return false
	})

	var sawFiring, sawResolved bool
	for _, a := range sink.all() {
		if a.Labels["alertname"] != "QueueDeep" {
			t.Errorf("unexpected alert %v", a.Labels)
		}
		if !a.StartsAt.Equal(firing.FiredAt) {
			t.Errorf("StartsAt %s, want the time it fired %s", a.StartsAt, firing.FiredAt)
		}
		if !strings.HasPrefix(a.GeneratorURL, "http://opspilot.test/graph?g0.expr=WITH") {
			t.Errorf("GeneratorURL %q", a.GeneratorURL)
		}
		if a.Annotations["summary"] != "queue depth 20 on billing" && !a.Resolved() {
			t.Errorf("summary %q", a.Annotations["summary"])
		}
		if a.Resolved() {
			sawResolved = true
			if !sawFiring {
				t.Error("the sink got the resolved alert before the firing one")
			}
			if !a.EndsAt.After(a.StartsAt) || a.EndsAt.After(time.Now()) {
				t.Errorf("resolved EndsAt %s, StartsAt %s", a.EndsAt, a.StartsAt)
			}
		} else {
			sawFiring = true
			// Firing: EndsAt is ValidUntil, in the future (4 resend delays).
			if !a.EndsAt.After(a.StartsAt.Add(time.Minute)) {
				t.Errorf("firing EndsAt %s is not ValidUntil (StartsAt %s + 4m)", a.EndsAt, a.StartsAt)
			}
		}
	}
	if !sawFiring || !sawResolved {
		t.Errorf("sink saw firing %v, resolved %v", sawFiring, sawResolved)
	}

	evs := rec.all()
	if len(evs) != 2 || evs[0].Type != EventFired || evs[1].Type != EventResolved {
		t.Fatalf("events %+v, want fired then resolved", evs)
	}
	if evs[0].AlertName != "QueueDeep" || evs[0].Labels["service"] != "billing" || evs[0].Message != "queue depth 20 on billing" ||
		evs[0].Fingerprint == "" || evs[0].Fingerprint != evs[1].Fingerprint || evs[0].Who != RulesWho {
		t.Errorf("fired event %+v", evs[0])
	}

	// The recording rule's result and the alert series are in the TSDB.
	q := func(expr string) model.Vector {
		store.Flush()
		res, err := c.Query(tsdb.WithQueryParams(context.Background(), newestParams), expr, time.Time{})
		if err != nil {
			t.Fatalf("query %s: %v", expr, err)
		}
		v, _ := res.Value.(model.Vector)
		return v
	}
	if v := q(fmt.Sprintf(`max_over_time(service:test_queue_depth:max{run=%q}[1m])`, run)); len(v) != 1 || v[0].Value != 20 {
		t.Errorf("recording rule output %v, want 20", v)
	}
	if v := q(fmt.Sprintf(`max_over_time(ALERTS{alertname="QueueDeep",alertstate="firing",service="billing",run=%q}[1m])`, run)); len(v) != 1 {
		t.Errorf("ALERTS firing series: %v", v)
	}
	// No pending series: Prometheus writes ALERTS only once the rules'
	// for state is restored, after the second evaluation; this alert fired
	// on the third.
	if v := q(fmt.Sprintf(`last_over_time(ALERTS_FOR_STATE{alertname="QueueDeep",run=%q}[1m])`, run)); len(v) != 1 || int64(v[0].Value) != pendingAt.Unix() {
		t.Errorf("ALERTS_FOR_STATE %v, want the ActiveAt %d", v, pendingAt.Unix())
	}

	// The API lists the group; Prometheus' and the evaluator's metrics are
	// registered.
	rec2 := httptest.NewRecorder()
	e.Routes()[0].Handler.ServeHTTP(rec2, httptest.NewRequest("GET", "/api/v1/rules", nil))
	var groups []GroupStatus
	if err := json.Unmarshal(rec2.Body.Bytes(), &groups); err != nil || len(groups) != 1 || groups[0].Name != "lifecycle" || len(groups[0].Rules) != 2 ||
		groups[0].Rules[0].Type != "recording" || groups[0].Rules[1].Type != "alerting" || groups[0].Rules[1].Health != "ok" {
		t.Errorf("GET /api/v1/rules: %v %s", err, rec2.Body)
	}
	stop()
	if n := testutil.ToFloat64(e.m.writtenSamples); n == 0 {
		t.Error("opspilot_alerting_written_samples_total is 0")
	}
	if n := testutil.ToFloat64(e.m.transitions.WithLabelValues(EventFired)); n != 1 {
		t.Errorf("fired transitions %v", n)
	}
	if n, err := testutil.GatherAndCount(reg, "prometheus_rule_evaluations_total"); err != nil || n == 0 {
		t.Errorf("prometheus_rule_evaluations_total: %d series, %v", n, err)
	}
	if f := flushes.Load(); f == 0 {
		t.Error("BeforeEvaluate never ran")
	}
}

// failingWriter fails while fail is set and then writes through.
type failingWriter struct {
	next Writer
	fail atomic.Bool
}

func (w *failingWriter) Write(ctx context.Context, s []tsdb.TimeSeries) error {
	if w.fail.Load() {
		return errors.New("tsdb unavailable")
	}
	return w.next.Write(ctx, s)
}

// TestEvaluatorKeepsSamplesWhileWritesFail: a recording rule's results
// computed while the TSDB refuses writes are written once it accepts them
// again, and the failures are counted.
func TestEvaluatorKeepsSamplesWhileWritesFail(t *testing.T) {
	t.Parallel()
	c := newStoreClient(t)
	run := fmt.Sprint("writefail-", time.Now().UnixNano())
	var value atomic.Int64
	value.Store(7)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gaugeWriter(ctx, t, c, "test_backlog", run, &value)
	path := writeRuleFile(t, fmt.Sprintf(`
groups:
  - name: writefail
    rules:
      - record: test:backlog:max
        expr: max by (run) (test_backlog{run=%q})
`, run))
	w := &failingWriter{next: c}
	w.fail.Store(true)
	cfg := DefaultEvaluatorConfig()
	cfg.Files = []string{path}
	e, stop := startEvaluator(t, cfg, EvaluatorOptions{Querier: c, Writer: w, BeforeEvaluate: store.Flush})
	defer stop()
	waitFor(t, 10*time.Second, "two failed writes", func() bool { return testutil.ToFloat64(e.m.writeFailures) >= 2 })
	failedAt := time.Now()
	if r, _ := ruleStatus(e, "test:backlog:max"); r.Health != "ok" {
		t.Errorf("a failed write marked the rule %q: %s", r.Health, r.LastError)
	}
	w.fail.Store(false)
	waitFor(t, 10*time.Second, "pending samples written", func() bool { return e.buf.pendingCount() == 0 })
	// The samples computed during the failure are there, at their own times.
	store.Flush()
	res, err := c.QueryRange(context.Background(), fmt.Sprintf(`test:backlog:max{run=%q}`, run),
		tsdb.Range{Start: failedAt.Add(-3 * time.Second), End: failedAt, Step: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := res.Value.(model.Matrix)
	if len(m) != 1 || len(m[0].Values) < 2 || math.Abs(float64(m[0].Values[0].Value)-7) > 0 {
		t.Errorf("results computed while writes failed: %v", res.Value)
	}
}

// TestEvaluatorRestoresForState: an evaluator that starts while an alert
// was firing before (ALERTS_FOR_STATE in the TSDB) keeps the alert's
// ActiveAt instead of starting its `for` again.
func TestEvaluatorRestoresForState(t *testing.T) {
	t.Parallel()
	c := newStoreClient(t)
	run := fmt.Sprint("restore-", time.Now().UnixNano())
	var value atomic.Int64
	value.Store(50)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gaugeWriter(ctx, t, c, "test_latency", run, &value)
	path := writeRuleFile(t, fmt.Sprintf(`
groups:
  - name: restore
    rules:
      - alert: Slow
        expr: max by (run) (test_latency{run=%q}) > 10
        for: 2s
`, run))
	cfg := DefaultEvaluatorConfig()
	cfg.Files = []string{path}
	cfg.ForGracePeriod = time.Second
	e1, stop1 := startEvaluator(t, cfg, EvaluatorOptions{Querier: c, Writer: c, BeforeEvaluate: store.Flush})
	var first AlertStatus
	waitFor(t, 10*time.Second, "Slow firing", func() bool {
		r, _ := ruleStatus(e1, "Slow")
		if r.State == "firing" {
			first = r.Alerts[0]
			return true
		}
		return false
	})
	stop1()

	e2, _ := startEvaluator(t, cfg, EvaluatorOptions{Querier: c, Writer: c, BeforeEvaluate: store.Flush})
	waitFor(t, 10*time.Second, "Slow's ActiveAt restored", func() bool {
		r, _ := ruleStatus(e2, "Slow")
		return len(r.Alerts) == 1 && r.Alerts[0].ActiveAt.Unix() == first.ActiveAt.Unix()
	})
}

// TestSampleBufferBound: while writes fail, at most max samples are kept,
// the oldest dropped and counted; the next successful commit writes the
// rest in order.
func TestSampleBufferBound(t *testing.T) {
	t.Parallel()
	var got []tsdb.TimeSeries
	w := &failingWriter{next: writerFunc(func(_ context.Context, s []tsdb.TimeSeries) error { got = append(got, s...); return nil })}
	w.fail.Store(true)
	m := newEvalMetrics(nil)
	b := &sampleBuffer{w: w, log: discardLog(), m: m, max: 3}
	series := func(v float64) []tsdb.TimeSeries {
		return []tsdb.TimeSeries{{Labels: []tsdb.Label{{Name: "__name__", Value: "x"}}, Samples: []tsdb.Sample{{Timestamp: int64(v), Value: v}}}}
	}
	for i := range 5 {
		if err := b.commit(context.Background(), series(float64(i)), 1); err == nil {
			t.Fatal("a failed write reported no error")
		}
	}
	if b.pendingCount() != 3 || testutil.ToFloat64(m.droppedSamples) != 2 || testutil.ToFloat64(m.writeFailures) != 5 {
		t.Errorf("pending %d, dropped %v, failures %v; want 3, 2, 5", b.pendingCount(), testutil.ToFloat64(m.droppedSamples), testutil.ToFloat64(m.writeFailures))
	}
	w.fail.Store(false)
	if err := b.commit(context.Background(), series(5), 1); err != nil {
		t.Fatal(err)
	}
	var vals []float64
	for _, s := range got {
		vals = append(vals, s.Samples[0].Value)
	}
	if fmt.Sprint(vals) != "[2 3 4 5]" || b.pendingCount() != 0 {
		t.Errorf("written %v (pending %d), want [2 3 4 5]", vals, b.pendingCount())
	}
}

type writerFunc func(context.Context, []tsdb.TimeSeries) error

func (f writerFunc) Write(ctx context.Context, s []tsdb.TimeSeries) error { return f(ctx, s) }

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestEvaluatorDoesNotRestoreResolvedAlert: an alert that fired and
// resolved before a restart starts its `for` again when it comes back,
// although VictoriaMetrics' last_over_time still shows its old
// ALERTS_FOR_STATE sample.
func TestEvaluatorDoesNotRestoreResolvedAlert(t *testing.T) {
	t.Parallel()
	c := newStoreClient(t)
	run := fmt.Sprint("resolved-", time.Now().UnixNano())
	var value atomic.Int64
	value.Store(50)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gaugeWriter(ctx, t, c, "test_errors", run, &value)
	path := writeRuleFile(t, fmt.Sprintf(`
groups:
  - name: resolved
    rules:
      - alert: Errors
        expr: max by (run) (test_errors{run=%q}) > 10
        for: 1s
`, run))
	cfg := DefaultEvaluatorConfig()
	cfg.Files = []string{path}
	cfg.ForGracePeriod = time.Second
	e1, stop1 := startEvaluator(t, cfg, EvaluatorOptions{Querier: c, Writer: c, BeforeEvaluate: store.Flush})
	waitFor(t, 10*time.Second, "Errors firing", func() bool { r, _ := ruleStatus(e1, "Errors"); return r.State == "firing" })
	// ALERTS_FOR_STATE is written from the evaluation after the second on.
	time.Sleep(2500 * time.Millisecond)
	value.Store(0)
	waitFor(t, 10*time.Second, "Errors resolved", func() bool { r, _ := ruleStatus(e1, "Errors"); return r.State == "inactive" })
	time.Sleep(1500 * time.Millisecond) // the staleness markers' evaluation
	stop1()
	resolvedBy := time.Now()

	value.Store(50)
	e2, _ := startEvaluator(t, cfg, EvaluatorOptions{Querier: c, Writer: c, BeforeEvaluate: store.Flush})
	// Restoration runs after the second evaluation; by the fourth the
	// alert would fire if its old ActiveAt had been restored.
	waitFor(t, 10*time.Second, "four evaluations", func() bool {
		r, _ := ruleStatus(e2, "Errors")
		return len(r.Alerts) == 1 && time.Since(r.Alerts[0].ActiveAt) > 2500*time.Millisecond
	})
	r, _ := ruleStatus(e2, "Errors")
	if a := r.Alerts[0]; a.ActiveAt.Before(resolvedBy.Add(-time.Second)) {
		t.Errorf("the resolved alert's old ActiveAt %s was restored (resolved by %s)", a.ActiveAt, resolvedBy)
	}
}

// TestExampleBillingRules evaluates examples/alerting/billing.rules.yaml
// against billing_transactions_total counters as the agent stores them
// (with service and instance labels): about 9% of transactions fail, so
// BillingErrorRatioHigh fires at once with its templated summary, and the
// recording rule writes a rate per result.
func TestExampleBillingRules(t *testing.T) {
	t.Parallel()
	c := newStoreClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	instance := fmt.Sprint("billing-", time.Now().UnixNano())
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var ok, failed float64
		for {
			ok, failed = ok+10, failed+1
			now := time.Now().UnixMilli()
			series := func(result string, v float64) tsdb.TimeSeries {
				return tsdb.TimeSeries{Labels: []tsdb.Label{{Name: "__name__", Value: "billing_transactions_total"},
					{Name: "instance", Value: instance}, {Name: "op", Value: "pay"}, {Name: "result", Value: result}, {Name: "service", Value: "billing"}},
					Samples: []tsdb.Sample{{Timestamp: now, Value: v}}}
			}
			_ = c.Write(ctx, []tsdb.TimeSeries{series("ok", ok), series("error", failed)})
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	time.Sleep(1500 * time.Millisecond) // two samples in the 5s rate window
	sink := &collectingSink{}
	cfg := DefaultEvaluatorConfig()
	cfg.Files = []string{"../examples/alerting/billing.rules.yaml"}
	started := time.Now()
	e, _ := startEvaluator(t, cfg, EvaluatorOptions{Querier: c, Writer: c, Sink: sink, BeforeEvaluate: store.Flush})
	var fired *alert.Alert
	waitFor(t, 10*time.Second, "BillingErrorRatioHigh in the sink", func() bool {
		for _, a := range sink.all() {
			if a.Labels["alertname"] == "BillingErrorRatioHigh" {
				fired = a
				return true
			}
		}
		return false
	})
	if fired.Labels["severity"] != "critical" || fired.Labels["service"] != "billing" || fired.Annotations["runbook"] != "billing-errors" {
		t.Errorf("alert %v %v", fired.Labels, fired.Annotations)
	}
	if s := string(fired.Annotations["summary"]); !strings.HasPrefix(s, "Billing errors at 9.") || !strings.HasSuffix(s, "% of transactions") {
		t.Errorf("summary %q, want about 9%% (humanizePercentage of 1/11)", s)
	}
	// Written by this evaluator, not an earlier run (-count=2).
	waitFor(t, 10*time.Second, "the recording rule's output", func() bool {
		store.Flush()
		res, err := c.Query(tsdb.WithQueryParams(context.Background(), newestParams),
			fmt.Sprintf(`tlast_over_time(service:billing_transactions:rate5s{service="billing"}[10s]) > %d`, started.Unix()), time.Time{})
		v, _ := res.Value.(model.Vector)
		return err == nil && len(v) == 2
	})
	waitFor(t, 5*time.Second, "BillingAnomaly evaluated without anomaly scores", func() bool {
		r, _ := ruleStatus(e, "BillingAnomaly")
		return r.Health == "ok" && r.State == "inactive"
	})
}

// TestNewEvaluatorErrors: a broken rule file stops NewEvaluator with the
// file's line-precise problems; no files means no groups.
func TestNewEvaluatorErrors(t *testing.T) {
	t.Parallel()
	w := writerFunc(func(context.Context, []tsdb.TimeSeries) error { return nil })
	cfg := DefaultEvaluatorConfig()
	cfg.Files = []string{writeRuleFile(t, "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        for: -1s\n")}
	_, err := NewEvaluator(cfg, EvaluatorOptions{Querier: &tsdb.Client{}, Writer: w})
	if err == nil || !strings.Contains(err.Error(), `test.rules.yaml:6:14: group "g", rule 1 (alert A): for:`) {
		t.Errorf("broken file: %v", err)
	}
	cfg.Files = nil
	if _, err := NewEvaluator(cfg, EvaluatorOptions{Writer: w}); err == nil || !strings.Contains(err.Error(), "Querier") {
		t.Errorf("no querier: %v", err)
	}
	cfg.Interval = 0
	if _, err := NewEvaluator(cfg, EvaluatorOptions{Querier: &tsdb.Client{}, Writer: w}); err == nil || !strings.Contains(err.Error(), "interval") {
		t.Errorf("interval 0: %v", err)
	}
	e, err := NewEvaluator(DefaultEvaluatorConfig(), EvaluatorOptions{Querier: &tsdb.Client{}, Writer: w})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Run(ctx); err != nil || len(e.Groups()) != 0 {
		t.Errorf("no files: Run %v, groups %v", err, e.Groups())
	}
	if err := e.Run(context.Background()); err == nil {
		t.Error("a second Run did not fail")
	}
}
