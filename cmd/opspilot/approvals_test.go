package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"

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

	var (
		mu      sync.Mutex
		posted  []url.Values
		updated []url.Values
	)
	slackSrv := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			mu.Lock()
			posted = append(posted, r.Form)
			mu.Unlock()
			_, _ = w.Write([]byte(`{"ok":true,"channel":"C0OPS","ts":"10.0"}`))
		})
		c.Handle("/chat.update", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			mu.Lock()
			updated = append(updated, r.Form)
			mu.Unlock()
			_, _ = w.Write([]byte(`{"ok":true}`))
		})
	})
	slackSrv.Start()
	defer slackSrv.Stop()
	lastID := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(posted) == 0 {
			return ""
		}
		var blocks slack.Blocks
		if err := json.Unmarshal([]byte(posted[len(posted)-1].Get("blocks")), &blocks); err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks.BlockSet {
			if ab, ok := b.(*slack.ActionBlock); ok {
				return ab.Elements.ElementSet[0].(*slack.ButtonBlockElement).Value
			}
		}
		return ""
	}

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
		return &runbooks.SlackApprover{Client: slack.New("xoxb-test", slack.OptionAPIURL(slackSrv.GetAPIURL())), Channel: "#ops", RBAC: rbac,
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
		req.Header = signedSlackHeader(body, secret, time.Now())
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
			if id := lastID(); id != "" {
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
	mu.Lock()
	posted = nil
	mu.Unlock()
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

// signedSlackHeader signs a request body as Slack does (v0 HMAC-SHA256
// over "v0:timestamp:body").
func signedSlackHeader(body, secret string, at time.Time) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%s:%s", ts, body)
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return h
}
