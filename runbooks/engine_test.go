package runbooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	examples "opspilot/examples/runbooks"
)

// fakeQuerier answers each expression with its scripted results in turn,
// repeating the last one.
type fakeQuerier struct {
	mu      sync.Mutex
	results map[string][][]Sample
	err     map[string]error
	calls   map[string]int
	block   bool // wait for ctx instead of answering
}

func (q *fakeQuerier) Query(ctx context.Context, expr string) ([]Sample, error) {
	if q.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.calls == nil {
		q.calls = map[string]int{}
	}
	n := q.calls[expr]
	q.calls[expr]++
	if err := q.err[expr]; err != nil {
		return nil, err
	}
	rs, ok := q.results[expr]
	if !ok || len(rs) == 0 {
		return nil, nil
	}
	return rs[min(n, len(rs)-1)], nil
}

func (q *fakeQuerier) count(expr string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.calls[expr]
}

func one(v float64) []Sample { return []Sample{{Labels: map[string]string{}, Value: v}} }

type fakeLogs struct{ lines []string }

func (l *fakeLogs) Search(_ context.Context, query string, limit int) ([]string, error) {
	if query == "fail" {
		return nil, errors.New("store down")
	}
	return l.lines, nil
}

// fakeOrchestrator records its calls; block makes every change wait for
// its context.
type fakeOrchestrator struct {
	mu       sync.Mutex
	replicas map[string]int
	calls    []string
	whos     []string
	block    bool
	fail     error
}

func (o *fakeOrchestrator) Replicas(_ context.Context, service string) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, ok := o.replicas[service]
	if !ok {
		return 0, fmt.Errorf("service %q not found", service)
	}
	return n, nil
}

// InstanceService: instances are named SERVICE-N here.
func (o *fakeOrchestrator) InstanceService(_ context.Context, instance string) (string, error) {
	svc, _, ok := strings.Cut(instance, "-")
	if !ok {
		return "", fmt.Errorf("instance %q not found", instance)
	}
	return svc, nil
}

func (o *fakeOrchestrator) change(ctx context.Context, call, who string) error {
	if o.block {
		<-ctx.Done()
		return ctx.Err()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, call)
	o.whos = append(o.whos, who)
	return o.fail
}

func (o *fakeOrchestrator) Scale(ctx context.Context, service string, n int, who, why string) error {
	err := o.change(ctx, fmt.Sprintf("scale %s %d", service, n), who)
	if err == nil {
		o.mu.Lock()
		o.replicas[service] = n
		o.mu.Unlock()
	}
	return err
}

func (o *fakeOrchestrator) RestartInstance(ctx context.Context, instance, who, why string) error {
	return o.change(ctx, "restart "+instance, who)
}

func (o *fakeOrchestrator) DrainNode(ctx context.Context, node, who, why string) error {
	return o.change(ctx, "drain "+node, who)
}

func (o *fakeOrchestrator) RollbackService(ctx context.Context, service, who, why string) error {
	return o.change(ctx, "rollback "+service, who)
}

func (o *fakeOrchestrator) Failover(ctx context.Context, dc, who, why string) error {
	return o.change(ctx, "failover "+dc, who)
}

func (o *fakeOrchestrator) got() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.calls)
}

type fakeSilencer struct {
	matchers []string
	d        time.Duration
	why      string
}

func (s *fakeSilencer) Silence(_ context.Context, ms []string, d time.Duration, who, why string) (string, error) {
	s.matchers, s.d, s.why = ms, d, why
	return "sil-1", nil
}

type fakeNotifier struct {
	mu    sync.Mutex
	posts []string
}

func (n *fakeNotifier) Post(_ context.Context, runID, text string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.posts = append(n.posts, runID+": "+text)
	return nil
}

func (n *fakeNotifier) all() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.posts, "\n")
}

// fakeApprover hands each request to the test and waits for its answer.
type fakeApprover struct {
	requests chan Approval
	answers  chan error // nil approves as "alice"
}

func newFakeApprover() *fakeApprover {
	return &fakeApprover{requests: make(chan Approval, 1), answers: make(chan error, 1)}
}

func (a *fakeApprover) RequestApproval(ctx context.Context, req Approval) (string, error) {
	a.requests <- req
	select {
	case err := <-a.answers:
		if err != nil {
			return "", err
		}
		return "alice", nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

type fakeHTTP struct {
	status int
	got    *http.Request
	body   string
}

func (h *fakeHTTP) Do(r *http.Request) (*http.Response, error) {
	h.got = r
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		h.body = string(b)
	}
	return &http.Response{StatusCode: h.status, Body: io.NopCloser(strings.NewReader("pong"))}, nil
}

type fakes struct {
	q   *fakeQuerier
	o   *fakeOrchestrator
	n   *fakeNotifier
	rec []StepResult
	mu  sync.Mutex
}

func newEngine(f *fakes, o EngineOptions) *Engine {
	if f.q == nil {
		f.q = &fakeQuerier{}
	}
	if f.o == nil {
		f.o = &fakeOrchestrator{replicas: map[string]int{"billing": 4}}
	}
	f.n = &fakeNotifier{}
	o.Querier, o.Orchestrator, o.Notifier = f.q, f.o, f.n
	o.Recorder = func(_ *RunResult, sr StepResult) {
		f.mu.Lock()
		f.rec = append(f.rec, sr)
		f.mu.Unlock()
	}
	o.NewRunID = func() string { return "run1" }
	return NewEngine(o)
}

func statuses(r *RunResult) string {
	var s []string
	for _, st := range r.Steps {
		s = append(s, st.Name+"="+st.Status)
	}
	return strings.Join(s, " ")
}

func exampleRunbook(t *testing.T) Runbook {
	t.Helper()
	rbs, err := Parse("billing-errors.yaml", examples.BillingErrors)
	if err != nil {
		t.Fatal(err)
	}
	return rbs[0]
}

// exampleQuerier scripts the example's queries: a 2% error ratio at
// 60,000 transactions per minute that recovers on the fourth poll.
func exampleQuerier(rb Runbook) *fakeQuerier {
	return &fakeQuerier{results: map[string][][]Sample{
		rb.Steps[0].Query.Expr:     {one(0.02)},
		rb.Steps[1].Query.Expr:     {one(60000)},
		rb.Steps[3].WaitUntil.Expr: {nil, nil, nil, one(0.0004)},
	}}
}

func TestRunExampleScalesBilling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rb := exampleRunbook(t)
		f := &fakes{q: exampleQuerier(rb)}
		e := newEngine(f, EngineOptions{})
		start := time.Now()
		res, err := e.Run(t.Context(), rb, RunRequest{
			Alert: &AlertInput{Labels: map[string]string{"alertname": "BillingErrorRatioHigh"}},
			Who:   "alertmanager", Why: "alert BillingErrorRatioHigh",
		})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got, want := statuses(res), "error_ratio=ok throughput=ok scale=ok recovered=ok summary=ok"; got != want {
			t.Fatalf("steps: %s, want %s", got, want)
		}
		if got := f.o.got(); !slices.Equal(got, []string{"scale billing 8"}) {
			t.Errorf("orchestrator calls %v", got)
		}
		if f.o.whos[0] != "runbook:billing-errors (started by alertmanager)" {
			t.Errorf("who = %q", f.o.whos[0])
		}
		// Three empty polls, 5 s apart.
		if waited := time.Since(start); waited != 15*time.Second {
			t.Errorf("the run took %s, want 15s", waited)
		}
		if res.Steps[0].Graph == "" || res.Steps[0].Outputs["value"] != 0.02 {
			t.Errorf("query step: %+v", res.Steps[0])
		}
		msg := res.Steps[4].Outputs["message"].(string)
		want := "Billing error ratio was 0.0200 at 60000 transactions/min; scaled billing from 4 to 8 instances; errors back below 0.1% after 15s."
		if msg != want {
			t.Errorf("summary\n%s\nwant\n%s", msg, want)
		}
		if len(f.rec) != 5 {
			t.Errorf("recorder got %d results, want 5", len(f.rec))
		}
		posts := f.n.all()
		for _, w := range []string{
			"run1: runbook billing-errors started by alertmanager: 5 steps",
			"run1: [ok] scale (scale): scaled billing from 4 to 8 replicas",
			"run1: " + want,
			"run1: runbook billing-errors ok in 15s",
		} {
			if !strings.Contains(posts, w) {
				t.Errorf("posts\n%s\nlack %q", posts, w)
			}
		}
	})
}

func TestRunExampleCapsAtMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rb := exampleRunbook(t)
		f := &fakes{q: exampleQuerier(rb), o: &fakeOrchestrator{replicas: map[string]int{"billing": 30}}}
		res, err := newEngine(f, EngineOptions{}).Run(t.Context(), rb, RunRequest{Who: "bob"})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.o.got(); !slices.Equal(got, []string{"scale billing 40"}) {
			t.Errorf("orchestrator calls %v, want scale to max 40", got)
		}
		if res.Steps[2].Outputs["replicas"] != 40 {
			t.Errorf("outputs %v", res.Steps[2].Outputs)
		}
	})
}

func TestRunExampleNotRecovered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rb := exampleRunbook(t)
		q := exampleQuerier(rb)
		q.results[rb.Steps[3].WaitUntil.Expr] = nil // never recovers
		f := &fakes{q: q}
		start := time.Now()
		res, err := newEngine(f, EngineOptions{}).Run(t.Context(), rb, RunRequest{Who: "bob"})
		if err != nil {
			t.Fatalf("continue_on_error keeps the run ok: %v", err)
		}
		if got, want := statuses(res), "error_ratio=ok throughput=ok scale=ok recovered=timed-out summary=ok"; got != want {
			t.Fatalf("steps: %s, want %s", got, want)
		}
		if d := time.Since(start); d != 2*time.Minute {
			t.Errorf("waited %s, want the wait_until timeout 2m", d)
		}
		// Polls at 0, 5s … 115s; the timeout at 120s ends the wait.
		if n := q.count(rb.Steps[3].WaitUntil.Expr); n != 24 {
			t.Errorf("%d polls, want 24", n)
		}
		if !strings.HasSuffix(res.Steps[4].Outputs["message"].(string), "errors still above 0.1% after 2m: escalate.") {
			t.Errorf("summary %q", res.Steps[4].Outputs["message"])
		}
	})
}

func TestDryRun(t *testing.T) {
	rb := exampleRunbook(t)
	f := &fakes{q: exampleQuerier(rb)}
	res, err := newEngine(f, EngineOptions{}).Run(t.Context(), rb, RunRequest{Who: "bob", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := statuses(res), "error_ratio=ok throughput=ok scale=dry-run recovered=dry-run summary=dry-run"; got != want {
		t.Fatalf("steps: %s, want %s", got, want)
	}
	if got := f.o.got(); len(got) != 0 {
		t.Errorf("a dry run changed things: %v", got)
	}
	if m := res.Steps[2].Message; m != "would scale billing from 4 to 8 replicas" {
		t.Errorf("scale message %q", m)
	}
	if q := f.q.count(rb.Steps[3].WaitUntil.Expr); q != 0 {
		t.Errorf("wait_until polled %d times in a dry run", q)
	}
	if !res.DryRun || !strings.Contains(f.n.all(), "started (dry run)") {
		t.Errorf("the run is not marked as a dry run")
	}
	// A runbook with dry_run set is always a dry run.
	rb.DryRun = true
	f2 := &fakes{q: exampleQuerier(rb)}
	if _, err := newEngine(f2, EngineOptions{}).Run(t.Context(), rb, RunRequest{}); err != nil || len(f2.o.got()) != 0 {
		t.Errorf("dry_run runbook: err %v, calls %v", err, f2.o.got())
	}
}

func step(s Step) Runbook {
	return Runbook{Name: "t", Timeout: DefaultTimeout, Steps: []Step{s}}
}

func ptr[T any](v T) *T { return &v }

func TestStepTypes(t *testing.T) {
	tests := []struct {
		name    string
		step    Step
		opts    EngineOptions
		status  string
		calls   []string
		outputs map[string]any
		message string
	}{
		{name: "query empty", step: Step{Name: "q", Query: &QueryAction{Expr: "absent"}}, status: StatusOK,
			outputs: map[string]any{"series": 0}, message: "no series"},
		{name: "query", step: Step{Name: "q", Query: &QueryAction{Expr: "up"}}, status: StatusOK,
			outputs: map[string]any{"series": 1, "value": 1.0}, message: "1 (1 series)"},
		{name: "query error", step: Step{Name: "q", Query: &QueryAction{Expr: "broken"}}, status: StatusFailed,
			message: `query "broken": bad gateway`},
		{name: "logs", step: Step{Name: "l", Logs: &LogsAction{Query: "error", Limit: 2}}, opts: EngineOptions{Logs: &fakeLogs{lines: []string{"a", "b", "c"}}},
			status: StatusOK, outputs: map[string]any{"lines": []string{"b", "c"}, "count": 2}},
		{name: "logs error", step: Step{Name: "l", Logs: &LogsAction{Query: "fail"}}, opts: EngineOptions{Logs: &fakeLogs{}},
			status: StatusFailed, message: `logs "fail": store down`},
		{name: "logs unconfigured", step: Step{Name: "l", Logs: &LogsAction{Query: "x"}}, status: StatusFailed, message: "no log store is configured"},
		{name: "scale replicas", step: Step{Name: "s", Scale: &ScaleAction{Service: "billing", Replicas: Num(10)}}, status: StatusOK,
			calls: []string{"scale billing 10"}, outputs: map[string]any{"previous": 4, "replicas": 10}},
		{name: "scale add", step: Step{Name: "s", Scale: &ScaleAction{Service: "billing", Add: Num(-10)}}, status: StatusOK,
			calls: []string{"scale billing 0"}},
		{name: "scale multiply rounds up", step: Step{Name: "s", Scale: &ScaleAction{Service: "billing", Multiply: Num(1.1)}}, status: StatusOK,
			calls: []string{"scale billing 5"}},
		{name: "scale unchanged", step: Step{Name: "s", Scale: &ScaleAction{Service: "billing", Replicas: Num(4)}}, status: StatusOK,
			message: "billing already runs 4 replicas"},
		{name: "scale unknown service", step: Step{Name: "s", Scale: &ScaleAction{Service: "nope", Add: Num(1)}}, status: StatusFailed,
			message: `read replicas of nope: service "nope" not found`},
		{name: "scale replicas from a param", step: Step{Name: "s", Scale: &ScaleAction{Service: "billing", Replicas: &Number{Text: "{{ .params.n }}"}}}, status: StatusOK,
			calls: []string{"scale billing 3"}, outputs: map[string]any{"previous": 4, "replicas": 3}},
		{name: "scale multiply capped by a template", step: Step{Name: "s", Scale: &ScaleAction{Service: "billing", Multiply: Num(3), Max: &Number{Text: "{{ .params.n }}0"}}}, status: StatusOK,
			calls: []string{"scale billing 12"}},
		{name: "scale template not a number", step: Step{Name: "s", Scale: &ScaleAction{Service: "billing", Add: &Number{Text: "{{ .run.who }}"}}}, status: StatusFailed,
			message: `scale.add: "runbook:t (started by bob)" is not a number`},
		{name: "scale template negative", step: Step{Name: "s", Scale: &ScaleAction{Service: "billing", Replicas: &Number{Text: "-{{ .params.n }}"}}}, status: StatusFailed,
			message: `scale.replicas: -3 is negative`},
		{name: "scale template fraction", step: Step{Name: "s", Scale: &ScaleAction{Service: "billing", Replicas: &Number{Text: "{{ .params.n }}.5"}}}, status: StatusFailed,
			message: `scale.replicas: 3.5 is not a whole number of replicas`},
		{name: "restart", step: Step{Name: "r", Restart: &RestartAction{Instance: "billing-{{ .params.n }}"}}, status: StatusOK, calls: []string{"restart billing-3"}},
		{name: "drain", step: Step{Name: "d", Drain: &DrainAction{Node: "host-1"}}, status: StatusOK, calls: []string{"drain host-1"}},
		{name: "rollout undo", step: Step{Name: "u", RolloutUndo: &RolloutUndoAction{Service: "billing"}}, status: StatusOK, calls: []string{"rollback billing"}},
		{name: "failover", step: Step{Name: "f", Failover: &FailoverAction{Datacenter: "{{ .alert.labels.dc }}"}}, status: StatusOK, calls: []string{"failover dc-a"}},
		{name: "alert label missing", step: Step{Name: "f", Failover: &FailoverAction{Datacenter: "{{ .alert.labels.zone }}"}}, status: StatusFailed,
			message: `map has no entry for key "zone"`},
		{name: "silence", step: Step{Name: "s", Silence: &SilenceAction{Matchers: []string{`alertname="{{ .alert.labels.alertname }}"`}, Comment: "deploying"}},
			opts: EngineOptions{Silencer: &fakeSilencer{}}, status: StatusOK, outputs: map[string]any{"id": "sil-1"},
			message: `silenced alertname="X" for 1h0m0s (id sil-1)`},
		{name: "silence unconfigured", step: Step{Name: "s", Silence: &SilenceAction{Matchers: []string{`a="b"`}}}, status: StatusFailed, message: "no silencer is configured"},
		{name: "http", step: Step{Name: "h", HTTP: &HTTPAction{Method: "POST", URL: "http://billing/flush", Body: "n={{ .params.n }}"}},
			opts: EngineOptions{HTTP: &fakeHTTP{status: 200}}, status: StatusOK, outputs: map[string]any{"status": 200, "body": "pong"}},
		{name: "http unexpected status", step: Step{Name: "h", HTTP: &HTTPAction{URL: "http://billing/flush", ExpectStatus: 204}},
			opts: EngineOptions{HTTP: &fakeHTTP{status: 200}}, status: StatusFailed, message: "GET http://billing/flush answered 200, want 204: pong"},
		{name: "http 5xx", step: Step{Name: "h", HTTP: &HTTPAction{URL: "http://billing/flush"}},
			opts: EngineOptions{HTTP: &fakeHTTP{status: 503}}, status: StatusFailed, message: "answered 503, want 2xx"},
		{name: "notify", step: Step{Name: "n", Notify: &NotifyAction{Message: "hello {{ .run.who }}"}}, status: StatusOK,
			outputs: map[string]any{"message": "hello runbook:t (started by bob)"}},
		{name: "exec refused", step: Step{Name: "x", Exec: &ExecAction{Command: []string{"echo", "hi"}}}, status: StatusFailed,
			message: "exec steps are disabled; an administrator enables them"},
		{name: "exec", step: Step{Name: "x", Exec: &ExecAction{Command: []string{"echo", "{{ .params.n }}"}}},
			opts: EngineOptions{AllowExec: true, Exec: func(_ context.Context, argv []string) (string, int, error) {
				return strings.Join(argv[1:], " ") + "\n", 0, nil
			}}, status: StatusOK, outputs: map[string]any{"output": "3\n", "exit_code": 0}},
		{name: "exec fails", step: Step{Name: "x", Exec: &ExecAction{Command: []string{"false"}}},
			opts: EngineOptions{AllowExec: true, Exec: func(context.Context, []string) (string, int, error) {
				return "boom", 1, errors.New("exit status 1")
			}}, status: StatusFailed, outputs: map[string]any{"output": "boom", "exit_code": 1}, message: "exec false: exit status 1"},
		{name: "approve unconfigured", step: Step{Name: "a", Approve: &ApproveAction{Roles: []string{"admin"}}}, status: StatusFailed,
			message: "no approver is configured"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakes{q: &fakeQuerier{
				results: map[string][][]Sample{"up": {one(1)}},
				err:     map[string]error{"broken": errors.New("bad gateway")},
			}}
			rb := step(tc.step)
			rb.Params = []Param{{Name: "n", Type: ParamInt, Default: "3"}}
			if ps := rb.Validate(); len(ps) > 0 {
				t.Fatalf("invalid test runbook: %v", ps)
			}
			res, err := newEngine(f, tc.opts).Run(t.Context(), rb, RunRequest{
				Who: "bob", Alert: &AlertInput{Labels: map[string]string{"alertname": "X", "dc": "dc-a"}},
			})
			if (err != nil) != (tc.status != StatusOK) {
				t.Errorf("Run error %v with step status %s", err, tc.status)
			}
			sr := res.Steps[0]
			if sr.Status != tc.status {
				t.Fatalf("status %s (%s), want %s", sr.Status, sr.Message, tc.status)
			}
			if res.Status != tc.status {
				t.Errorf("run status %s, want %s", res.Status, tc.status)
			}
			if got := f.o.got(); !slices.Equal(got, tc.calls) {
				t.Errorf("orchestrator calls %v, want %v", got, tc.calls)
			}
			if tc.outputs != nil && fmt.Sprint(sr.Outputs) != fmt.Sprint(tc.outputs) {
				t.Errorf("outputs %v, want %v", sr.Outputs, tc.outputs)
			}
			if !strings.Contains(sr.Message, tc.message) {
				t.Errorf("message %q, want it to contain %q", sr.Message, tc.message)
			}
			if sr.Who != "runbook:t (started by bob)" || sr.Action != tc.step.Action() || sr.Ended.Before(sr.Started) {
				t.Errorf("result %+v", sr)
			}
		})
	}
}

func TestHTTPRequest(t *testing.T) {
	h := &fakeHTTP{status: 200}
	rb := step(Step{Name: "h", HTTP: &HTTPAction{Method: "PUT", URL: "http://billing/{{ .params.path }}", Body: `{"n": 1}`}})
	rb.Params = []Param{{Name: "path", Default: "cache"}}
	if _, err := newEngine(&fakes{}, EngineOptions{HTTP: h}).Run(t.Context(), rb, RunRequest{}); err != nil {
		t.Fatal(err)
	}
	if h.got.Method != "PUT" || h.got.URL.String() != "http://billing/cache" || h.body != `{"n": 1}` {
		t.Errorf("request %s %s %q", h.got.Method, h.got.URL, h.body)
	}
}

func TestSilenceArguments(t *testing.T) {
	s := &fakeSilencer{}
	rb := step(Step{Name: "s", Silence: &SilenceAction{Matchers: []string{`service="billing"`}, Duration: 30 * time.Minute, Comment: "known issue"}})
	if _, err := newEngine(&fakes{}, EngineOptions{Silencer: s}).Run(t.Context(), rb, RunRequest{Why: "deploy"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.matchers, []string{`service="billing"`}) || s.d != 30*time.Minute || s.why != "known issue (runbook t step s: deploy)" {
		t.Errorf("silence %v %s %q", s.matchers, s.d, s.why)
	}
}

func TestConditions(t *testing.T) {
	rb := Runbook{Name: "c", Steps: []Step{
		{Name: "q", Query: &QueryAction{Expr: "up"}},
		{Name: "big", If: "{{ gt .steps.q.value 10 }}", Restart: &RestartAction{Instance: "big"}},
		{Name: "small", If: "{{ lt .steps.q.value 10 }}", Restart: &RestartAction{Instance: "small"}},
		{Name: "param", If: "{{ .params.go }}", Restart: &RestartAction{Instance: "param"}},
	}, Params: []Param{{Name: "go", Type: ParamBool}}}
	f := &fakes{q: &fakeQuerier{results: map[string][][]Sample{"up": {one(1)}}}}
	res, err := newEngine(f, EngineOptions{}).Run(t.Context(), rb, RunRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := statuses(res), "q=ok big=skipped small=ok param=skipped"; got != want {
		t.Errorf("steps %s, want %s", got, want)
	}
	if got := f.o.got(); !slices.Equal(got, []string{"restart small"}) {
		t.Errorf("calls %v", got)
	}

	// A condition that is neither true nor false, or cannot be evaluated,
	// fails the step.
	for cond, want := range map[string]string{
		"{{ .params.go }}ish":       `condition rendered "falseish"; it must render true or false`,
		"{{ gt .steps.q.value 0 }}": `map has no entry for key "value"`,
	} {
		rb := Runbook{Name: "c", Params: []Param{{Name: "go", Type: ParamBool}}, Steps: []Step{
			{Name: "q", Query: &QueryAction{Expr: "absent"}},
			{Name: "r", If: cond, Restart: &RestartAction{Instance: "x"}},
		}}
		res, err := newEngine(&fakes{}, EngineOptions{}).Run(t.Context(), rb, RunRequest{})
		if err == nil || res.Steps[1].Status != StatusFailed || !strings.Contains(res.Steps[1].Message, want) {
			t.Errorf("if %q: err %v, step %+v; want failed with %q", cond, err, res.Steps[1], want)
		}
	}
}

func TestContinueOnError(t *testing.T) {
	mk := func(cont bool) Runbook {
		return Runbook{Name: "c", Steps: []Step{
			{Name: "bad", ContinueOnError: cont, Query: &QueryAction{Expr: "broken"}},
			{Name: "next", Restart: &RestartAction{Instance: "i"}},
		}}
	}
	q := &fakeQuerier{err: map[string]error{"broken": errors.New("bad gateway")}}
	f := &fakes{q: q}
	res, err := newEngine(f, EngineOptions{}).Run(t.Context(), mk(true), RunRequest{})
	if err != nil || statuses(res) != "bad=failed next=ok" || res.Status != StatusOK {
		t.Errorf("continue_on_error: err %v, %s, run %s", err, statuses(res), res.Status)
	}
	f = &fakes{q: q}
	res, err = newEngine(f, EngineOptions{}).Run(t.Context(), mk(false), RunRequest{})
	if err == nil || statuses(res) != "bad=failed" || res.Status != StatusFailed || len(f.o.got()) != 0 {
		t.Errorf("stop on failure: err %v, %s, run %s", err, statuses(res), res.Status)
	}
	if !strings.Contains(err.Error(), `runbook c: step bad failed: query "broken": bad gateway`) {
		t.Errorf("error %v", err)
	}
}

func TestRunRefusesBadRequests(t *testing.T) {
	rb := step(Step{Name: "r", Restart: &RestartAction{Instance: "{{ .params.instance }}"}})
	rb.Params = []Param{{Name: "instance", Required: true}}
	e := newEngine(&fakes{}, EngineOptions{})
	if res, err := e.Run(t.Context(), rb, RunRequest{}); res != nil || err == nil || !strings.Contains(err.Error(), "param instance is required") {
		t.Errorf("missing param: %v, %v", res, err)
	}
	bad := step(Step{Name: "r"})
	if res, err := e.Run(t.Context(), bad, RunRequest{}); res != nil || err == nil || !strings.Contains(err.Error(), "needs exactly one action") {
		t.Errorf("invalid runbook: %v, %v", res, err)
	}
}

func TestStepTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakes{o: &fakeOrchestrator{replicas: map[string]int{}, block: true}}
		rb := step(Step{Name: "r", Timeout: 5 * time.Second, Restart: &RestartAction{Instance: "i"}})
		start := time.Now()
		res, err := newEngine(f, EngineOptions{}).Run(t.Context(), rb, RunRequest{})
		if err == nil || res.Steps[0].Status != StatusTimedOut || res.Status != StatusTimedOut {
			t.Fatalf("err %v, %s, run %s", err, statuses(res), res.Status)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("took %s, want 5s", d)
		}
		if !strings.Contains(res.Steps[0].Message, "step timed out after 5s") {
			t.Errorf("message %q", res.Steps[0].Message)
		}
		// The default step timeout is one minute.
		rb.Steps[0].Timeout = 0
		start = time.Now()
		newEngine(f, EngineOptions{}).Run(t.Context(), rb, RunRequest{})
		if d := time.Since(start); d != DefaultStepTimeout {
			t.Errorf("took %s, want %s", d, DefaultStepTimeout)
		}
	})
}

func TestRunbookTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rb := Runbook{Name: "slow", Timeout: 90 * time.Second, Steps: []Step{
			{Name: "w", ContinueOnError: true, WaitUntil: &WaitUntilAction{Expr: "never", Timeout: time.Minute, Interval: 10 * time.Second}},
			{Name: "w2", WaitUntil: &WaitUntilAction{Expr: "never", Timeout: time.Minute, Interval: 10 * time.Second}},
			{Name: "after", Notify: &NotifyAction{Message: "x"}},
		}}
		f := &fakes{}
		start := time.Now()
		res, err := newEngine(f, EngineOptions{}).Run(t.Context(), rb, RunRequest{})
		if err == nil || res.Status != StatusTimedOut || statuses(res) != "w=timed-out w2=timed-out" {
			t.Fatalf("err %v, %s, run %s", err, statuses(res), res.Status)
		}
		if d := time.Since(start); d != 90*time.Second {
			t.Errorf("took %s, want the runbook timeout 90s", d)
		}
		if !strings.Contains(res.Message, "runbook timeout 1m30s reached") {
			t.Errorf("message %q", res.Message)
		}
	})
}

func TestWaitUntilDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := &fakeQuerier{results: map[string][][]Sample{"ready": {nil, nil, one(1)}}, err: map[string]error{}}
		rb := step(Step{Name: "w", WaitUntil: &WaitUntilAction{Expr: "ready"}})
		start := time.Now()
		res, err := newEngine(&fakes{q: q}, EngineOptions{}).Run(t.Context(), rb, RunRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 2*DefaultWaitInterval {
			t.Errorf("took %s, want two intervals", d)
		}
		if res.Steps[0].Outputs["waited"] != 2.0 || res.Steps[0].Outputs["value"] != 1.0 {
			t.Errorf("outputs %v", res.Steps[0].Outputs)
		}
		// Errors while polling are retried and reported at the timeout.
		q2 := &fakeQuerier{err: map[string]error{"x": errors.New("tsdb down")}}
		rb = step(Step{Name: "w", WaitUntil: &WaitUntilAction{Expr: "x", Timeout: 3 * time.Second}})
		res, _ = newEngine(&fakes{q: q2}, EngineOptions{}).Run(t.Context(), rb, RunRequest{})
		if res.Steps[0].Status != StatusTimedOut || !strings.Contains(res.Steps[0].Message, "last error: tsdb down") || q2.count("x") != 3 {
			t.Errorf("%+v after %d polls", res.Steps[0], q2.count("x"))
		}
	})
}

func TestApprovals(t *testing.T) {
	rb := Runbook{Name: "risky", Timeout: time.Hour, Steps: []Step{
		{Name: "ask", Approve: &ApproveAction{Roles: []string{"platform-admin"}, Users: []string{"U123"}, Message: "fail over {{ .params.dc }}?"}},
		{Name: "go", Failover: &FailoverAction{Datacenter: "{{ .params.dc }}"}},
		{Name: "tell", Notify: &NotifyAction{Message: "approved by {{ .steps.ask.approved_by }}"}},
	}, Params: []Param{{Name: "dc", Type: ParamDatacenter, Default: "dc-a"}}}

	t.Run("granted", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a := newFakeApprover()
			f := &fakes{}
			go func() {
				req := <-a.requests
				if req.RunID != "run1" || req.Step != "ask" || req.Message != "fail over dc-a?" || !slices.Equal(req.Roles, []string{"platform-admin"}) || !slices.Equal(req.Users, []string{"U123"}) {
					t.Errorf("request %+v", req)
				}
				time.Sleep(3 * time.Minute) // a person reads the thread
				a.answers <- nil
			}()
			start := time.Now()
			res, err := newEngine(f, EngineOptions{Approver: a}).Run(t.Context(), rb, RunRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if time.Since(start) != 3*time.Minute || statuses(res) != "ask=ok go=ok tell=ok" {
				t.Errorf("%s after %s", statuses(res), time.Since(start))
			}
			if res.Steps[2].Outputs["message"] != "approved by alice" || !slices.Equal(f.o.got(), []string{"failover dc-a"}) {
				t.Errorf("outputs %v, calls %v", res.Steps[2].Outputs, f.o.got())
			}
		})
	})
	t.Run("denied", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a := newFakeApprover()
			a.answers <- fmt.Errorf("%w by carol: not during the sale", ErrDenied)
			f := &fakes{}
			res, err := newEngine(f, EngineOptions{Approver: a}).Run(t.Context(), rb, RunRequest{})
			if err == nil || res.Status != StatusDenied || statuses(res) != "ask=denied" || len(f.o.got()) != 0 {
				t.Fatalf("err %v, %s, run %s, calls %v", err, statuses(res), res.Status, f.o.got())
			}
			if !strings.Contains(res.Steps[0].Message, "approval denied by carol: not during the sale") {
				t.Errorf("message %q", res.Steps[0].Message)
			}
		})
	})
	t.Run("unanswered", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a := newFakeApprover()
			start := time.Now()
			res, err := newEngine(&fakes{}, EngineOptions{Approver: a}).Run(t.Context(), rb, RunRequest{})
			if err == nil || statuses(res) != "ask=timed-out" {
				t.Fatalf("err %v, %s", err, statuses(res))
			}
			if d := time.Since(start); d != DefaultApprovalTimeout {
				t.Errorf("waited %s, want %s", d, DefaultApprovalTimeout)
			}
		})
	})
	t.Run("dry run", func(t *testing.T) {
		res, err := newEngine(&fakes{}, EngineOptions{}).Run(t.Context(), rb, RunRequest{DryRun: true})
		if err != nil || statuses(res) != "ask=dry-run go=dry-run tell=dry-run" {
			t.Fatalf("err %v, %s", err, statuses(res))
		}
		if m := res.Steps[0].Message; m != "would ask platform-admin, U123 to approve: fail over dc-a?" {
			t.Errorf("message %q", m)
		}
	})
}

func TestCancelledRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		rb := step(Step{Name: "w", WaitUntil: &WaitUntilAction{Expr: "never", Timeout: 5 * time.Minute}})
		go func() {
			time.Sleep(10 * time.Second)
			cancel()
		}()
		start := time.Now()
		res, err := newEngine(&fakes{}, EngineOptions{}).Run(ctx, rb, RunRequest{})
		if res == nil || err == nil || res.Status != StatusCancelled || res.Steps[0].Status != StatusCancelled ||
			!strings.Contains(res.Steps[0].Message, "the run was stopped") {
			t.Fatalf("a cancelled run ended %+v, %v; want it cancelled, not timed out", res, err)
		}
		if d := time.Since(start); d != 10*time.Second {
			t.Errorf("the run ended after %s, want 10s (when cancelled)", d)
		}
	})
}

func TestRenderLimit(t *testing.T) {
	st := &stepRun{data: map[string]any{}}
	if _, err := st.render(`{{ printf "%0100000d" 1 }}`); err == nil || !strings.Contains(err.Error(), "renders more than 64 KiB") {
		t.Errorf("err = %v", err)
	}
	if s, err := st.render(`{{ printf "%05d" 1 }}`); err != nil || s != "00001" {
		t.Errorf("render = %q, %v", s, err)
	}
}

func TestRunCommand(t *testing.T) {
	out, code, err := runCommand(t.Context(), []string{"echo", "hello"})
	if err != nil || code != 0 || out != "hello\n" {
		t.Errorf("echo: %q, %d, %v", out, code, err)
	}
	if _, code, err := runCommand(t.Context(), []string{"false"}); err == nil || code != 1 {
		t.Errorf("false: %d, %v", code, err)
	}
}

func TestMitigating(t *testing.T) {
	for _, tc := range []struct {
		r    StepResult
		want bool
	}{
		{StepResult{Action: "scale", Status: StatusOK}, true},
		{StepResult{Action: "failover", Status: StatusOK}, true},
		{StepResult{Action: "scale", Status: StatusDryRun}, false},
		{StepResult{Action: "restart", Status: StatusFailed}, false},
		{StepResult{Action: "query", Status: StatusOK}, false},
		{StepResult{Action: "notify", Status: StatusOK}, false},
	} {
		if got := tc.r.Mitigating(); got != tc.want {
			t.Errorf("%+v: Mitigating() = %v, want %v", tc.r, got, tc.want)
		}
	}
}
