package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slack-go/slack"

	"opspilot/alerting"
	"opspilot/api"
	"opspilot/examples/runbooks"
	"opspilot/orchestrator/control"
	omodel "opspilot/orchestrator/model"
	"opspilot/orchestrator/store"
	rb "opspilot/runbooks"
)

// runbookRunner runs the runbooks stored with `opspilot apply`: the ones
// whose trigger matches an alert that opens an incident (auto: true), and
// the ones people start from chat. Each step goes on the incident's
// timeline (a scale or other change marks it mitigated) and is printed on
// the console.
type runbookRunner struct {
	orch      *orchestrator
	alerts    *alertingStack
	engine    *rb.Engine
	incidents *rb.IncidentService
	log       *slog.Logger
	ctx       context.Context // the server's, or stop's: runs end with it
	cancel    context.CancelFunc

	console io.Writer // serialized by serve
	wg      sync.WaitGroup
	// logsURL is the log store's base URL, once it runs.
	logsURL atomic.Pointer[string]
}

func newRunbookRunner(ctx context.Context, allowExec bool, orch *orchestrator, q *lateTSDB, alerts *alertingStack, incidents *rb.IncidentService, approver rb.Approver, console io.Writer, log *slog.Logger) *runbookRunner {
	r := &runbookRunner{orch: orch, alerts: alerts, incidents: incidents, log: log, console: console}
	r.ctx, r.cancel = context.WithCancel(ctx)
	r.engine = rb.NewEngine(rb.EngineOptions{
		Querier:      runbookQuerier{q},
		Orchestrator: newRunbookOrchestrator(orch),
		Logs:         runbookLogs{url: &r.logsURL},
		Silencer:     runbookSilencer{alerts},
		Notifier:     r,
		Approver:     approver,
		Recorder:     r.record,
		AllowExec:    allowExec,
	})
	return r
}

// Post implements rb.Notifier: the run's lines on the console and, for a
// run an incident started, in the thread of its Slack alert message.
func (r *runbookRunner) Post(ctx context.Context, runID, text string) error {
	_, err := fmt.Fprintf(r.console, "%s [runbook %s] %s\n", time.Now().UTC().Format("15:04:05.000"), runID, text)
	if inc, ok := r.incidents.Tracker().Get(runID); ok && inc.GroupKey != "" {
		if _, perr := r.alerts.pipeline.PostInThread(ctx, inc.GroupKey, text); perr != nil {
			r.log.Warn("runbook: posting in the incident's Slack thread failed", "run", runID, "err", perr)
		}
	}
	return err
}

// record puts each step on the incident's timeline (the run id is the
// incident's id when an incident started it).
func (r *runbookRunner) record(run *rb.RunResult, s rb.StepResult) {
	msg := fmt.Sprintf("%s: %s %s", s.Name, s.Action, s.Status)
	if s.Message != "" {
		msg += ": " + s.Message
	}
	r.incidents.StepDone(run.RunID, s.Ended, s.Who, msg, s.Mitigating())
	if s.Graph != "" {
		// A query step that asks for a graph: in the incident's thread.
		if inc, ok := r.incidents.Tracker().Get(run.RunID); ok && inc.GroupKey != "" {
			if _, err := r.alerts.pipeline.PostGraphInThread(r.ctx, inc.GroupKey, run.Runbook+" "+s.Name, s.Graph); err != nil {
				r.log.Warn("runbook: the step's graph was not posted", "run", run.RunID, "step", s.Name, "err", err)
			}
		}
	}
	// The audit trail: every step with who, why and the result.
	typ := control.EventNormal
	if s.Status != rb.StatusOK && s.Status != rb.StatusSkipped && s.Status != rb.StatusDryRun {
		typ = control.EventWarning
	}
	r.orch.ctrl.Events().Record(r.ctx, control.Event{Type: typ, Kind: "runbook", Object: run.Runbook, Reason: "RunbookStep",
		Message: "run " + run.RunID + ": " + msg, Who: s.Who, Why: run.Why})
}

// list returns the stored runbooks.
func (r *runbookRunner) list(ctx context.Context) ([]rb.Runbook, error) {
	out, err := listValues[rb.Runbook](ctx, r.orch.st, control.KindRunbook)
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// incidentOpened starts the automatic runbooks whose trigger matches the
// alert that opened inc.
func (r *runbookRunner) incidentOpened(inc *rb.Incident, ev alerting.Event) {
	books, err := r.list(r.ctx)
	if err != nil {
		r.log.Warn("runbooks: cannot list runbooks for a new incident", "incident", inc.ID, "err", err)
		return
	}
	for _, b := range books {
		if !b.Trigger.Auto || !b.Trigger.Matches(ev.Labels) {
			continue
		}
		r.start(b, rb.RunRequest{RunID: inc.ID, Alert: &rb.AlertInput{Labels: ev.Labels}, Who: "incident " + inc.ID,
			Why: "alert " + ev.AlertName + " opened incident " + inc.ID})
	}
}

// start runs b in the background.
func (r *runbookRunner) start(b rb.Runbook, req rb.RunRequest) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		res, err := r.engine.Run(r.ctx, b, req)
		if err != nil {
			r.log.Warn("runbook could not run", "runbook", b.Name, "err", err)
			return
		}
		r.log.Info("runbook finished", "runbook", b.Name, "run", res.RunID, "status", res.Status)
	}()
}

// run starts a runbook by name (chat's `runbook run`).
func (r *runbookRunner) run(ctx context.Context, name string, params map[string]string, who, why string) (string, error) {
	books, err := r.list(ctx)
	if err != nil {
		return "", err
	}
	for _, b := range books {
		if b.Name == name || b.Trigger.Command == name {
			id := fmt.Sprintf("run-%d", time.Now().UnixMilli())
			r.start(b, rb.RunRequest{RunID: id, Params: params, Who: who, Why: why})
			return fmt.Sprintf("runbook %s started (run %s); its steps follow", b.Name, id), nil
		}
	}
	return "", fmt.Errorf("no runbook %q (runbook list shows them; apply one with opspilot apply -f)", name)
}

func (r *runbookRunner) names(ctx context.Context) ([]string, error) {
	books, err := r.list(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(books))
	for i, b := range books {
		out[i] = b.Name
	}
	return out, nil
}

// stop ends running runbooks (a wait step returns at once) and waits for
// them, at shutdown: however the server stops, it does not hang on a run.
func (r *runbookRunner) stop() { r.cancel(); r.wg.Wait() }

// applyDemoRunbook stores examples/runbooks/billing-errors.yaml.
func applyDemoRunbook(ctx context.Context, orch *orchestrator) error {
	return applyDemoSpecs[rb.Runbook](ctx, orch, "examples/runbooks/billing-errors.yaml", runbooks.BillingErrors, control.KindRunbook)
}

// runbookQuerier runs runbook queries on the newest samples, as the
// autoscaler does.
type runbookQuerier struct{ l *lateTSDB }

func (q runbookQuerier) Query(ctx context.Context, expr string) ([]rb.Sample, error) {
	ss, err := tsdbQuerier{q.l}.Query(ctx, expr, time.Now())
	if err != nil {
		return nil, err
	}
	out := make([]rb.Sample, len(ss))
	for i, s := range ss {
		out[i] = rb.Sample(s)
	}
	return out, nil
}

// runbookOrchestrator is what runbook steps change. Restart, drain and
// rollback go through the controller's own REST handlers in-process (the
// same validation and events as `opspilot delete instance`, `node
// cordon` and `rollout undo`), as the runbook's who, with its why.
type runbookOrchestrator struct {
	o   *orchestrator
	mux *http.ServeMux
}

func newRunbookOrchestrator(o *orchestrator) runbookOrchestrator {
	mux := http.NewServeMux()
	for _, r := range o.ctrl.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	return runbookOrchestrator{o: o, mux: mux}
}

// call runs one REST call in-process and returns its JSON answer.
func (r runbookOrchestrator) call(ctx context.Context, method, path, who, why string, out any) error {
	req := httptest.NewRequestWithContext(api.WithCaller(ctx, api.Caller{Name: who, Role: api.RoleWrite}), method, path, nil)
	if why != "" {
		req.Header.Set(api.ReasonHeader, why)
	}
	w := httptest.NewRecorder()
	r.mux.ServeHTTP(w, req)
	if w.Code/100 != 2 {
		var e struct{ Error string }
		_ = json.Unmarshal(w.Body.Bytes(), &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(w.Body.String())
		}
		return fmt.Errorf("%s %s: %d %s", method, path, w.Code, e.Error)
	}
	if out != nil {
		return json.Unmarshal(w.Body.Bytes(), out)
	}
	return nil
}

func (r runbookOrchestrator) Replicas(ctx context.Context, service string) (int, error) {
	v, err := r.o.ctrl.ServiceView(ctx, service)
	if err != nil {
		return 0, err
	}
	return v.Replicas, nil
}

func (r runbookOrchestrator) Scale(ctx context.Context, service string, n int, who, why string) error {
	_, err := r.o.ctrl.Scale(ctx, service, n, who, why, nil)
	return err
}

// RestartInstance stops the instance; the controller starts a
// replacement (the service keeps its replicas).
func (r runbookOrchestrator) RestartInstance(ctx context.Context, instance, who, why string) error {
	return r.call(ctx, "DELETE", "/api/v1/instances/"+url.PathEscape(instance), who, why, nil)
}

// InstanceService is the service of an instance in the store.
func (r runbookOrchestrator) InstanceService(ctx context.Context, instance string) (string, error) {
	v, err := store.Get[omodel.Instance](ctx, r.o.st, store.KindInstance, instance)
	if err != nil {
		return "", err
	}
	return v.Value.Service, nil
}

// DrainNode cordons the node and stops its instances, which the
// controller places elsewhere.
func (r runbookOrchestrator) DrainNode(ctx context.Context, node, who, why string) error {
	if err := r.call(ctx, "POST", "/api/v1/nodes/"+url.PathEscape(node)+"/cordon", who, why, nil); err != nil {
		return err
	}
	var insts []omodel.Instance
	if err := r.call(ctx, "GET", "/api/v1/instances?node="+url.QueryEscape(node), who, why, &insts); err != nil {
		return err
	}
	for _, i := range insts {
		if i.Desired == omodel.DesiredStop {
			continue
		}
		if err := r.RestartInstance(ctx, i.ID, who, why); err != nil {
			return err
		}
	}
	return nil
}

// RollbackService goes back to the service's previous good revision.
func (r runbookOrchestrator) RollbackService(ctx context.Context, service, who, why string) error {
	return r.call(ctx, "POST", "/api/v1/services/"+url.PathEscape(service)+"/rollout/undo", who, why, nil)
}

// Failover takes the datacenter out of service, as `opspilot failover`.
func (r runbookOrchestrator) Failover(ctx context.Context, dc, who, why string) error {
	_, err := r.o.ctrl.Failover(ctx, dc, who, why)
	return err
}

// runbookLogs searches the log store with LogsQL (VictoriaLogs'
// /select/logsql/query).
type runbookLogs struct{ url *atomic.Pointer[string] }

func (l runbookLogs) Search(ctx context.Context, query string, limit int) ([]string, error) {
	base := ""
	if p := l.url.Load(); p != nil {
		base = *p
	}
	if base == "" {
		return nil, errors.New("no log store on this server (logstore.mode embedded runs one with opspilot up)")
	}
	u := base + "/select/logsql/query?" + url.Values{"query": {query + " | sort by (_time) desc"}, "limit": {strconv.Itoa(limit)}}.Encode()
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("log store: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("log store: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var lines []string
	dec := json.NewDecoder(resp.Body)
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("log store answer: %w", err)
		}
		if m, ok := doc["_msg"].(string); ok {
			lines = append(lines, m)
		}
	}
	// Newest last.
	for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
		lines[i], lines[j] = lines[j], lines[i]
	}
	return lines, nil
}

// runbookSilencer adds silences for runbook silence steps: their output
// is the silence's id, which later steps use (to expire it, say).
type runbookSilencer struct{ alerts *alertingStack }

func (s runbookSilencer) Silence(ctx context.Context, matchers []string, d time.Duration, who, why string) (string, error) {
	if s.alerts == nil {
		return "", errors.New("alerting is off on this server")
	}
	return s.alerts.pipeline.AddSilence(ctx, alerting.SilenceRequest{Matchers: matchers, EndsAt: time.Now().Add(d), CreatedBy: who, Comment: why})
}

// noApprover denies: no Slack channel for approvals is configured.
type noApprover struct{}

func (noApprover) RequestApproval(_ context.Context, a rb.Approval) (string, error) {
	return "", fmt.Errorf("%w: step %s needs an approval, and no Slack channel for approvals is configured (runbooks.chat.approval_channel and a bot token) (%s)",
		rb.ErrDenied, a.Step, strings.TrimSpace(a.Message))
}

// newApprover asks for approvals in Slack when a bot token and an
// approval channel are configured; its /slack/interactivity route takes
// the clicks. The requests are kept in etcd, so any replica's route
// decides them, and they are bound to the tenants of the run's services.
func newApprover(cfg FileConfig, creds rb.ChatCredentials, orch *orchestrator, log *slog.Logger) (rb.Approver, *rb.SlackApprover) {
	sa := &rb.SlackApprover{Channel: cfg.Runbooks.Chat.ApprovalChannel, RBAC: cfg.Runbooks.Chat.RBAC,
		Verifier: &rb.SlackVerifier{Secret: creds.SigningSecret}, Log: log,
		Store: &etcdApprovals{st: orch.st}, TenantOf: chatActions{orch: orch}.TenantOf}
	if creds.BotToken == "" || sa.Channel == "" {
		return noApprover{}, sa
	}
	sa.Client = slack.New(creds.BotToken)
	return sa, sa
}
