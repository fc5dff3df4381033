package runbooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"opspilot/internal/slackrec"
)

func newApprovalSlack(t *testing.T) *slackrec.Server {
	s := slackrec.New()
	t.Cleanup(s.Stop)
	return s
}

func clickBody(user, action, value string) string {
	p, _ := json.Marshal(map[string]any{"type": "block_actions", "user": map[string]any{"id": user},
		"actions": []map[string]any{{"action_id": action, "block_id": "opspilot_approval", "type": "button", "value": value}}})
	return url.Values{"payload": {string(p)}}.Encode()
}

const approvalRunbook = `kind: Runbook
name: big-scale
steps:
  - name: ok
    approve: {roles: [tenant-admin], message: "double billing?"}
    timeout: 1m
  - name: scale
    scale: {service: billing, multiply: 2}
`

// The approval flow end to end: the engine reaches an approve step, the
// request is posted to Slack with Approve and Deny buttons, a user
// without the role clicks (refused, still pending), a tenant admin of
// billing's tenant approves, the run goes on to scale; a denial stops a
// second run before its scale step.
func TestApprovalFlowAgainstSlacktestServer(t *testing.T) {
	s := newApprovalSlack(t)
	ap := &SlackApprover{Client: s.Client(), Channel: "#ops", RBAC: testRBAC(),
		Verifier: &SlackVerifier{Secret: chatSecret}, TenantOf: func(_ context.Context, s string) (string, error) { return tenantOf(s) }}
	mux := http.NewServeMux()
	for _, r := range ap.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	click := func(user, action, value string, at time.Time) (int, string) {
		body := clickBody(user, action, value)
		return post(t, srv.URL+"/slack/interactivity", body, slackrec.Sign(body, chatSecret, at))
	}
	rbs, err := Parse("big-scale.yaml", []byte(approvalRunbook))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakes{}
	e := newEngine(f, EngineOptions{Approver: ap})

	run := func() (*RunResult, error) {
		type out struct {
			r   *RunResult
			err error
		}
		done := make(chan out, 1)
		go func() {
			r, err := e.Run(context.Background(), rbs[0], RunRequest{Who: "slack:root"})
			done <- out{r, err}
		}()
		var id string
		for deadline := time.Now().Add(10 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			id = s.ButtonValue()
		}
		if id == "" {
			t.Fatal("no approval request posted")
		}
		// Not allowed: a user of the tenant (the step wants tenant-admin),
		// and someone unknown. The request stays pending.
		if code, resp := click("UUSER", ActionApprove, id, time.Now()); code != 200 || !strings.Contains(resp, "may not approve") {
			t.Errorf("approval by a user: %d %s", code, resp)
		}
		if code, resp := click("UNOBODY", ActionApprove, id, time.Now().Add(-time.Second)); code != 200 || !strings.Contains(resp, "may not approve") {
			t.Errorf("approval by someone unknown: %d %s", code, resp)
		}
		select {
		case o := <-done:
			t.Fatalf("the run went on without an approval: %+v", o.r)
		case <-time.After(100 * time.Millisecond):
		}
		return nil, nil
	}

	// Approved by the tenant admin.
	run()
	id := s.ButtonValue()
	if code, resp := click("UTA", ActionApprove, id, time.Now().Add(-2*time.Second)); code != 200 || !strings.Contains(resp, "approved") {
		t.Fatalf("approval by the tenant admin: %d %s", code, resp)
	}
	waitFor(t, func() bool { return len(f.o.got()) == 1 })
	if got := f.o.got(); got[0] != "scale billing 8" {
		t.Errorf("after the approval: %q", got)
	}
	if updated := s.Updated(); len(updated) != 1 || !strings.Contains(updated[0].Get("text"), "approved by slack:tina") {
		t.Errorf("the request message should say who approved: %v", updated)
	}
	if code, resp := click("UTA", ActionApprove, id, time.Now().Add(-3*time.Second)); code != 200 || !strings.Contains(resp, "no longer pending") {
		t.Errorf("a second click: %d %s", code, resp)
	}

	// Denied: the run stops before scaling.
	s.Reset()
	run()
	id = s.ButtonValue()
	if code, resp := click("UADMIN", ActionDeny, id, time.Now().Add(-4*time.Second)); code != 200 || !strings.Contains(resp, "denied") {
		t.Fatalf("denial: %d %s", code, resp)
	}
	waitFor(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.rec) >= 2 && f.rec[len(f.rec)-1].Status == StatusDenied
	})
	if got := f.o.got(); len(got) != 1 {
		t.Errorf("a denied run scaled: %q", got)
	}

	// Unsigned and garbage requests.
	body := clickBody("UTA", ActionApprove, "x")
	if code, _ := post(t, srv.URL+"/slack/interactivity", body, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}); code != 401 {
		t.Errorf("unsigned click: %d", code)
	}
	if code, _ := post(t, srv.URL+"/slack/interactivity", "payload=%7B", slackrec.Sign("payload=%7B", chatSecret, time.Now())); code != 400 {
		t.Errorf("garbage payload: %d", code)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10 s")
}

// startApproval runs RequestApproval in the background and returns the
// posted request's id and a channel with its outcome.
func startApproval(t *testing.T, s *slackrec.Server, ap *SlackApprover, ctx context.Context, a Approval) (string, <-chan error) {
	t.Helper()
	s.Reset()
	done := make(chan error, 1)
	go func() {
		_, err := ap.RequestApproval(ctx, a)
		done <- err
	}()
	var id string
	for deadline := time.Now().Add(10 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		id = s.ButtonValue()
	}
	if id == "" {
		t.Fatal("no approval request posted")
	}
	return id, done
}

// Approvals are bound to the tenants of the services the run acts on: a
// tenant-admin of another tenant, or of only one of two tenants, may not
// approve; a platform-wide run (no tenant's service) needs a
// platform-admin; the request says who may decide.
func TestApprovalsAreTenantBound(t *testing.T) {
	s := newApprovalSlack(t)
	rbac := testRBAC()
	rbac.Users = append(rbac.Users, ChatUser{Slack: "UTB", Name: "tom", Role: RoleTenantAdmin, Tenants: []string{"payments", "shop"}})
	ap := &SlackApprover{Client: s.Client(), Channel: "#ops", RBAC: rbac,
		TenantOf: func(_ context.Context, svc string) (string, error) { return tenantOf(svc) }}
	ctx := t.Context()

	id, done := startApproval(t, s, ap, ctx, Approval{RunID: "r1", Runbook: "rb", Step: "ok", Services: []string{"billing", "catalog"}})
	text := s.Posted()[0].Get("text")
	if !strings.Contains(text, "Who may approve: a tenant-admin of the tenants payments, shop or a platform-admin") {
		t.Errorf("request text does not say who may approve: %s", text)
	}
	if got := ap.decide(ctx, id, true, "UTA"); !strings.Contains(got, "may not approve") {
		t.Errorf("a tenant-admin of payments only approved a run that also scales shop's catalog: %s", got)
	}
	if got := ap.decide(ctx, id, true, "UTB"); got != "Step ok approved." {
		t.Errorf("the tenant-admin of both tenants: %s", got)
	}
	if err := <-done; err != nil {
		t.Errorf("approved request: %v", err)
	}

	// Platform-wide: a drain or a failover touches no tenant's service.
	id, done = startApproval(t, s, ap, ctx, Approval{RunID: "r2", Runbook: "rb", Step: "drain_ok", Roles: []string{RoleTenantAdmin}})
	if got := ap.decide(ctx, id, true, "UTB"); !strings.Contains(got, "may not approve") || !strings.Contains(got, "it needs a platform-admin") {
		t.Errorf("a tenant-admin approved a platform-wide step: %s", got)
	}
	if got := ap.decide(ctx, id, false, "UADMIN"); got != "Step drain_ok denied." {
		t.Errorf("platform-admin's denial: %s", got)
	}
	if err := <-done; !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "by slack:root") {
		t.Errorf("denied request: %v", err)
	}

	// A service whose tenant cannot be looked up makes the run platform-wide.
	id, done = startApproval(t, s, ap, ctx, Approval{RunID: "r3", Runbook: "rb", Step: "ok", Services: []string{"ghost"}})
	if got := ap.decide(ctx, id, true, "UTB"); !strings.Contains(got, "may not approve") {
		t.Errorf("unknown service's tenant: %s", got)
	}
	_ = ap.decide(ctx, id, true, "UADMIN")
	<-done
}

// An approval nobody decides expires with its step; one whose run is
// stopped (shutdown, lost leadership) is closed as interrupted. Either
// way the message loses its buttons and says why, and the request is
// gone from the store, so a late click is told it is no longer pending.
func TestApprovalExpiryAndInterruption(t *testing.T) {
	s := newApprovalSlack(t)
	store := &MemoryApprovals{}
	ap := &SlackApprover{Client: s.Client(), Channel: "#ops", RBAC: testRBAC(), Store: store}
	for _, tc := range []struct {
		name    string
		stop    func(context.Context) (context.Context, context.CancelFunc)
		err     string
		message string
	}{
		{"expired", func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, 200*time.Millisecond)
		},
			"nobody answered", "expired: nobody decided before the step's timeout"},
		{"interrupted", context.WithCancel, "the run was stopped", "its run was stopped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.Reset()
			ctx, cancel := tc.stop(t.Context())
			defer cancel()
			id, done := startApproval(t, s, ap, ctx, Approval{RunID: "r1", Runbook: "rb", Step: "ok"})
			if tc.name == "interrupted" {
				cancel()
			}
			if err := <-done; !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %v, want %q", err, tc.err)
			}
			if updated := s.Updated(); len(updated) != 1 || !strings.Contains(updated[0].Get("text"), tc.message) || updated[0].Get("ts") != "10.0" {
				t.Errorf("the request's message: %v", updated)
			}
			if recs, _ := store.List(t.Context()); len(recs) != 0 {
				t.Errorf("records left: %+v", recs)
			}
			if got := ap.decide(t.Context(), id, true, "UADMIN"); !strings.Contains(got, "no longer pending") {
				t.Errorf("a late click: %s", got)
			}
		})
	}
}

// The engine tells the approver which services the run acts on after
// the approval: its later scale, rollout_undo, restart (the instance's
// service) and silence (a pinned service) steps, service params and the
// alert's service label; none (platform-wide) when a later step acts
// beyond one tenant's services or its target cannot be told yet.
func TestApprovalNamesTheRunsServices(t *testing.T) {
	const head = `kind: Runbook
name: rb
params: [{name: svc, type: service, default: catalog}]
steps:
  - {name: before, scale: {service: ledger, add: 1}}
  - {name: ok, approve: {roles: [tenant-admin]}}
`
	for _, tc := range []struct{ name, steps, want string }{
		{"scale, undo, restart, silence", `  - {name: scale, scale: {service: '{{ .params.svc }}', add: 1}}
  - {name: undo, rollout_undo: {service: billing}}
  - {name: restart, restart: {instance: ledger-3}}
  - {name: quiet, silence: {matchers: ['service="search"']}}
`, "[billing catalog checkout ledger search]"},
		{"nothing after but a notify", "  - {name: tell, notify: {message: hi}}\n", "[catalog checkout]"},
		{"a drain", "  - {name: scale, scale: {service: billing, add: 1}}\n  - {name: drain, drain: {node: host-1}}\n", "[]"},
		{"a failover", "  - {name: f, failover: {datacenter: dc-a}}\n", "[]"},
		{"an http call", "  - {name: h, http: {url: 'http://billing/flush'}}\n", "[]"},
		{"a silence of every service", "  - {name: quiet, silence: {matchers: ['alertname=\"X\"']}}\n", "[]"},
		{"a target known only later", "  - {name: scale, scale: {service: billing, add: 1}}\n  - {name: after, scale: {service: '{{ .steps.scale.previous }}x', add: 1}, if: 'false'}\n", "[]"},
		{"an unknown instance", "  - {name: restart, restart: {instance: nodash}}\n", "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rbs, err := Parse("rb.yaml", []byte(head+tc.steps))
			if err != nil {
				t.Fatal(err)
			}
			ra := &recordingApprover{}
			f := &fakes{o: &fakeOrchestrator{replicas: map[string]int{"billing": 4, "catalog": 2, "ledger": 1}}}
			_, _ = newEngine(f, EngineOptions{Approver: ra, HTTP: &fakeHTTP{status: 200}, Silencer: &fakeSilencer{}}).Run(t.Context(), rbs[0],
				RunRequest{Who: "bob", Alert: &AlertInput{Labels: map[string]string{"service": "checkout"}}})
			if len(ra.got) != 1 {
				t.Fatalf("%d approvals asked", len(ra.got))
			}
			if got := fmt.Sprint(ra.got[0].Services); got != tc.want {
				t.Errorf("services of the approval: %s, want %s", got, tc.want)
			}
		})
	}
}

type recordingApprover struct {
	mu  sync.Mutex
	got []Approval
}

func (r *recordingApprover) RequestApproval(_ context.Context, a Approval) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, a)
	return "slack:root", nil
}
