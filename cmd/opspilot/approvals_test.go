package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"opspilot/internal/slackrec"
	"opspilot/orchestrator/store"
	"opspilot/runbooks"
	"opspilot/test/testbin"
)

// TestApprovalDecidedThroughAnotherReplica: with the control plane's etcd
// store, an approval requested by the replica running the runbook (A) is
// decided by a Slack click that reaches another replica (B) — Slack
// calls whichever one its load balancer picks — and A's run goes on; a
// replica that dies takes its pending requests with it (their lease
// lapses), so a click on one is told it is no longer pending. Slack's
// API is slack-go's slacktest server (the real one is not reachable).
func TestApprovalDecidedThroughAnotherReplica(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clientURL := "http://" + testbin.FreeAddr(t)
	stA, err := store.Open(ctx, store.Config{Embedded: true, DataDir: t.TempDir(), ClientURL: clientURL}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stA.Close()
	openB := func() *store.Store {
		st, err := store.Open(ctx, store.Config{Endpoints: []string{clientURL}}, log)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	stB := openB()
	defer stB.Close()

	slackSrv := slackrec.New()
	defer slackSrv.Stop()

	const secret = "s3cret"
	rbac := runbooks.RBAC{Users: []runbooks.ChatUser{
		{Slack: "UTA", Name: "tina", Role: runbooks.RoleTenantAdmin, Tenants: []string{"payments"}},
		{Slack: "UTO", Name: "otto", Role: runbooks.RoleTenantAdmin, Tenants: []string{"shop"}},
	}}
	tenantOf := func(_ context.Context, svc string) (string, error) {
		if svc == "billing" {
			return "payments", nil
		}
		return "", errors.New("no service " + svc)
	}
	replica := func(st *store.Store, ttl int64) *runbooks.SlackApprover {
		return &runbooks.SlackApprover{Client: slackSrv.Client(), Channel: "#ops", RBAC: rbac,
			Verifier: &runbooks.SlackVerifier{Secret: secret}, Store: &etcdApprovals{st: st, ttl: ttl}, TenantOf: tenantOf}
	}
	a, b := replica(stA, 0), replica(stB, 0)
	mux := http.NewServeMux()
	for _, r := range b.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	srvB := httptest.NewServer(mux)
	defer srvB.Close()
	click := func(user, value string) string {
		t.Helper()
		p, _ := json.Marshal(map[string]any{"type": "block_actions", "user": map[string]any{"id": user},
			"actions": []map[string]any{{"action_id": runbooks.ActionApprove, "block_id": "opspilot_approval", "type": "button", "value": value}}})
		body := url.Values{"payload": {string(p)}}.Encode()
		req, _ := http.NewRequest("POST", srvB.URL+"/slack/interactivity", strings.NewReader(body))
		req.Header = slackrec.Sign(body, secret, time.Now())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Text string }
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != 200 {
			t.Fatalf("click: %d %s", resp.StatusCode, out.Text)
		}
		return out.Text
	}
	waitID := func() string {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if id := slackSrv.ButtonValue(); id != "" {
				return id
			}
		}
		t.Fatal("no approval request posted")
		return ""
	}

	type outcome struct {
		by  string
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		by, err := a.RequestApproval(ctx, runbooks.Approval{RunID: "r1", Runbook: "scale-billing", Step: "ok", Services: []string{"billing"}})
		done <- outcome{by, err}
	}()
	id := waitID()
	if got := click("UTO", id); !strings.Contains(got, "may not approve") || !strings.Contains(got, "a tenant-admin of tenant payments") {
		t.Errorf("shop's tenant-admin on billing's run: %q", got)
	}
	if got := click("UTA", id); got != "Step ok approved." {
		t.Errorf("payments' tenant-admin through replica B: %q", got)
	}
	select {
	case o := <-done:
		if o.err != nil || o.by != "slack:tina" {
			t.Errorf("replica A's run: approved by %q, %v", o.by, o.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("replica A's run did not see the decision made through replica B")
	}
	if recs, err := (&etcdApprovals{st: stA}).List(ctx); err != nil || len(recs) != 0 {
		t.Errorf("records after the decision: %+v, %v", recs, err)
	}

	// Replica C dies (no shutdown) while its run waits.
	stC := openB()
	c := replica(stC, 2)
	slackSrv.Reset()
	cctx, ccancel := context.WithCancel(ctx)
	go func() {
		_, _ = c.RequestApproval(cctx, runbooks.Approval{RunID: "r2", Runbook: "scale-billing", Step: "ok", Services: []string{"billing"}})
	}()
	id = waitID()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if r, err := (&etcdApprovals{st: stA}).Get(ctx, id); err == nil && r.TS == "10.0" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the request is not in the store with its message: %+v, %v", r, err)
		}
	}
	_ = stC.Close() // the process is gone: no more lease keep-alives, no cleanup
	start := time.Now()
	for {
		if _, err := (&etcdApprovals{st: stA}).Get(ctx, id); errors.Is(err, runbooks.ErrApprovalNotFound) {
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatal("a dead replica's request is still pending after 15 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("a dead replica's request left the store %s after it died", time.Since(start).Round(100*time.Millisecond))
	ccancel()
	if got := click("UTA", id); !strings.Contains(got, "no longer pending") {
		t.Errorf("a click on a dead replica's request: %q", got)
	}
}
