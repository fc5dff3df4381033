package runbooks

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// approvalSlack is slack-go's slacktest server recording the approval
// requests the bot posts and the message updates (the real Slack is not
// reachable from here).
type approvalSlack struct {
	*slacktest.Server
	mu      sync.Mutex
	posted  []url.Values
	updated []url.Values
}

func newApprovalSlack(t *testing.T) *approvalSlack {
	s := &approvalSlack{}
	s.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			s.mu.Lock()
			s.posted = append(s.posted, r.Form)
			s.mu.Unlock()
			_, _ = w.Write([]byte(`{"ok":true,"channel":"C0OPS","ts":"10.0"}`))
		})
		c.Handle("/chat.update", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			s.mu.Lock()
			s.updated = append(s.updated, r.Form)
			s.mu.Unlock()
			_, _ = w.Write([]byte(`{"ok":true,"channel":"C0OPS","ts":"10.0"}`))
		})
	})
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// approvalID is the button value of the newest posted request.
func (s *approvalSlack) approvalID(t *testing.T) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.posted) == 0 {
		return ""
	}
	var blocks slack.Blocks
	if err := json.Unmarshal([]byte(s.posted[len(s.posted)-1].Get("blocks")), &blocks); err != nil {
		t.Fatalf("blocks: %v", err)
	}
	for _, b := range blocks.BlockSet {
		if ab, ok := b.(*slack.ActionBlock); ok {
			return ab.Elements.ElementSet[0].(*slack.ButtonBlockElement).Value
		}
	}
	t.Fatal("no buttons in the approval request")
	return ""
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
	ap := &SlackApprover{Client: slack.New("xoxb-test", slack.OptionAPIURL(s.GetAPIURL())), Channel: "#ops", RBAC: testRBAC(),
		Verifier: &SlackVerifier{Secret: chatSecret}, Tenant: func(Approval) string { return "payments" }}
	mux := http.NewServeMux()
	for _, r := range ap.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	click := func(user, action, value string, at time.Time) (int, string) {
		body := clickBody(user, action, value)
		return post(t, srv.URL+"/slack/interactivity", body, signSlack(body, chatSecret, at))
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
			id = s.approvalID(t)
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
	id := s.approvalID(t)
	if code, resp := click("UTA", ActionApprove, id, time.Now().Add(-2*time.Second)); code != 200 || !strings.Contains(resp, "approved") {
		t.Fatalf("approval by the tenant admin: %d %s", code, resp)
	}
	waitFor(t, func() bool { return len(f.o.got()) == 1 })
	if got := f.o.got(); got[0] != "scale billing 8" {
		t.Errorf("after the approval: %q", got)
	}
	s.mu.Lock()
	if len(s.updated) != 1 || !strings.Contains(s.updated[0].Get("text"), "approved by slack:tina") {
		t.Errorf("the request message should say who approved: %v", s.updated)
	}
	s.mu.Unlock()
	if code, resp := click("UTA", ActionApprove, id, time.Now().Add(-3*time.Second)); code != 200 || !strings.Contains(resp, "no longer pending") {
		t.Errorf("a second click: %d %s", code, resp)
	}

	// Denied: the run stops before scaling.
	s.mu.Lock()
	s.posted = nil
	s.mu.Unlock()
	run()
	id = s.approvalID(t)
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
	if code, _ := post(t, srv.URL+"/slack/interactivity", "payload=%7B", signSlack("payload=%7B", chatSecret, time.Now())); code != 400 {
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
