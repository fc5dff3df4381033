package runbooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/matcher/compat"
)

// waitGrace is added to a wait_until step's timeout for its step.
const waitGrace = 10 * time.Second

// maxOutput bounds the text outputs kept from http and exec steps.
const maxOutput = 4 << 10

// errTemplate marks a template that could not be rendered.
var errTemplate = errors.New("template")

// errWaitTimedOut ends a wait_until step whose condition never held.
var errWaitTimedOut = errors.New("condition did not hold in time")

// stepRun is one step being executed.
type stepRun struct {
	run   *RunResult
	step  *Step
	later []Step // the runbook's steps after this one
	// serviceParams name the runbook's params of type service.
	serviceParams []string
	data          map[string]any
	dryRun        bool
	why           string
}

// render executes a template of the step over the run's data.
func (sr *stepRun) render(text string) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	t, err := newTemplate(text)
	if err != nil {
		return "", fmt.Errorf("%w %q: %v", errTemplate, clip(text), err)
	}
	b := &limitedBuilder{max: maxRendered}
	if err := t.Execute(b, sr.data); err != nil {
		return "", fmt.Errorf("%w %q: %v", errTemplate, clip(text), err)
	}
	return b.String(), nil
}

// maxRendered bounds what one template may produce.
const maxRendered = 64 << 10

// limitedBuilder is a strings.Builder that fails past max bytes, which
// stops a template's execution.
type limitedBuilder struct {
	strings.Builder
	max int
}

func (b *limitedBuilder) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, fmt.Errorf("the template renders more than %d KiB", b.max>>10)
	}
	return b.Builder.Write(p)
}

// renderAll renders each text in order.
func (sr *stepRun) renderAll(texts []string) ([]string, error) {
	out := make([]string, len(texts))
	for i, t := range texts {
		s, err := sr.render(t)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// stepTimeout is how long s may run.
func stepTimeout(s *Step) time.Duration {
	switch {
	case s.Timeout > 0:
		return s.Timeout
	case s.WaitUntil != nil && s.WaitUntil.Timeout > 0:
		// A little over the wait's own timeout, so that the wait ends
		// first and says what it was waiting for.
		return s.WaitUntil.Timeout + waitGrace
	case s.Approve != nil:
		return DefaultApprovalTimeout
	}
	return DefaultStepTimeout
}

// runStep evaluates the step's condition and runs its action.
func (e *Engine) runStep(ctx context.Context, run *RunResult, rb *Runbook, i int, data map[string]any) (res StepResult) {
	s := &rb.Steps[i]
	res = StepResult{Name: s.Name, Action: s.Action(), Started: time.Now()}
	defer func() { res.Ended = time.Now() }()
	st := &stepRun{
		run:    run,
		step:   s,
		later:  rb.Steps[i+1:],
		data:   data,
		dryRun: run.DryRun,
		why:    fmt.Sprintf("runbook %s step %s: %s", run.Runbook, s.Name, orDefault(run.Why, "no reason given")),
	}
	for _, p := range rb.Params {
		if p.Type == ParamService {
			st.serviceParams = append(st.serviceParams, p.Name)
		}
	}
	readOnly := s.Query != nil || s.Logs != nil

	if s.If != "" {
		cond, err := st.render(s.If)
		switch c := strings.TrimSpace(cond); {
		case err != nil && st.dryRun && !readOnly:
			res.Status, res.Message = StatusDryRun, "condition not evaluated in a dry run: "+err.Error()
			return res
		case err != nil:
			res.Status, res.Message = StatusFailed, "condition: "+err.Error()
			return res
		case c == "false":
			res.Status, res.Message = StatusSkipped, "condition is false"
			return res
		case c != "true":
			res.Status, res.Message = StatusFailed, fmt.Sprintf("condition rendered %q; it must render true or false, e.g. '{{ gt .steps.errors.value 0.01 }}'", clip(c))
			return res
		}
	}

	timeout := stepTimeout(s)
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	outputs, msg, err := e.act(sctx, st)
	res.Outputs, res.Message = outputs, msg
	if s.Query != nil && s.Query.Graph {
		res.Graph = s.Query.Expr
		if expr, err := st.render(s.Query.Expr); err == nil {
			res.Graph = expr
		}
	}
	switch {
	case err == nil && st.dryRun && !readOnly:
		res.Status = StatusDryRun
	case st.dryRun && !readOnly && errors.Is(err, errTemplate):
		// Earlier steps did not run, so their outputs are missing.
		res.Status, res.Message = StatusDryRun, "would run; not rendered in a dry run: "+err.Error()
	case err == nil:
		res.Status = StatusOK
	case errors.Is(err, ErrDenied):
		res.Status, res.Message = StatusDenied, err.Error()
	case errors.Is(err, errWaitTimedOut):
		res.Status, res.Message = StatusTimedOut, err.Error()
	case errors.Is(sctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		res.Status, res.Message = StatusTimedOut, fmt.Sprintf("step timed out after %s: %v", timeout, err)
	case errors.Is(ctx.Err(), context.Canceled):
		res.Status, res.Message = StatusCancelled, fmt.Sprintf("the run was stopped (the control plane is shutting down or lost its leadership): %v", err)
	case ctx.Err() != nil:
		res.Status, res.Message = StatusTimedOut, err.Error()
	default:
		res.Status, res.Message = StatusFailed, err.Error()
	}
	return res
}

// act dispatches to the step's action.
func (e *Engine) act(ctx context.Context, st *stepRun) (map[string]any, string, error) {
	s := st.step
	switch {
	case s.Query != nil:
		return e.query(ctx, st)
	case s.Logs != nil:
		return e.logs(ctx, st)
	case s.Scale != nil:
		return e.scale(ctx, st)
	case s.Restart != nil:
		return e.orchestrate(ctx, st, "restart instance", s.Restart.Instance, func(o Orchestrator, target string) error {
			return o.RestartInstance(ctx, target, st.run.Who, st.why)
		})
	case s.Drain != nil:
		return e.orchestrate(ctx, st, "drain node", s.Drain.Node, func(o Orchestrator, target string) error {
			return o.DrainNode(ctx, target, st.run.Who, st.why)
		})
	case s.RolloutUndo != nil:
		return e.orchestrate(ctx, st, "roll back service", s.RolloutUndo.Service, func(o Orchestrator, target string) error {
			return o.RollbackService(ctx, target, st.run.Who, st.why)
		})
	case s.Failover != nil:
		return e.orchestrate(ctx, st, "fail over datacenter", s.Failover.Datacenter, func(o Orchestrator, target string) error {
			return o.Failover(ctx, target, st.run.Who, st.why)
		})
	case s.Silence != nil:
		return e.silence(ctx, st)
	case s.HTTP != nil:
		return e.http(ctx, st)
	case s.WaitUntil != nil:
		return e.waitUntil(ctx, st)
	case s.Approve != nil:
		return e.approve(ctx, st)
	case s.Notify != nil:
		return e.notify(ctx, st)
	case s.Exec != nil:
		return e.exec(ctx, st)
	}
	return nil, "", errors.New("the step has no action")
}

func (e *Engine) query(ctx context.Context, st *stepRun) (map[string]any, string, error) {
	if e.o.Querier == nil {
		return nil, "", errors.New("no metrics querier is configured")
	}
	expr, err := st.render(st.step.Query.Expr)
	if err != nil {
		return nil, "", err
	}
	samples, err := e.o.Querier.Query(ctx, expr)
	if err != nil {
		return nil, "", fmt.Errorf("query %q: %w", clip(expr), err)
	}
	out := sampleOutputs(samples)
	if len(samples) == 0 {
		return out, "no series", nil
	}
	return out, fmt.Sprintf("%s (%d series)", formatValue(samples[0].Value), len(samples)), nil
}

// sampleOutputs are a query's outputs: series, and value when not empty.
func sampleOutputs(samples []Sample) map[string]any {
	out := map[string]any{"series": len(samples)}
	if len(samples) > 0 {
		out["value"] = samples[0].Value
	}
	return out
}

func formatValue(v float64) string { return fmt.Sprintf("%.6g", v) }

func (e *Engine) logs(ctx context.Context, st *stepRun) (map[string]any, string, error) {
	if e.o.Logs == nil {
		return nil, "", errors.New("no log store is configured")
	}
	q, err := st.render(st.step.Logs.Query)
	if err != nil {
		return nil, "", err
	}
	limit := st.step.Logs.Limit
	if limit <= 0 {
		limit = DefaultLogsLimit
	}
	lines, err := e.o.Logs.Search(ctx, q, limit)
	if err != nil {
		return nil, "", fmt.Errorf("logs %q: %w", clip(q), err)
	}
	if len(lines) > limit {
		lines = lines[len(lines)-limit:]
	}
	return map[string]any{"lines": lines, "count": len(lines)}, fmt.Sprintf("%d lines", len(lines)), nil
}

func (e *Engine) scale(ctx context.Context, st *stepRun) (map[string]any, string, error) {
	sc := st.step.Scale
	service, err := st.render(sc.Service)
	if err != nil {
		return nil, "", err
	}
	if !validName(service) {
		return nil, "", fmt.Errorf("scale: %q is not a service name", clip(service))
	}
	if e.o.Orchestrator == nil {
		if st.dryRun {
			return nil, "would scale " + service + " (no orchestrator to read its replicas)", nil
		}
		return nil, "", errors.New("no orchestrator is configured")
	}
	current, err := e.o.Orchestrator.Replicas(ctx, service)
	if err != nil {
		return nil, "", fmt.Errorf("read replicas of %s: %w", service, err)
	}
	want, err := desiredReplicas(sc, current, st.render)
	if err != nil {
		return nil, "", err
	}
	out := map[string]any{"previous": current, "replicas": want}
	switch {
	case st.dryRun:
		return out, fmt.Sprintf("would scale %s from %d to %d replicas", service, current, want), nil
	case want == current:
		return out, fmt.Sprintf("%s already runs %d replicas", service, current), nil
	}
	if err := e.o.Orchestrator.Scale(ctx, service, want, st.run.Who, st.why); err != nil {
		return nil, "", fmt.Errorf("scale %s to %d: %w", service, want, err)
	}
	return out, fmt.Sprintf("scaled %s from %d to %d replicas", service, current, want), nil
}

// desiredReplicas applies the scale action to the current count, capped at
// Max (when set) and never below zero. Templated numbers are rendered
// first; an error names the field.
func desiredReplicas(sc *ScaleAction, current int, render func(string) (string, error)) (int, error) {
	want := current
	var err error
	switch {
	case sc.Replicas != nil:
		if want, err = sc.Replicas.integer(render); err != nil {
			return 0, fmt.Errorf("scale.replicas: %w", err)
		}
		if want < 0 {
			return 0, fmt.Errorf("scale.replicas: %d is negative", want)
		}
	case sc.Add != nil:
		add, err := sc.Add.integer(render)
		if err != nil {
			return 0, fmt.Errorf("scale.add: %w", err)
		}
		want = current + add
	case sc.Multiply != nil:
		m, err := sc.Multiply.value(render)
		if err != nil {
			return 0, fmt.Errorf("scale.multiply: %w", err)
		}
		if !(m > 0) {
			return 0, fmt.Errorf("scale.multiply: %g is not a positive factor", m)
		}
		want = int(min(math.Ceil(float64(current)*m), math.MaxInt32))
	}
	if sc.Max != nil {
		limit, err := sc.Max.integer(render)
		if err != nil {
			return 0, fmt.Errorf("scale.max: %w", err)
		}
		if limit > 0 && want > limit {
			want = limit
		}
	}
	return max(want, 0), nil
}

// orchestrate runs one single-target orchestrator action.
func (e *Engine) orchestrate(_ context.Context, st *stepRun, what, target string, do func(Orchestrator, string) error) (map[string]any, string, error) {
	t, err := st.render(target)
	if err != nil {
		return nil, "", err
	}
	if st.dryRun {
		return nil, fmt.Sprintf("would %s %s", what, t), nil
	}
	if e.o.Orchestrator == nil {
		return nil, "", errors.New("no orchestrator is configured")
	}
	if err := do(e.o.Orchestrator, t); err != nil {
		return nil, "", fmt.Errorf("%s %s: %w", what, t, err)
	}
	return nil, fmt.Sprintf("%s %s: done", what, t), nil
}

func (e *Engine) silence(ctx context.Context, st *stepRun) (map[string]any, string, error) {
	a := st.step.Silence
	ms, err := st.renderAll(a.Matchers)
	if err != nil {
		return nil, "", err
	}
	for _, m := range ms {
		if _, err := compat.Matchers(m, "runbook"); err != nil {
			return nil, "", fmt.Errorf("silence matcher %q: %w", clip(m), err)
		}
	}
	comment, err := st.render(a.Comment)
	if err != nil {
		return nil, "", err
	}
	d := a.Duration
	if d <= 0 {
		d = DefaultSilenceDuration
	}
	why := st.why
	if comment != "" {
		why = comment + " (" + st.why + ")"
	}
	if st.dryRun {
		return nil, fmt.Sprintf("would silence %s for %s", strings.Join(ms, ", "), d), nil
	}
	if e.o.Silencer == nil {
		return nil, "", errors.New("no silencer is configured")
	}
	id, err := e.o.Silencer.Silence(ctx, ms, d, st.run.Who, why)
	if err != nil {
		return nil, "", fmt.Errorf("silence %s: %w", strings.Join(ms, ", "), err)
	}
	return map[string]any{"id": id}, fmt.Sprintf("silenced %s for %s (id %s)", strings.Join(ms, ", "), d, id), nil
}

func (e *Engine) http(ctx context.Context, st *stepRun) (map[string]any, string, error) {
	a := st.step.HTTP
	url, err := st.render(a.URL)
	if err != nil {
		return nil, "", err
	}
	body, err := st.render(a.Body)
	if err != nil {
		return nil, "", err
	}
	method := orDefault(a.Method, http.MethodGet)
	if st.dryRun {
		return nil, fmt.Sprintf("would send %s %s", method, url), nil
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, "", fmt.Errorf("http %s %s: %w", method, url, err)
	}
	resp, err := e.o.HTTP.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("http %s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxOutput))
	out := map[string]any{"status": resp.StatusCode, "body": string(b)}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if a.ExpectStatus != 0 {
		ok = resp.StatusCode == a.ExpectStatus
	}
	msg := fmt.Sprintf("%s %s: %d", method, url, resp.StatusCode)
	if !ok {
		want := "2xx"
		if a.ExpectStatus != 0 {
			want = fmt.Sprint(a.ExpectStatus)
		}
		return out, msg, fmt.Errorf("%s %s answered %d, want %s: %s", method, url, resp.StatusCode, want, clip(oneLine(string(b))))
	}
	return out, msg, nil
}

func (e *Engine) waitUntil(ctx context.Context, st *stepRun) (map[string]any, string, error) {
	if e.o.Querier == nil {
		return nil, "", errors.New("no metrics querier is configured")
	}
	a := st.step.WaitUntil
	expr, err := st.render(a.Expr)
	if err != nil {
		return nil, "", err
	}
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = stepTimeout(st.step)
	}
	if st.step.Timeout > 0 {
		timeout = min(timeout, st.step.Timeout)
	}
	interval := a.Interval
	if interval <= 0 {
		interval = DefaultWaitInterval
	}
	if st.dryRun {
		return nil, fmt.Sprintf("would wait up to %s until %s returns a result", timeout, clip(expr)), nil
	}
	// The deadline is checked against the clock rather than raced against
	// a context, so the last poll is always before it.
	start := time.Now()
	deadline := start.Add(timeout)
	var lastErr error
	for {
		samples, err := e.o.Querier.Query(ctx, expr)
		if err == nil && len(samples) > 0 {
			out := sampleOutputs(samples)
			waited := time.Since(start)
			out["waited"] = waited.Seconds()
			return out, fmt.Sprintf("condition held after %s (%s)", waited.Round(time.Millisecond), formatValue(samples[0].Value)), nil
		}
		if err != nil {
			lastErr = err
		}
		left := time.Until(deadline)
		if left > 0 {
			t := time.NewTimer(min(interval, left))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, "", fmt.Errorf("waiting for %s: %w", clip(expr), ctx.Err())
			case <-t.C:
			}
		}
		if time.Now().Before(deadline) {
			continue
		}
		last := ""
		if lastErr != nil {
			last = fmt.Sprintf(" (last error: %v)", lastErr)
		}
		out := map[string]any{"series": 0, "waited": time.Since(start).Seconds()}
		return out, "", fmt.Errorf("%w: %s returned no result within %s%s", errWaitTimedOut, clip(expr), timeout, last)
	}
}

func (e *Engine) approve(ctx context.Context, st *stepRun) (map[string]any, string, error) {
	a := st.step.Approve
	msg, err := st.render(a.Message)
	if err != nil {
		return nil, "", err
	}
	if msg == "" {
		msg = fmt.Sprintf("runbook %s asks to continue after step %s", st.run.Runbook, st.step.Name)
	}
	who := strings.Join(append(append([]string(nil), a.Roles...), a.Users...), ", ")
	if st.dryRun {
		return nil, fmt.Sprintf("would ask %s to approve: %s", who, msg), nil
	}
	if e.o.Approver == nil {
		return nil, "", errors.New("no approver is configured (chat bot)")
	}
	by, err := e.o.Approver.RequestApproval(ctx, Approval{
		RunID: st.run.RunID, Runbook: st.run.Runbook, Step: st.step.Name,
		Message: msg, Roles: a.Roles, Users: a.Users, Services: st.services(ctx, e.o.Orchestrator),
	})
	if err != nil {
		if errors.Is(err, ErrDenied) {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("approval: %w", err)
	}
	return map[string]any{"approved_by": by}, "approved by " + by, nil
}

// services are the services the run acts on from this step on, for
// binding its approval to their tenants: the targets of its later scale,
// rollout_undo, restart (the instance's service) and silence (a pinned
// service label) steps, its service params and the alert's service label;
// sorted, without duplicates. It is nil, which makes the approval
// platform-wide, when a later step acts beyond one tenant's services
// (drain, failover, exec, http, a silence that pins no service) or its
// target cannot be told yet (a template over a later step's output, an
// unknown instance).
func (sr *stepRun) services(ctx context.Context, o Orchestrator) []string {
	var out []string
	add := func(text string) bool {
		name, err := sr.render(text)
		if err != nil || !validName(name) {
			return false
		}
		out = append(out, name)
		return true
	}
	for i := range sr.later {
		ok := true
		switch s := &sr.later[i]; {
		case s.Scale != nil:
			ok = add(s.Scale.Service)
		case s.RolloutUndo != nil:
			ok = add(s.RolloutUndo.Service)
		case s.Restart != nil:
			inst, err := sr.render(s.Restart.Instance)
			ok = err == nil && o != nil
			if ok {
				svc, err := o.InstanceService(ctx, inst)
				ok = err == nil && add(svc)
			}
		case s.Silence != nil:
			ms, err := sr.renderAll(s.Silence.Matchers)
			ok = err == nil && add(silencedService(ms))
		case s.Drain != nil, s.Failover != nil, s.Exec != nil, s.HTTP != nil:
			ok = false
		}
		if !ok {
			return nil
		}
	}
	if ps, ok := sr.data["params"].(map[string]any); ok {
		for _, p := range sr.serviceParams {
			if v, ok := ps[p].(string); ok && validName(v) {
				out = append(out, v)
			}
		}
	}
	if a, ok := sr.data["alert"].(map[string]any); ok {
		if ls, ok := a["labels"].(map[string]string); ok && validName(ls["service"]) {
			out = append(out, ls["service"])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (e *Engine) notify(ctx context.Context, st *stepRun) (map[string]any, string, error) {
	msg, err := st.render(st.step.Notify.Message)
	if err != nil {
		return nil, "", err
	}
	out := map[string]any{"message": msg}
	if st.dryRun {
		return out, "would post: " + clip(oneLine(msg)), nil
	}
	if e.o.Notifier == nil {
		return nil, "", errors.New("no notifier is configured")
	}
	if err := e.o.Notifier.Post(ctx, st.run.RunID, msg); err != nil {
		return nil, "", fmt.Errorf("post: %w", err)
	}
	return out, "posted: " + clip(oneLine(msg)), nil
}

func (e *Engine) exec(ctx context.Context, st *stepRun) (map[string]any, string, error) {
	if !e.o.AllowExec {
		return nil, "", errors.New("exec steps are disabled; an administrator enables them in the runbooks configuration (allow_exec: true)")
	}
	argv, err := st.renderAll(st.step.Exec.Command)
	if err != nil {
		return nil, "", err
	}
	if st.dryRun {
		return nil, "would run " + strings.Join(argv, " "), nil
	}
	output, code, err := e.o.Exec(ctx, argv)
	if len(output) > maxOutput {
		output = output[len(output)-maxOutput:]
	}
	out := map[string]any{"output": output, "exit_code": code}
	if err != nil {
		return out, "", fmt.Errorf("exec %s: %w", argv[0], err)
	}
	return out, fmt.Sprintf("%s exited 0", argv[0]), nil
}

// runCommand is the default Executor: the program itself, no shell.
func runCommand(ctx context.Context, argv []string) (string, int, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	return b.String(), code, err
}
