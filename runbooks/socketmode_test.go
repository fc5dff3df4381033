package runbooks

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
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
