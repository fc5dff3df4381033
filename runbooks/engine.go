package runbooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Sample is one series of an instant query's result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Querier runs instant MetricsQL queries (the TSDB).
type Querier interface {
	Query(ctx context.Context, expr string) ([]Sample, error)
}

// LogSearcher returns the last limit log lines matching a LogsQL query,
// newest last.
type LogSearcher interface {
	Search(ctx context.Context, query string, limit int) ([]string, error)
}

// Orchestrator is what runbook steps change. who and why go to its audit
// trail.
type Orchestrator interface {
	Replicas(ctx context.Context, service string) (int, error)
	Scale(ctx context.Context, service string, replicas int, who, why string) error
	RestartInstance(ctx context.Context, instance, who, why string) error
	DrainNode(ctx context.Context, node, who, why string) error
	RollbackService(ctx context.Context, service, who, why string) error
	Failover(ctx context.Context, datacenter, who, why string) error
	// InstanceService is the service an instance belongs to.
	InstanceService(ctx context.Context, instance string) (string, error)
}

// Silencer creates alert silences and returns the silence id.
type Silencer interface {
	Silence(ctx context.Context, matchers []string, d time.Duration, who, why string) (string, error)
}

// Notifier posts in a run's incident thread.
type Notifier interface {
	Post(ctx context.Context, runID, text string) error
}

// Approval is a request for a person to approve a step.
type Approval struct {
	RunID   string   `json:"run_id"`
	Runbook string   `json:"runbook"`
	Step    string   `json:"step"`
	Message string   `json:"message"`
	Roles   []string `json:"roles,omitempty"`
	Users   []string `json:"users,omitempty"`
	// Services are those the run acts on from the approval on (see
	// stepRun.services); approvers scoped to tenants must cover their
	// tenants. Empty: the run acts beyond one tenant's services
	// (platform-wide).
	Services []string `json:"services,omitempty"`
}

// Approver asks for approval and blocks until someone approves (it returns
// who), denies (an error wrapping ErrDenied) or ctx is done.
type Approver interface {
	RequestApproval(ctx context.Context, a Approval) (approvedBy string, err error)
}

// HTTPDoer sends http steps' requests; *http.Client implements it.
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// Executor runs an exec step's command and returns its combined output.
type Executor func(ctx context.Context, argv []string) (output string, exitCode int, err error)

// Recorder receives every step result as it ends, for the audit trail.
type Recorder func(run *RunResult, step StepResult)

// ErrDenied is wrapped by an Approver's error when a person denied.
var ErrDenied = errors.New("approval denied")

// Step and run statuses.
const (
	StatusOK       = "ok"
	StatusFailed   = "failed"
	StatusSkipped  = "skipped"
	StatusDryRun   = "dry-run"
	StatusTimedOut = "timed-out"
	StatusDenied   = "denied"
	// StatusCancelled: the run was stopped from outside (the control
	// plane shutting down or losing its leadership), not by a timeout.
	StatusCancelled = "cancelled"
)

// EngineOptions are the engine's collaborators. A nil collaborator makes
// the steps that need it fail with an error saying so.
type EngineOptions struct {
	Querier      Querier
	Logs         LogSearcher
	Orchestrator Orchestrator
	Silencer     Silencer
	Notifier     Notifier
	Approver     Approver
	// HTTP sends http steps (default: a client with a 30 s timeout).
	HTTP HTTPDoer
	// Recorder, if set, gets every step result (audit).
	Recorder Recorder
	// AllowExec enables exec steps; an administrator's choice.
	AllowExec bool
	// Exec runs exec steps (default: os/exec, no shell).
	Exec Executor
	// NewRunID makes run ids (default: 12 random hex digits).
	NewRunID func() string
}

// Engine runs runbooks. It is safe for concurrent runs.
type Engine struct {
	o EngineOptions
}

// NewEngine returns an engine over o's collaborators.
func NewEngine(o EngineOptions) *Engine {
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Exec == nil {
		o.Exec = runCommand
	}
	if o.NewRunID == nil {
		o.NewRunID = randomID
	}
	return &Engine{o: o}
}

// AlertInput is the alert that started a run.
type AlertInput struct {
	Labels      map[string]string
	Annotations map[string]string
}

// RunRequest starts a run: params as typed in chat (k=v), the alert if
// one triggered it, who started it and why.
type RunRequest struct {
	Params map[string]string
	Alert  *AlertInput
	Who    string
	Why    string
	DryRun bool
	// RunID, if set, is used instead of a new id (an incident's id).
	RunID string
}

// StepResult is what one step did.
type StepResult struct {
	Name    string         `json:"name"`
	Action  string         `json:"action"`
	Status  string         `json:"status"`
	Outputs map[string]any `json:"outputs,omitempty"`
	Message string         `json:"message,omitempty"`
	// Graph is the expression a query step asks to be graphed.
	Graph   string    `json:"graph,omitempty"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`
	Who     string    `json:"who"`
}

// Mitigating reports whether the step changed the running system (scale,
// restart, drain, rollout_undo, failover, exec) successfully: what an
// incident records as mitigation.
func (r StepResult) Mitigating() bool {
	if r.Status != StatusOK {
		return false
	}
	switch r.Action {
	case "scale", "restart", "drain", "rollout_undo", "failover", "exec":
		return true
	}
	return false
}

// RunResult is what a run did.
type RunResult struct {
	RunID   string         `json:"run_id"`
	Runbook string         `json:"runbook"`
	Who     string         `json:"who"`
	Why     string         `json:"why,omitempty"`
	DryRun  bool           `json:"dry_run,omitempty"`
	Params  map[string]any `json:"params,omitempty"`
	Status  string         `json:"status"`
	Message string         `json:"message,omitempty"`
	Started time.Time      `json:"started"`
	Ended   time.Time      `json:"ended"`
	Steps   []StepResult   `json:"steps"`
}

// Run runs rb's steps in order. It returns an error without a result when
// the runbook is invalid or the params are wrong. Otherwise the result
// holds every step; the error is non-nil when the run did not end ok
// (a step failed, timed out or was denied, or the runbook timed out).
func (e *Engine) Run(ctx context.Context, rb Runbook, req RunRequest) (*RunResult, error) {
	if ps := rb.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("runbook %q is invalid: %s: %s", rb.Name, ps[0].Field, ps[0].Msg)
	}
	params, err := typedParams(rb, req.Params)
	if err != nil {
		return nil, fmt.Errorf("runbook %s: %w", rb.Name, err)
	}
	who := fmt.Sprintf("runbook:%s (started by %s)", rb.Name, orDefault(req.Who, "unknown"))
	run := &RunResult{
		RunID:   orDefault(req.RunID, e.o.NewRunID()),
		Runbook: rb.Name,
		Who:     who,
		Why:     req.Why,
		DryRun:  rb.DryRun || req.DryRun,
		Params:  params,
		Started: time.Now(),
	}
	timeout := rb.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	mode := ""
	if run.DryRun {
		mode = " (dry run)"
	}
	e.post(ctx, run, fmt.Sprintf("runbook %s started%s by %s: %d steps", rb.Name, mode, orDefault(req.Who, "unknown"), len(rb.Steps)))

	data := map[string]any{
		"params": params,
		"steps":  map[string]any{},
		"alert":  alertData(req.Alert),
		"run":    map[string]any{"id": run.RunID, "who": who, "dry_run": run.DryRun},
	}
	run.Status = StatusOK
	for i := range rb.Steps {
		s := &rb.Steps[i]
		if ctx.Err() != nil {
			run.Status = StatusCancelled
			run.Message = fmt.Sprintf("the run was cancelled before step %s: %v", s.Name, context.Cause(ctx))
			break
		}
		if runCtx.Err() != nil {
			run.Status = StatusTimedOut
			run.Message = fmt.Sprintf("runbook timed out after %s before step %s", timeout, s.Name)
			break
		}
		sr := e.runStep(runCtx, run, &rb, i, data)
		if runCtx.Err() != nil && ctx.Err() == nil && (sr.Status == StatusFailed || sr.Status == StatusTimedOut) {
			sr.Status = StatusTimedOut
			sr.Message = fmt.Sprintf("runbook timeout %s reached: %s", timeout, sr.Message)
		}
		sr.Who = who
		run.Steps = append(run.Steps, sr)
		if sr.Outputs != nil {
			data["steps"].(map[string]any)[s.Name] = sr.Outputs
		}
		if e.o.Recorder != nil {
			e.o.Recorder(run, sr)
		}
		if sr.Action != "notify" || sr.Status != StatusOK {
			e.post(ctx, run, summary(sr)) // a notify step's post is its own summary
		}
		switch sr.Status {
		case StatusOK, StatusSkipped, StatusDryRun:
			continue
		}
		if s.ContinueOnError && runCtx.Err() == nil {
			continue
		}
		run.Status = sr.Status
		if runCtx.Err() != nil && ctx.Err() == nil {
			run.Status = StatusTimedOut
		}
		run.Message = fmt.Sprintf("step %s %s: %s", s.Name, sr.Status, sr.Message)
		break
	}
	run.Ended = time.Now()
	e.post(ctx, run, fmt.Sprintf("runbook %s %s in %s%s", rb.Name, run.Status, run.Ended.Sub(run.Started).Round(time.Millisecond), suffix(run.Message)))
	if run.Status != StatusOK {
		return run, fmt.Errorf("runbook %s: %s", rb.Name, run.Message)
	}
	return run, nil
}

// post writes to the incident thread; a chat outage must not stop a
// mitigation, so failures are ignored (the Recorder keeps the audit).
func (e *Engine) post(ctx context.Context, run *RunResult, text string) {
	if e.o.Notifier == nil {
		return
	}
	_ = e.o.Notifier.Post(context.WithoutCancel(ctx), run.RunID, text)
}

// summary is a step result in one line.
func summary(sr StepResult) string {
	return fmt.Sprintf("[%s] %s (%s)%s", sr.Status, sr.Name, sr.Action, suffix(oneLine(sr.Message)))
}

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// typedParams converts the given params to their types, applies defaults
// and reports missing required and unknown params.
func typedParams(rb Runbook, given map[string]string) (map[string]any, error) {
	out := make(map[string]any, len(rb.Params))
	known := make(map[string]bool, len(rb.Params))
	for _, p := range rb.Params {
		known[p.Name] = true
		s, ok := given[p.Name]
		if !ok || s == "" {
			if p.Required {
				return nil, fmt.Errorf("param %s is required; give it as %s=VALUE%s", p.Name, p.Name, describeParam(p))
			}
			if p.Default == "" {
				out[p.Name] = zeroParam(p.Type)
				continue
			}
			s = p.Default
		}
		v, err := convertParam(p, s)
		if err != nil {
			return nil, err
		}
		out[p.Name] = v
	}
	for k := range given {
		if !known[k] {
			names := make([]string, 0, len(rb.Params))
			for _, p := range rb.Params {
				names = append(names, p.Name)
			}
			return nil, fmt.Errorf("unknown param %q; this runbook takes: %s", clip(k), orDefault(strings.Join(names, ", "), "no params"))
		}
	}
	return out, nil
}

func describeParam(p Param) string {
	if p.Description == "" {
		return ""
	}
	return " (" + p.Description + ")"
}

func zeroParam(t string) any {
	switch t {
	case ParamInt:
		return int64(0)
	case ParamFloat:
		return 0.0
	case ParamDuration:
		return time.Duration(0)
	case ParamBool:
		return false
	}
	return ""
}

func alertData(a *AlertInput) map[string]any {
	if a == nil {
		return map[string]any{}
	}
	return map[string]any{"labels": a.Labels, "annotations": a.Annotations}
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
