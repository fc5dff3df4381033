package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"opspilot/alerting"
	"opspilot/orchestrator/control"
	omodel "opspilot/orchestrator/model"
	"opspilot/orchestrator/store"
	rb "opspilot/runbooks"
)

// The runbook steps that change the orchestrator, against the real
// controller on an embedded etcd: scale, restart (an instance is
// stopped, the replicas kept), drain (the node cordoned, its instances
// stopped), rollout undo (the previous revision back) and failover (the
// datacenter out of service by hand), each recorded as
// an event with the runbook's who and why.
func TestRunbookStepsAgainstRealOrchestrator(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, store.Config{Embedded: true, DataDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctrl, err := control.New(st, control.DefaultConfig(), prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ctrl.Run(ctx) }()
	o := newRunbookOrchestrator(&orchestrator{st: st, ctrl: ctrl})
	waitRevision := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if v, err := ctrl.ServiceView(ctx, "billing"); err == nil && v.Status.Revision == n {
				return
			}
		}
		t.Fatalf("billing never reached revision %d", n)
	}
	const who, why = "runbook:billing-errors (started by incident inc-1)", "alert BillingErrorRatioHigh"

	svc, err := demoService()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ctrl.ApplyService(ctx, svc, "test", "v1"); err != nil {
		t.Fatal(err)
	}
	waitRevision(1)
	svc.Env = map[string]string{"RELEASE": "2"}
	if _, err := ctrl.ApplyService(ctx, svc, "test", "v2"); err != nil {
		t.Fatal(err)
	}
	waitRevision(2)

	// scale
	if err := o.Scale(ctx, "billing", 6, who, why); err != nil {
		t.Fatal(err)
	}
	if n, err := o.Replicas(ctx, "billing"); err != nil || n != 6 {
		t.Errorf("replicas %d, %v; want 6", n, err)
	}
	// restart
	inst := omodel.Instance{ID: "billing-a1", Service: "billing", Node: "n1", Desired: omodel.DesiredRun, State: omodel.StateRunning}
	if _, err := store.Create(ctx, st, store.KindInstance, inst.ID, inst); err != nil {
		t.Fatal(err)
	}
	if err := o.RestartInstance(ctx, "billing-a1", who, why); err != nil {
		t.Fatal(err)
	}
	// Stopped (the running controller may already have removed it).
	stopped := func(id string) bool {
		got, err := store.Get[omodel.Instance](ctx, st, store.KindInstance, id)
		return errors.Is(err, store.ErrNotFound) || (err == nil && got.Value.Desired == omodel.DesiredStop)
	}
	if !stopped("billing-a1") {
		t.Error("the restarted instance is still desired to run")
	}
	if err := o.RestartInstance(ctx, "nosuch", who, why); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("restart of an unknown instance: %v", err)
	}
	// drain
	if _, err := store.Create(ctx, st, store.KindNode, "n2", omodel.Node{Name: "n2", Datacenter: "dc1"}); err != nil {
		t.Fatal(err)
	}
	inst2 := omodel.Instance{ID: "billing-b2", Service: "billing", Node: "n2", Desired: omodel.DesiredRun, State: omodel.StateRunning}
	if _, err := store.Create(ctx, st, store.KindInstance, inst2.ID, inst2); err != nil {
		t.Fatal(err)
	}
	if err := o.DrainNode(ctx, "n2", who, why); err != nil {
		t.Fatal(err)
	}
	if n, _ := store.Get[omodel.Node](ctx, st, store.KindNode, "n2"); !n.Value.Unschedulable {
		t.Errorf("drained node not cordoned: %+v", n.Value)
	}
	if !stopped("billing-b2") {
		t.Error("the drained node's instance is still desired to run")
	}
	// rollout undo
	if err := o.RollbackService(ctx, "billing", who, why); err != nil {
		t.Fatal(err)
	}
	if v, _ := ctrl.ServiceView(ctx, "billing"); v.Env["RELEASE"] == "2" {
		t.Errorf("rollback kept the new revision: %+v", v.Env)
	}
	// failover: the datacenter is out of service, by hand, with who and why
	if err := o.Failover(ctx, "dc9", who, why); err == nil {
		t.Error("failover of a datacenter without nodes was accepted")
	}
	if err := o.Failover(ctx, "dc1", who, why); err != nil {
		t.Fatal(err)
	}
	if d, err := store.Get[omodel.DatacenterStatus](ctx, st, store.KindDatacenter, "dc1"); err != nil || !d.Value.FailedOver || !d.Value.Manual || d.Value.FailoverBy != who || d.Value.FailoverWhy != why {
		t.Errorf("dc1 after the failover step: %+v (%v)", d.Value, err)
	}

	// Every change is an event with who and why.
	time.Sleep(100 * time.Millisecond)
	evs, _, err := store.List[control.Event](ctx, st, control.KindEvent)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range evs {
		if e.Value.Who == who && e.Value.Why == why {
			seen[e.Value.Reason] = true
		}
	}
	for _, reason := range []string{"Deleted", "Cordon", "RolloutUndo", "DatacenterFailedOver"} {
		if !seen[reason] {
			t.Errorf("no %s event by the runbook with its why; events: %+v", reason, evs)
		}
	}
}

// The runbook silence step against the real alerting pipeline
// (Alertmanager's silences): the step's id output is the silence's id,
// and the silence carries the matchers, who and why.
func TestRunbookSilenceStepAgainstRealAlerting(t *testing.T) {
	cfg := defaultFileConfig()
	cfg.DataDir = t.TempDir()
	alerts, err := newAlerting(cfg, &lateTSDB{}, io.Discard, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	rbs, err := rb.Parse("silence.yaml", []byte(`kind: Runbook
name: quiet-billing
steps:
  - name: quiet
    silence: {matchers: ['alertname="BillingErrorRatioHigh"', 'service="billing"'], duration: 30m, comment: 'deploying {{ .run.id }}'}
  - name: tell
    notify: {message: 'silence {{ .steps.quiet.id }}'}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := rb.NewEngine(rb.EngineOptions{Silencer: runbookSilencer{alerts}, Notifier: discardNotifier{}, NewRunID: func() string { return "run-1" }})
	res, err := e.Run(t.Context(), rbs[0], rb.RunRequest{Who: "slack:tina", Why: "promotion"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.Steps[0].Outputs["id"].(string)
	var got *alerting.Silence
	for _, s := range alerts.pipeline.Silences(t.Context()) {
		if s.ID == id {
			got = &s
		}
	}
	if id == "" || got == nil {
		t.Fatalf("step output id %q is not a silence of the pipeline: %+v", id, alerts.pipeline.Silences(t.Context()))
	}
	if got.CreatedBy != "runbook:quiet-billing (started by slack:tina)" || !strings.Contains(got.Comment, "deploying run-1") ||
		len(got.Matchers) != 2 || got.EndsAt.Sub(got.StartsAt).Round(time.Minute) != 30*time.Minute {
		t.Errorf("silence %+v", got)
	}
	if msg := res.Steps[1].Outputs["message"]; msg != "silence "+id {
		t.Errorf("a later step reads the id: %v", msg)
	}
}

// discardNotifier drops a run's chat lines (no incident thread here).
type discardNotifier struct{}

func (discardNotifier) Post(context.Context, string, string) error { return nil }
