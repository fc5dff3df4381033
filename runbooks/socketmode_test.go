package runbooks

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"opspilot/internal/slackrec"
)

// Socket Mode envelopes (as slack-go's client decodes them from the
// websocket) are acknowledged with the command's answer; roles are
// checked as over HTTP; a mention is answered in its thread; unknown
// envelopes are still acknowledged (Slack retries otherwise).
func TestSocketModeHandle(t *testing.T) {
	acts := &fakeChatActions{}
	s := &SocketMode{Bot: &Bot{RBAC: testRBAC(), Actions: acts, Incidents: NewTracker("inc")}}
	var (
		mu      sync.Mutex
		acks    []any
		replies []string
	)
	ack := func(req socketmode.Request, payload any) {
		mu.Lock()
		acks = append(acks, payload)
		mu.Unlock()
	}
	reply := func(_ context.Context, ch, thread, text string) {
		mu.Lock()
		replies = append(replies, ch+"/"+thread+": "+text)
		mu.Unlock()
	}
	req := &socketmode.Request{EnvelopeID: "env-1"}
	ctx := context.Background()

	s.Handle(ctx, socketmode.Event{Type: socketmode.EventTypeSlashCommand, Request: req,
		Data: slack.SlashCommand{UserID: "UTA", Text: "scale billing 5 because load"}}, ack, reply)
	s.Handle(ctx, socketmode.Event{Type: socketmode.EventTypeSlashCommand, Request: req,
		Data: slack.SlashCommand{UserID: "UUSER", Text: "failover dc1"}}, ack, reply)
	s.Handle(ctx, socketmode.Event{Type: socketmode.EventTypeEventsAPI, Request: req,
		Data: slackevents.EventsAPIEvent{Type: slackevents.CallbackEvent, InnerEvent: slackevents.EventsAPIInnerEvent{
			Data: &slackevents.AppMentionEvent{User: "UNOBODY", Text: "<@UBOT> status billing", Channel: "C1", TimeStamp: "5.0"}}}}, ack, reply)
	s.Handle(ctx, socketmode.Event{Type: socketmode.EventTypeHello, Request: req}, ack, reply)

	mu.Lock()
	defer mu.Unlock()
	if len(acks) != 4 {
		t.Fatalf("acks %v", acks)
	}
	if m, _ := acks[0].(map[string]any); m == nil || !strings.Contains(m["text"].(string), "scaled billing to 5") {
		t.Errorf("scale ack %v", acks[0])
	}
	if m, _ := acks[1].(map[string]any); m == nil || !strings.Contains(m["text"].(string), "only a platform-admin") {
		t.Errorf("failover by a user %v", acks[1])
	}
	if len(replies) != 1 || replies[0] != "C1/5.0: billing: 3/3 ready" {
		t.Errorf("mention replies %q", replies)
	}
	if got := acts.got(); len(got) != 2 || got[0] != "scale billing 5 by slack:tina because load" {
		t.Errorf("actions %q", got)
	}
}

// TestSocketModeOverSlacktestWebsocket: the bot connects over a live
// websocket — apps.connections.open and the socket of slack-go's
// slacktest server, standing in for Slack, which is not reachable here —
// and answers envelopes as Slack sends them: a slash command's answer
// comes back in its envelope's ack, a mention is answered in its thread
// through chat.postMessage, and an approval click decides a pending
// runbook approval, with the clicker's role checked.
func TestSocketModeOverSlacktestWebsocket(t *testing.T) {
	srv := slackrec.New()
	defer srv.Stop()
	// Acks come back over the websocket; slacktest hands them to SeenFeed.
	acks := make(chan map[string]any, 16)
	go func() {
		for m := range srv.SeenFeed {
			var ack map[string]any
			if json.Unmarshal([]byte(m), &ack) == nil && ack["envelope_id"] != nil {
				acks <- ack
			}
		}
	}()
	nextAck := func(envelope string) map[string]any {
		t.Helper()
		for {
			select {
			case a := <-acks:
				if a["envelope_id"] == "e1" {
					continue // a resent first command (below)
				}
				if a["envelope_id"] != envelope {
					t.Fatalf("ack for %v, want %s: %v", a["envelope_id"], envelope, a)
				}
				p, _ := a["payload"].(map[string]any)
				return p
			case <-time.After(10 * time.Second):
				t.Fatalf("no ack for envelope %s", envelope)
				return nil
			}
		}
	}

	acts := &fakeChatActions{}
	approver := &SlackApprover{Client: srv.Client(), Channel: "#ops", RBAC: testRBAC(),
		TenantOf: func(_ context.Context, svc string) (string, error) { return tenantOf(svc) }}
	sm := NewSocketMode("xoxb-test", "xapp-test", &Bot{RBAC: testRBAC(), Actions: acts, Incidents: NewTracker("inc")}, approver, nil,
		slack.OptionAPIURL(srv.GetAPIURL()))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sm.Run(ctx) }()
	send := func(envelope, typ string, payload any) {
		p, _ := json.Marshal(payload)
		m, _ := json.Marshal(map[string]any{"envelope_id": envelope, "type": typ, "accepts_response_payload": typ != "events_api", "payload": json.RawMessage(p)})
		srv.SendToWebsocket(string(m))
	}
	// The client connects asynchronously; resend the first command until
	// it is acknowledged (on a slow machine it may run more than once).
	var ack map[string]any
	for deadline := time.Now().Add(15 * time.Second); ack == nil; {
		send("e1", "slash_commands", map[string]any{"command": "/opspilot", "user_id": "UTA", "user_name": "tina", "text": "scale billing 5 because load"})
		select {
		case a := <-acks:
			if a["envelope_id"] == "e1" {
				ack, _ = a["payload"].(map[string]any)
				if ack == nil {
					t.Fatalf("slash command ack without a payload: %v", a)
				}
			}
		case <-time.After(500 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the bot never acknowledged a slash command over the websocket")
			}
		}
	}
	if text, _ := ack["text"].(string); !strings.Contains(text, "scaled billing to 5") {
		t.Errorf("slash command answer: %v", ack)
	}
	if got := acts.got(); len(got) == 0 || slices.ContainsFunc(got, func(a string) bool { return a != "scale billing 5 by slack:tina because load" }) {
		t.Errorf("actions %q", got)
	}

	send("e2", "slash_commands", map[string]any{"command": "/opspilot", "user_id": "UUSER", "text": "failover dc1"})
	if text, _ := nextAck("e2")["text"].(string); !strings.Contains(text, "only a platform-admin") {
		t.Errorf("failover by a user: %q", text)
	}

	send("e3", "events_api", map[string]any{"type": "event_callback", "event": map[string]any{
		"type": "app_mention", "user": "UNOBODY", "text": "<@UBOT> status billing", "channel": "C1", "ts": "5.0"}})
	nextAck("e3")
	waitFor(t, func() bool { return len(srv.Posted()) > 0 })
	if p := srv.Posted()[0]; p.Get("channel") != "C1" || p.Get("thread_ts") != "5.0" || p.Get("text") != "billing: 3/3 ready" {
		t.Errorf("mention reply %v", p)
	}
	srv.Reset()

	// An approval decided by a click that arrives over the websocket.
	type outcome struct {
		by  string
		err error
	}
	decided := make(chan outcome, 1)
	go func() {
		by, err := approver.RequestApproval(ctx, Approval{RunID: "r1", Runbook: "big-scale", Step: "ok", Services: []string{"billing"}})
		decided <- outcome{by, err}
	}()
	var id string
	waitFor(t, func() bool { id = srv.ButtonValue(); return id != "" })
	click := func(envelope, user string) string {
		send(envelope, "interactive", map[string]any{"type": "block_actions", "user": map[string]any{"id": user},
			"actions": []map[string]any{{"action_id": ActionApprove, "block_id": "opspilot_approval", "type": "button", "value": id}}})
		text, _ := nextAck(envelope)["text"].(string)
		return text
	}
	if got := click("e4", "UUSER"); !strings.Contains(got, "may not approve") {
		t.Errorf("a user's click: %q", got)
	}
	if got := click("e5", "UTA"); got != "Step ok approved." {
		t.Errorf("the tenant admin's click: %q", got)
	}
	select {
	case o := <-decided:
		if o.err != nil || o.by != "slack:tina" {
			t.Errorf("approval: %q, %v", o.by, o.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the approval was not decided by the click over the websocket")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
