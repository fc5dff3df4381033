package runbooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/slack-go/slack"

	"opspilot/api"
)

// Slack action ids of approval buttons.
const (
	ActionApprove = "opspilot_approve"
	ActionDeny    = "opspilot_deny"
)

// SlackApprover asks for a runbook step's approval in Slack: a message
// with Approve and Deny buttons; the click (POST /slack/interactivity,
// signed) decides, if the person clicking may approve (MayApprove).
type SlackApprover struct {
	Client   *slack.Client
	Channel  string
	RBAC     RBAC
	Verifier *SlackVerifier
	// Tenant is the tenant a run's approvals belong to (its service's);
	// nil: approvals are not tenant-bound.
	Tenant func(a Approval) string
	Log    *slog.Logger

	mu      sync.Mutex
	pending map[string]*pendingApproval
}

type pendingApproval struct {
	a       Approval
	decided chan decision
	channel string
	ts      string
}

type decision struct {
	by  string
	err error
}

// RequestApproval implements Approver: it posts the request and waits for
// a decision or ctx.
func (s *SlackApprover) RequestApproval(ctx context.Context, a Approval) (string, error) {
	if s.Client == nil || s.Channel == "" {
		return "", fmt.Errorf("%w: no Slack channel for approvals (runbooks.chat.approval_channel and a bot token)", ErrDenied)
	}
	id := randomApprovalID()
	p := &pendingApproval{a: a, decided: make(chan decision, 1)}
	s.mu.Lock()
	if s.pending == nil {
		s.pending = map[string]*pendingApproval{}
	}
	s.pending[id] = p
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	who := "a tenant-admin"
	if len(a.Roles)+len(a.Users) > 0 {
		who = strings.Join(append(append([]string{}, a.Roles...), a.Users...), " or ")
	}
	text := fmt.Sprintf("*Approval needed* — runbook `%s`, step `%s` (run %s): %s\nWho may approve: %s", a.Runbook, a.Step, a.RunID, a.Message, who)
	blocks := []slack.Block{
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, text, false, false), nil, nil),
		slack.NewActionBlock("opspilot_approval",
			slack.NewButtonBlockElement(ActionApprove, id, slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false)).WithStyle(slack.StylePrimary),
			slack.NewButtonBlockElement(ActionDeny, id, slack.NewTextBlockObject(slack.PlainTextType, "Deny", false, false)).WithStyle(slack.StyleDanger)),
	}
	ch, ts, err := s.Client.PostMessageContext(ctx, s.Channel, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
	if err != nil {
		return "", fmt.Errorf("%w: the approval request could not be posted: %v", ErrDenied, err)
	}
	s.mu.Lock()
	p.channel, p.ts = ch, ts
	s.mu.Unlock()
	select {
	case d := <-p.decided:
		return d.by, d.err
	case <-ctx.Done():
		return "", fmt.Errorf("%w: nobody answered before the step's timeout", ErrDenied)
	}
}

// Routes is POST /slack/interactivity (Slack signs it).
func (s *SlackApprover) Routes() []api.Route {
	return []api.Route{{Pattern: "POST /slack/interactivity", Name: "slack_interactivity", Role: "", Handler: http.HandlerFunc(s.interactivity)}}
}

func (s *SlackApprover) interactivity(w http.ResponseWriter, r *http.Request) {
	body, err := s.Verifier.Verify(r)
	if err != nil {
		api.WriteError(w, http.StatusUnauthorized, "slack signature: "+err.Error())
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("payload") == "" {
		api.WriteError(w, http.StatusBadRequest, "interactivity: want a form with a payload field")
		return
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		api.WriteError(w, http.StatusBadRequest, "interactivity: payload: "+err.Error())
		return
	}
	if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) == 0 {
		api.WriteError(w, http.StatusBadRequest, "interactivity: not a button click (block_actions)")
		return
	}
	act := cb.ActionCallback.BlockActions[0]
	if act.ActionID != ActionApprove && act.ActionID != ActionDeny {
		api.WriteError(w, http.StatusBadRequest, "interactivity: not an opspilot approval button ("+act.ActionID+")")
		return
	}
	reply := s.decide(act.Value, act.ActionID == ActionApprove, cb.User.ID)
	api.WriteJSON(w, http.StatusOK, map[string]any{"response_type": "ephemeral", "replace_original": false, "text": reply})
}

// decide applies a click and says what happened.
func (s *SlackApprover) decide(id string, approve bool, userID string) string {
	s.mu.Lock()
	p, ok := s.pending[id]
	var channel, ts string
	if ok {
		channel, ts = p.channel, p.ts
	}
	s.mu.Unlock()
	if !ok {
		return "This approval is no longer pending (decided, timed out, or the server restarted)."
	}
	u, known := s.RBAC.Lookup(userID)
	tenant := ""
	if s.Tenant != nil {
		tenant = s.Tenant(p.a)
	}
	if !known || !MayApprove(u, p.a.Roles, p.a.Users, tenant) {
		return fmt.Sprintf("You (%s) may not approve step %s of runbook %s; it needs %s.", userID, p.a.Step, p.a.Runbook, approversOf(p.a))
	}
	d := decision{by: u.Who()}
	verb := "approved"
	if !approve {
		d.err, verb = fmt.Errorf("%w by %s", ErrDenied, u.Who()), "denied"
	}
	select {
	case p.decided <- d:
	default:
		return "This approval was already decided."
	}
	if s.Client != nil && ts != "" {
		text := fmt.Sprintf("Step `%s` of runbook `%s` %s by %s.", p.a.Step, p.a.Runbook, verb, u.Who())
		if _, _, _, err := s.Client.UpdateMessage(channel, ts, slack.MsgOptionText(text, false), slack.MsgOptionBlocks()); err != nil && s.Log != nil {
			s.Log.Warn("slack: could not update the approval message", "err", err)
		}
	}
	return fmt.Sprintf("Step %s %s.", p.a.Step, verb)
}

func approversOf(a Approval) string {
	if len(a.Roles)+len(a.Users) == 0 {
		return "a tenant-admin of the service's tenant or a platform-admin"
	}
	return strings.Join(append(append([]string{}, a.Roles...), a.Users...), " or ") + " (or a platform-admin)"
}

func randomApprovalID() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("crypto/rand failed"))
	}
	return hex.EncodeToString(b)
}
